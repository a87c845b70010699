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
from inferplan.plan.planner import make_plan
from inferplan.plan.search import Demand, Targets, candidates, pareto_front, search
from inferplan.present.payload_plan import plan_dict
from inferplan.specs.engines import get_engine
from inferplan.specs.environment import get_environment
from inferplan.specs.hardware import get_gpu, gpu_catalog
from inferplan.specs.model_catalog import load_model
from inferplan.specs.precision import get_precision
from inferplan.specs.prices import load_offers
from tests.conftest import DATA

VLLM = get_engine("vllm")
OFFERS = load_offers()
MODEL = load_model("llama-3.1-70b")
PRECS = [get_precision("bf16"), get_precision("fp8")]


def best_cost(gpus: list[str], demand: Demand, targets: Targets) -> float:
    cands = candidates(MODEL, [get_gpu(g) for g in gpus], PRECS, ["auto"])
    ranked = search(MODEL, cands, demand, targets, VLLM, OFFERS)
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
    cands = candidates(MODEL, gpu_catalog().values(), PRECS, ["auto", "fp8"])
    assert cands
    for c in cands:
        assert MODEL.attention.num_heads % c.tp == 0
        assert c.tp <= 8
    assert not any(c.gpu.id == "l4" and c.tp * c.pp == 1 for c in cands)  # 70B never fits one L4


def test_bad_demand() -> None:
    with pytest.raises(InputError):
        Demand(100, 100)
    with pytest.raises(InputError):
        Demand(100, 100, rate_per_s=1.0, concurrency=3)
    with pytest.raises(InputError):
        Demand(0, 100, rate_per_s=1.0)


def test_infeasible_explains_nearest_miss() -> None:
    with pytest.raises(InfeasibleError) as info:
        make_plan(
            MODEL,
            Demand(2000, 300, rate_per_s=2),
            Targets(ttft_p90_s=0.01),
            gpus=[get_gpu("h100-sxm")],
            precisions=PRECS,
            kv_dtypes=["auto"],
            engine=VLLM,
            env=get_environment("bare-metal"),
            offers=OFFERS,
            verify=0,
        )
    message = str(info.value)
    assert "best reaches TTFT p90" in message and "relax to --ttft" in message


def test_analytic_estimate_agrees_with_simulation() -> None:
    """The fast estimator that prunes the search is checked against the simulator."""
    plan = make_plan(
        MODEL,
        Demand(2000, 300, rate_per_s=4),
        Targets(ttft_p90_s=0.5, tpot_p90_s=0.05),
        gpus=[get_gpu("h100-sxm")],
        precisions=[get_precision("fp8")],
        kv_dtypes=["auto"],
        engine=VLLM,
        env=get_environment("bare-metal"),
        offers=OFFERS,
        verify=1,
    )
    op, sim = plan.chosen.per_replica, plan.verified
    assert op is not None and sim is not None
    assert sim.tpot_s.p90 == pytest.approx(op.tpot_p90_s, rel=0.35)
    assert sim.ttft_s.p90 < 0.5 and sim.num_completed == sim.num_requests


def test_pareto_front_is_non_dominated() -> None:
    cands = candidates(MODEL, [get_gpu("h100-sxm"), get_gpu("h200-sxm")], PRECS, ["auto"])
    ranked = search(MODEL, cands, Demand(1000, 200, rate_per_s=2), Targets(), VLLM, OFFERS)
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
    plan = make_plan(
        load_model(str(case["model"])),
        Demand(
            int(case["isl"]),
            int(case["osl"]),  # type: ignore[call-overload]
            rate_per_s=float(case["rate"]),
        ),  # type: ignore[arg-type]
        Targets(ttft_p90_s=case.get("ttft"), tpot_p90_s=case.get("tpot")),  # type: ignore[arg-type]
        gpus=None,
        precisions=None,
        kv_dtypes=["auto", "fp8"],
        engine=VLLM,
        env=get_environment("bare-metal"),
        offers=OFFERS,
        verify=0,
    )
    r = plan_dict(plan, 3)["recommendation"]
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
