"""Speculative decoding (issue 14): the published defaults and their citations, the drafter's memory,
the step physics (acceptance 1 never lowers the per-sequence token rate, acceptance 0 never raises it),
the crossover batch the simulator shows, and token conservation in the simulator."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inferplan.errors import InputError
from inferplan.perf.metrics import serving_metrics
from inferplan.perf.replica import build_replica
from inferplan.perf.simulator import simulate
from inferplan.perf.speculative import crossover_batch, speedup_at
from inferplan.perf.steady_state import SteadyState
from inferplan.perf.workload import Arrivals, LengthDist, Requests, Workload, make_requests
from inferplan.sizing.capacity import plan_memory
from inferplan.sizing.memory import kv_bytes_per_token_layer
from inferplan.sizing.weights import weight_bytes_per_gpu
from inferplan.specs.deployment import Deployment
from inferplan.specs.hardware import get_gpu
from inferplan.specs.model_catalog import load_model
from inferplan.specs.parallelism import Parallelism
from inferplan.specs.precision import get_kv_dtype, get_precision
from inferplan.specs.speculation import (
    METHODS,
    Speculation,
    _published,
    expected_tokens_per_step,
    published_acceptance,
    rate_for_acceptance_length,
    resolve_speculation,
)

L70, L8 = load_model("llama-3.1-70b"), load_model("llama-3.1-8b")


def dep(
    model: str = "llama-3.1-70b", gpu: str = "h100", tp: int = 4, precision: str = "fp8", **words: object
) -> Deployment:
    m = load_model(model)
    if "draft" in words:  # the draft model (resolve_speculation's "model")
        words["model"] = words.pop("draft")
    spec = resolve_speculation(m, dict(words), load_model) if words else None
    d = Deployment(m, get_gpu(gpu), get_precision(precision), get_kv_dtype(precision), Parallelism(tp=tp))
    return d.with_speculation(spec)


# ---------------------------------------------------------------- the formula and the published figures


def test_expected_tokens_per_step() -> None:
    assert expected_tokens_per_step([]) == 1.0
    assert expected_tokens_per_step([1.0] * 4) == 5.0
    assert expected_tokens_per_step([0.0, 1.0, 1.0]) == 1.0
    assert expected_tokens_per_step([0.8, 0.5]) == pytest.approx(1 + 0.8 + 0.4)
    a, k = 0.7, 5
    assert expected_tokens_per_step([a] * k) == pytest.approx((1 - a ** (k + 1)) / (1 - a))  # Leviathan et al.


@given(st.floats(0.01, 0.99), st.integers(1, 10))
def test_one_rate_is_recovered_from_its_acceptance_length(a: float, k: int) -> None:
    assert rate_for_acceptance_length(expected_tokens_per_step([a] * k), k) == pytest.approx(a, abs=1e-6)


def test_every_published_figure_is_cited_and_every_method_has_a_default() -> None:
    rows = _published()
    for p in rows:
        assert p.method in METHODS
        assert "http" in p.source or "arXiv" in p.source or "assumption" in p.source
        assert all(0 < a <= 1 for a in p.rates)
    for method in METHODS:
        assert (
            published_acceptance(method, L70).models == ("*",) or L70.name in published_acceptance(method, L70).models
        )
    # the figures that could not be read first-hand say so where they are printed
    assert "not verified" in published_acceptance("draft_model", L70).citation()
    assert "not verified" not in published_acceptance("eagle", L8).citation()


def test_per_position_figures_become_conditional_rates() -> None:
    gpt = published_acceptance("eagle3", load_model("gpt-oss-120b"))
    p = (0.622, 0.356, 0.203, 0.119, 0.060)  # vLLM #42764: unconditional per-position rates
    assert np.cumprod(gpt.rates) == pytest.approx(p)
    assert expected_tokens_per_step(gpt.rates) == pytest.approx(2.36, abs=0.005)  # the PR's mean length 2.359


def test_defaults_and_given_acceptance_resolve() -> None:
    s = resolve_speculation(L8, {"method": "eagle3"}, load_model)
    assert s is not None and s.num_tokens == 3 and s.draft_id == "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B"
    assert "nebius" in s.source and s.draft is None
    one = resolve_speculation(L70, {"method": "ngram", "acceptance": "0.5", "tokens": 4}, load_model)
    assert one is not None and one.acceptance == (0.5,) * 4 and one.source.startswith("given")
    per = resolve_speculation(L70, {"method": "eagle", "acceptance": "0.9,0.8"}, load_model)
    assert per is not None and per.num_tokens == 2 and per.acceptance == (0.9, 0.8)
    draft = resolve_speculation(L70, {"method": "draft", "model": "llama-3.2-1b"}, load_model)
    assert draft is not None and draft.method == "draft_model" and draft.draft is not None
    assert resolve_speculation(L70, {}, load_model) is None


@pytest.mark.parametrize(
    ("words", "needle"),
    [
        ({"method": "medusa"}, "use one of"),
        ({"method": "mtp"}, "ships no multi-token-prediction layer"),
        ({"method": "draft_model"}, "--spec-model"),
        ({"method": "draft_model", "model": "qwen3-0.6b"}, "tokenizer"),
        ({"method": "eagle3", "acceptance": "0.9,x"}, "--spec-acceptance"),
        ({"method": "eagle3", "acceptance": "0.9,0.8", "tokens": 3}, "--spec-tokens is 3"),
        ({"method": "eagle3", "acceptance": "1.5"}, "each in [0, 1]"),
        ({"method": "eagle3", "tokens": 40}, "between 1 and 16"),
        ({"tokens": 3}, "need --spec METHOD"),
    ],
)
def test_bad_speculation_is_one_clear_line(words: dict[str, object], needle: str) -> None:
    with pytest.raises(InputError, match=None) as info:
        resolve_speculation(L70, words, load_model)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_mtp_resolves_for_a_model_that_ships_it() -> None:
    s = resolve_speculation(load_model("deepseek-v3"), {"method": "mtp"}, load_model)
    assert s is not None and s.num_tokens == 1 and s.acceptance == (pytest.approx(0.875),)


# ---------------------------------------------------------------- memory


def test_the_drafter_takes_weights_and_kv() -> None:
    base = plan_memory(dep())
    draft = plan_memory(dep(method="draft_model", draft="llama-3.2-1b"))
    one_b = load_model("llama-3.2-1b")
    assert draft.drafter_weights_bytes == pytest.approx(
        weight_bytes_per_gpu(one_b, get_precision("fp8"), Parallelism(tp=4))
    )
    assert draft.weights_bytes == pytest.approx(base.weights_bytes + draft.drafter_weights_bytes)
    # KV per token grows by the draft's own layers: 16 of Llama-3.2-1B's against 80 of the target's (same heads)
    kv = get_kv_dtype("fp8")
    ratio = (
        16 * kv_bytes_per_token_layer(one_b.attention, kv, 4) / (80 * kv_bytes_per_token_layer(L70.attention, kv, 4))
    )
    assert draft.kv_scale == pytest.approx(1 + ratio)
    assert draft.kv_tokens < base.kv_tokens
    head = plan_memory(dep(method="eagle3"))
    assert 0 < head.drafter_weights_bytes < draft.drafter_weights_bytes + 1e9
    assert head.kv_scale == pytest.approx(1 + 1 / 80)  # one layer of the target's shape
    ngram = plan_memory(dep(method="ngram"))
    assert ngram.drafter_weights_bytes == 0 and ngram.kv_scale == 1
    assert ngram.logits_bytes == pytest.approx(base.logits_bytes * 6)  # k + 1 = 6 positions per sequence


# ---------------------------------------------------------------- the physics of a step


CASES = [
    ("llama-3.1-8b", "h100", 1, "fp8"),
    ("llama-3.1-70b", "h100", 4, "fp8"),
    ("qwen3-30b-a3b", "a100-sxm-80gb", 1, "bf16"),
]


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(CASES),
    st.sampled_from(["ngram", "eagle", "eagle3"]),
    st.integers(1, 6),
    st.sampled_from([1, 2, 8, 32, 128, 256]),
    st.sampled_from([16, 1000, 8000]),
)
def test_full_acceptance_never_slows_and_zero_acceptance_never_speeds(
    case: tuple[str, str, int, str], method: str, k: int, batch: int, context: int
) -> None:
    model, gpu, tp, precision = case
    full = build_replica(dep(model, gpu, tp, precision, method=method, tokens=k, acceptance="1.0"))
    none = build_replica(dep(model, gpu, tp, precision, method=method, tokens=k, acceptance="0"))
    assert speedup_at(none, batch, context) <= 1.0  # every step costs at least a plain one and emits one token
    assert speedup_at(full, batch, context) <= k + 1  # at most k + 1 tokens for at least one step's cost
    if method == "ngram":  # a free drafter: verifying k + 1 tokens never costs k + 1 plain steps
        assert speedup_at(full, batch, context) >= 1.0


def test_the_crossover_for_a_compute_bound_case() -> None:
    replica = build_replica(dep(method="eagle3"))
    cross = crossover_batch(replica, 600)
    assert cross.speedup_at_1 > 1.5 and cross.batch is not None and 16 < cross.batch < 256
    assert speedup_at(replica, cross.batch - 1, 600) >= 1.0 > speedup_at(replica, cross.batch, 600)


def _per_sequence_rate(d: Deployment, users: int) -> float:
    wl = Workload(LengthDist(500), LengthDist(200), Arrivals("concurrency", concurrency=users), 3 * users, seed=3)
    m = serving_metrics(simulate(build_replica(d), make_requests(wl), concurrency=users))
    return 1.0 / m.tpot_s.mean


def test_the_simulator_shows_the_crossover() -> None:
    """Sweep the closed-loop concurrency: per-sequence speedup > 1 at low batch, < 1 past the crossover."""
    spec, plain = dep(method="eagle3"), dep()
    cross = crossover_batch(build_replica(spec), 600)
    assert cross.batch is not None
    speedups = {u: _per_sequence_rate(spec, u) / _per_sequence_rate(plain, u) for u in (1, 8, 256)}
    assert speedups[1] > 1.5 and speedups[8] > 1.0
    assert speedups[256] < 1.0  # past the crossover (the simulated batch reaches ~256)


# ---------------------------------------------------------------- the simulator's accounting


@settings(max_examples=12, deadline=None)
@given(st.sampled_from(["0.6", "0.8,0.4,0.2", "1.0", "0"]), st.sampled_from(["offline", "poisson"]))
def test_tokens_are_conserved_with_speculation(acceptance: str, kind: str) -> None:
    d = dep("llama-3.1-8b", "h100", 1, "fp8", method="eagle3", acceptance=acceptance)
    arrivals = Arrivals(kind, rate_per_s=20.0) if kind == "poisson" else Arrivals("offline")
    wl = Workload(LengthDist(300, "uniform", 200), LengthDist(120, "uniform", 100), arrivals, 120, seed=7)
    req = make_requests(wl)
    sim = simulate(build_replica(d), req, replicas=2)
    assert np.isfinite(sim.finish_s).all()
    assert sim.step_output_tokens is not None
    assert int((sim.step_output_tokens).sum()) == int(req.output_tokens.sum())  # every token emitted exactly once
    assert (sim.input_tokens == req.input_tokens).all()  # results keep the requests' order


def test_speculation_shortens_the_decode_as_acceptance_says() -> None:
    """One request alone: its decode steps number ceil((osl - 1) / E)."""
    d = dep("llama-3.1-8b", "h100", 1, "fp8", method="ngram", tokens=3, acceptance="1.0")
    req = Requests(np.zeros(1), np.array([100]), np.array([201]))
    sim = simulate(build_replica(d), req)
    assert float(sim.repeats.sum()) == 1 + 50  # one prefill step, then 200 tokens at 4 per step


def test_the_steady_state_prices_decode_per_token() -> None:
    plain = SteadyState(build_replica(dep()), 1000, 200)
    fast = SteadyState(build_replica(dep(method="ngram", acceptance="1.0", tokens=3)), 1000, 200)
    slow = SteadyState(build_replica(dep(method="eagle3", acceptance="0")), 1000, 200)
    assert fast.at_rate(0.5).tpot_p90_s < plain.at_rate(0.5).tpot_p90_s < slow.at_rate(0.5).tpot_p90_s


def test_a_speculation_value_checks_itself() -> None:
    with pytest.raises(InputError):
        Speculation("draft_model", 2, (0.5, 0.5))  # no draft model
    with pytest.raises(InputError):
        Speculation("eagle3", 2, (0.5,))
