"""Planner search: properties, golden plans, infeasible targets, the analytic model vs the simulator."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inferplan.errors import InfeasibleError, InputError
from inferplan.plan.candidates import SearchSpace, candidates
from inferplan.plan.question import Demand, PlanQuestion, Targets
from inferplan.plan.search import pareto_front, search
from inferplan.plan.service import answer
from inferplan.present.payload import to_json_dict
from inferplan.present.payload_plan import plan_payload
from inferplan.specs.deployment import Deployment
from inferplan.specs.engines import get_engine
from inferplan.specs.environment import BARE_METAL
from inferplan.specs.hardware import get_gpu, gpu_catalog
from inferplan.specs.model_catalog import load_model
from inferplan.specs.precision import get_precision
from inferplan.specs.prices import load_offers
from tests.conftest import DATA

VLLM = get_engine("vllm")
OFFERS = load_offers()
MODEL = load_model("llama-3.1-70b")
PRECS = [get_precision("bf16"), get_precision("fp8")]


def cands_for(gpus: list[str], kv_dtypes: tuple[str, ...] = ("auto",)) -> list[Deployment]:
    space = SearchSpace(tuple(get_gpu(g) for g in gpus), tuple(PRECS), kv_dtypes)
    return candidates(MODEL, space, VLLM, BARE_METAL)


def best_cost(gpus: list[str], demand: Demand, targets: Targets) -> float:
    ranked = search(cands_for(gpus), demand, targets, OFFERS)
    costs = [e.usd_per_hour for e in ranked if e.meets and e.usd_per_hour is not None]
    return min(costs) if costs else float("inf")


@settings(max_examples=8, deadline=None)
@given(
    ttft_ms=st.integers(150, 2000),
    extra_ms=st.integers(0, 3000),
    rate=st.sampled_from([1.0, 4.0, 10.0]),
)
def test_looser_target_never_raises_best_cost(ttft_ms: int, extra_ms: int, rate: float) -> None:
    demand = Demand(2000, 300, rate_per_s=rate)
    tight = best_cost(["h100-sxm", "a100-sxm-80gb"], demand, Targets(ttft_p90_s=ttft_ms / 1e3))
    loose = best_cost(["h100-sxm", "a100-sxm-80gb"], demand, Targets(ttft_p90_s=(ttft_ms + extra_ms) / 1e3))
    assert loose <= tight


@settings(max_examples=6, deadline=None)
@given(extra=st.sampled_from(["h200-sxm", "b200", "l40s", "mi300x", "a100-sxm-40gb"]))
def test_one_more_gpu_type_never_raises_best_cost(extra: str) -> None:
    demand, targets = Demand(1000, 200, rate_per_s=4.0), Targets(ttft_p90_s=0.5, tpot_p90_s=0.05)
    base = best_cost(["h100-sxm"], demand, targets)
    assert best_cost(["h100-sxm", extra], demand, targets) <= base


def test_candidates_respect_divisibility_and_memory() -> None:
    cands = cands_for(list(gpu_catalog()), ("auto", "fp8"))
    assert cands
    for c in cands:
        assert MODEL.attention.num_heads % c.parallelism.tp == 0
        assert c.parallelism.tp <= 8
    assert not any(c.gpu.id == "l4" and c.gpus_per_replica == 1 for c in cands)  # 70B never fits one L4


def test_bad_demand() -> None:
    with pytest.raises(InputError):
        Demand(100, 100)
    with pytest.raises(InputError):
        Demand(100, 100, rate_per_s=1.0, concurrency=3)
    with pytest.raises(InputError):
        Demand(0, 100, rate_per_s=1.0)


def test_infeasible_explains_nearest_miss() -> None:
    with pytest.raises(InfeasibleError) as info:
        answer(
            PlanQuestion(
                model="llama-3.1-70b",
                isl=2000,
                osl=300,
                rate_per_s=2.0,
                ttft_ms=10.0,
                gpus=["h100-sxm"],
                dtypes=["bf16", "fp8"],
                kv_dtypes=["auto"],
                verify=0,
            ),
            files=False,
        )
    message = str(info.value)
    assert "best reaches TTFT p90" in message and "relax to --ttft" in message


def test_analytic_estimate_agrees_with_simulation() -> None:
    """The fast estimator that prunes the search is checked against the simulator."""
    question = PlanQuestion(
        model="llama-3.1-70b",
        isl=2000,
        osl=300,
        rate_per_s=4.0,
        ttft_ms=500.0,
        tpot_ms=50.0,
        gpus=["h100-sxm"],
        dtypes=["fp8"],
        kv_dtypes=["auto"],
    )
    plan = answer(question, files=False)
    op, check = plan.chosen.per_replica, plan.verification
    assert op is not None and check is not None
    sim = check.metrics
    assert sim.tpot_s.p90 == pytest.approx(op.tpot_p90_s, rel=0.35)
    assert sim.ttft_s.p90 < 0.5 and sim.num_completed == sim.num_requests
    assert check.steady, check.note  # the check ran long enough to serve the demand it was asked for


def test_pareto_front_is_non_dominated() -> None:
    ranked = search(cands_for(["h100-sxm", "h200-sxm"]), Demand(1000, 200, rate_per_s=2), Targets(), OFFERS)
    front = pareto_front(ranked)
    assert front
    for x, y, _ in front:
        assert not any((x2 >= x and y2 > y) or (x2 > x and y2 >= y) for x2, y2, _ in front)


GOLDEN = DATA / "golden_plans.json"
CASES: dict[str, dict[str, Any]] = {
    "llama70b-10rps-ttft200": dict(model="llama-3.1-70b", isl=2000, osl=300, rate=10.0, ttft=0.2),
    "llama8b-2rps-tpot20": dict(model="llama-3.1-8b", isl=1000, osl=200, rate=2.0, tpot=0.02),
    "mixtral-5rps": dict(model="mixtral-8x7b", isl=1000, osl=250, rate=5.0, ttft=1.0, tpot=0.05),
}


def _golden(case: dict[str, object]) -> dict[str, object]:
    question = PlanQuestion(
        model=str(case["model"]),
        isl=int(case["isl"]),  # type: ignore[call-overload]
        osl=int(case["osl"]),  # type: ignore[call-overload]
        rate_per_s=float(case["rate"]),  # type: ignore[arg-type]
        ttft_ms=float(case["ttft"]) * 1e3 if "ttft" in case else None,  # type: ignore[arg-type]
        tpot_ms=float(case["tpot"]) * 1e3 if "tpot" in case else None,  # type: ignore[arg-type]
        verify=0,
    )
    r = to_json_dict(plan_payload(answer(question, files=False), 3))["recommendation"]
    return {k: r[k] for k in ("label", "replicas", "num_gpus", "usd_per_hour")}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_plans(name: str) -> None:
    """Set INFERPLAN_REGEN_GOLDEN=1 to rewrite tests/data/golden_plans.json after a deliberate
    model change (and say why in the commit)."""
    got = _golden(CASES[name])
    if os.environ.get("INFERPLAN_REGEN_GOLDEN"):
        data = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
        data[name] = got
        GOLDEN.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    expected = json.loads(Path(GOLDEN).read_text())[name]
    assert got == expected
