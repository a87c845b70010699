"""The continuous-batching simulator: conservation, monotonicity, preemption, workloads."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inferplan.errors import ConfigError, InputError
from inferplan.perf.metrics import Slo, percentiles, serving_metrics
from inferplan.perf.replica import Replica, SchedulerConfig, build_replica
from inferplan.perf.simulator import simulate
from inferplan.perf.workload import Arrivals, LengthDist, Requests, Workload, load_trace, make_requests
from inferplan.specs.deployment import Deployment
from inferplan.specs.engines import get_engine
from inferplan.specs.environment import get_environment
from inferplan.specs.hardware import get_gpu
from inferplan.specs.model_catalog import load_model
from inferplan.specs.parallelism import Parallelism
from inferplan.specs.precision import get_kv_dtype, get_precision


def built(model: str = "llama-3.1-8b", gpu: str = "h100-sxm", tp: int = 1, engine: str = "vllm") -> Replica:
    return build_replica(
        Deployment(
            load_model(model),
            get_gpu(gpu),
            get_precision("bf16"),
            get_kv_dtype("bf16"),
            Parallelism(tp=tp),
            get_engine(engine),
        )
    )


B = built()


def with_sched(sched: SchedulerConfig) -> Replica:
    return replace(B, scheduler=sched)


def run(
    arrivals: Arrivals,
    n: int = 200,
    isl: LengthDist | None = None,
    osl: LengthDist | None = None,
    seed: int = 0,
    sched=None,
):
    wl = Workload(isl or LengthDist(500), osl or LengthDist(100), arrivals, n, seed)
    reqs = make_requests(wl)
    conc = arrivals.concurrency if arrivals.kind == "concurrency" else None
    return reqs, simulate(with_sched(sched or B.scheduler), reqs, concurrency=conc)


@pytest.mark.parametrize(
    "arrivals",
    [
        Arrivals("offline"),
        Arrivals("poisson", rate_per_s=20),
        Arrivals("gamma", rate_per_s=20, cv=3.0),
        Arrivals("concurrency", concurrency=16),
    ],
)
def test_every_request_finishes_once_with_all_tokens(arrivals: Arrivals) -> None:
    reqs, sim = run(arrivals, isl=LengthDist(500, "uniform", 400), osl=LengthDist(100, "lognormal", cv=0.8))
    assert np.isfinite(sim.finish_s).all() and np.isfinite(sim.first_token_s).all()
    assert (sim.first_token_s >= sim.arrival_s).all() and (sim.finish_s >= sim.first_token_s).all()
    # every decode token of every request is one token in one step
    decode_tokens = int(np.sum(sim.step_decode_tokens * sim.repeats))
    assert decode_tokens == int(np.sum(reqs.output_tokens - 1))


def test_concurrency_is_respected() -> None:
    _, sim = run(Arrivals("concurrency", concurrency=8), n=100)
    assert sim.step_num_seqs.max() <= 8
    assert serving_metrics(sim).mean_batch_size > 6


def test_higher_rate_never_lowers_ttft() -> None:
    ttfts = []
    for rate in (2.0, 10.0, 40.0, 160.0):
        _, sim = run(Arrivals("poisson", rate_per_s=rate), n=300)
        ttfts.append(serving_metrics(sim).ttft_s.mean)
    assert ttfts == sorted(ttfts)


def test_small_kv_cache_preempts_and_still_completes() -> None:
    tiny = replace(B.scheduler, kv_blocks=300.0)
    _, sim = run(Arrivals("offline"), n=60, isl=LengthDist(1000), osl=LengthDist(400), sched=tiny)
    assert sim.num_preemptions > 0
    assert np.isfinite(sim.finish_s).all()
    assert sim.step_kv_fraction.max() <= 1.0 + 1e-9


def test_reserve_full_policy_never_preempts() -> None:
    tiny = replace(B.scheduler, kv_blocks=300.0, reserve_full=True)
    _, sim = run(Arrivals("offline"), n=60, isl=LengthDist(1000), osl=LengthDist(400), sched=tiny)
    assert sim.num_preemptions == 0 and np.isfinite(sim.finish_s).all()


def test_request_that_cannot_fit_is_an_error() -> None:
    with pytest.raises(InputError, match="does not fit"):
        simulate(
            with_sched(replace(B.scheduler, kv_blocks=0.0)),
            make_requests(Workload(LengthDist(10), LengthDist(10), Arrivals("offline"), 2)),
        )


def test_offline_throughput_grows_with_batch_limit() -> None:
    small = replace(B.scheduler, max_num_seqs=8)
    _, a = run(Arrivals("offline"), n=200, sched=small)
    _, b = run(Arrivals("offline"), n=200)
    assert serving_metrics(b).output_token_throughput_per_s > 2 * serving_metrics(a).output_token_throughput_per_s


def test_replicas_double_capacity() -> None:
    wl = Workload(LengthDist(500), LengthDist(100), Arrivals("offline"), 400)
    small = with_sched(replace(B.scheduler, max_num_seqs=32))
    one = serving_metrics(simulate(small, make_requests(wl)))
    two = serving_metrics(simulate(small, make_requests(wl), replicas=2))
    assert two.output_token_throughput_per_s == pytest.approx(2 * one.output_token_throughput_per_s, rel=0.1)
    assert two.num_completed == 400


def test_vm_environment_slows_steps() -> None:
    wl = Workload(LengthDist(500), LengthDist(100), Arrivals("offline"), 100)
    base = serving_metrics(simulate(B, make_requests(wl)))
    in_vm = build_replica(replace(B.deployment, environment=get_environment("vm")))
    vm = serving_metrics(simulate(in_vm, make_requests(wl)))
    assert vm.output_token_throughput_per_s < base.output_token_throughput_per_s
    with pytest.raises(InputError):
        get_environment("vm", {"jitter_loss": 0.95})
    with pytest.raises(InputError):
        get_environment("cloud")


def test_goodput_under_targets() -> None:
    _, sim = run(Arrivals("poisson", rate_per_s=30), n=300)
    loose = serving_metrics(sim, Slo(ttft_s=100.0, tpot_s=10.0))
    strict = serving_metrics(sim, Slo(ttft_s=1e-4))
    assert loose.goodput_requests_per_s == pytest.approx(loose.request_throughput_per_s)
    assert strict.goodput_requests_per_s == 0.0


def test_seeded_workloads_are_reproducible() -> None:
    wl = Workload(
        LengthDist(300, "lognormal", cv=1.0),
        LengthDist(50, "uniform", 40),
        Arrivals("gamma", rate_per_s=5, cv=2),
        50,
        seed=7,
    )
    a, b = make_requests(wl), make_requests(wl)
    assert (a.arrival_s == b.arrival_s).all() and (a.input_tokens == b.input_tokens).all()
    c = make_requests(replace(wl, seed=8))
    assert not (a.input_tokens == c.input_tokens).all()


def test_trace_file(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    path.write_text("arrival_s,input_tokens,output_tokens\n0.5,100,20\n0.0,50,10\n")
    reqs = load_trace(path)
    assert list(reqs.arrival_s) == [0.0, 0.5] and list(reqs.input_tokens) == [50, 100]
    path.write_text("arrival_s,input_tokens,output_tokens\n0.5,abc,20\n")
    with pytest.raises(ConfigError, match="line 2"):
        load_trace(path)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "poisson", "rate_per_s": 0.0},
        {"kind": "gamma", "rate_per_s": 1, "cv": 0},
        {"kind": "concurrency", "concurrency": 0},
        {"kind": "burst"},
    ],
)
def test_bad_arrivals(kwargs: dict[str, object]) -> None:
    with pytest.raises(InputError):
        Arrivals(**kwargs)  # type: ignore[arg-type]


def test_weighted_percentiles() -> None:
    p = percentiles(np.array([1.0, 2.0, 3.0]), np.array([1, 0, 8]))
    assert p.p50 == 3.0 and p.mean == pytest.approx((1 + 24) / 9)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 40), isl=st.integers(1, 3000), osl=st.integers(1, 300), seed=st.integers(0, 10))
def test_conservation_property(n: int, isl: int, osl: int, seed: int) -> None:
    wl = Workload(
        LengthDist(isl, "uniform", isl // 2),
        LengthDist(osl, "uniform", osl // 2),
        Arrivals("poisson", rate_per_s=5.0),
        n,
        seed,
    )
    reqs = make_requests(wl)
    sim = simulate(B, reqs)
    assert np.isfinite(sim.finish_s).all()
    assert int(np.sum(sim.step_decode_tokens * sim.repeats)) == int(np.sum(reqs.output_tokens - 1))
    assert isinstance(reqs, Requests)
