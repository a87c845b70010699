"""The saturation knee: the analytic steady state the planner ranks with agrees with the
simulator on p90 TTFT from 10% to 95% of the replica's capacity, and the planner keeps its
stated headroom below that capacity."""

from __future__ import annotations

import numpy as np
import pytest

from inferplan.perf.replica import build_replica
from inferplan.perf.simulator import simulate
from inferplan.perf.steady_state import KNEE_HEADROOM, SteadyState, gated_ttft
from inferplan.perf.workload import Arrivals, LengthDist, Workload, make_requests
from inferplan.plan.question import Targets
from inferplan.plan.search import _max_rate
from inferplan.specs.deployment import Choices, resolve_deployment
from inferplan.specs.model_catalog import load_model

LOADS = (0.1, 0.3, 0.5, 0.7, 0.9, 0.95)
REQUESTS = 6000


def _simulated_ttft_p90(model: SteadyState, rate: float, isl: int, osl: int) -> float:
    reqs = make_requests(Workload(LengthDist(isl), LengthDist(osl), Arrivals("poisson", rate_per_s=rate), REQUESTS, 1))
    sim = simulate(model.replica, reqs)
    ttft = (sim.first_token_s - sim.arrival_s)[int(0.2 * REQUESTS) : int(0.9 * REQUESTS)]  # warm-up, drain out
    return float(np.percentile(ttft[np.isfinite(ttft)], 90))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "gpu", "tp", "isl", "osl", "tolerance"),
    [
        ("llama-3.1-8b", "h100-sxm", 1, 1000, 200, 0.10),
        ("llama-3.1-8b", "a100-sxm-80gb", 1, 500, 500, 0.10),
        ("qwen3-30b-a3b", "h100-sxm", 1, 1000, 200, 0.10),
        ("llama-3.1-70b", "h100-sxm", 4, 2000, 300, 0.10),
    ],
)
def test_steady_state_agrees_with_the_simulator(
    model: str, gpu: str, tp: int, isl: int, osl: int, tolerance: float
) -> None:
    dep = resolve_deployment(load_model(model), Choices(gpu, tp=tp))
    ss = SteadyState(build_replica(dep), isl, osl)
    capacity = ss.capacity_per_s()
    for load in LOADS:
        predicted = ss.at_rate(load * capacity).ttft_p90_s
        simulated = _simulated_ttft_p90(ss, load * capacity, isl, osl)
        assert predicted == pytest.approx(simulated, rel=tolerance), (model, load, predicted, simulated)


def test_gated_ttft_at_low_load_is_one_step_plus_the_prompt() -> None:
    mean, p90, step = gated_ttft(1e-6, 0.010, 0.030, 0.040)
    assert step == pytest.approx(0.010, rel=1e-3)
    assert mean == pytest.approx(0.005 + 0.010 + 0.030, rel=0.01)  # half a decode step's wait, then its step
    assert p90 == pytest.approx(0.009 + 0.010 + 0.030, rel=0.02)


def test_a_second_prompt_in_a_step_costs_more_than_the_first() -> None:
    dep = resolve_deployment(load_model("llama-3.1-70b"), Choices("h100-sxm", tp=4))
    ss = SteadyState(build_replica(dep), 2000, 300)
    # the first prompt hides the decode step's weight reads; a second one cannot
    assert ss.next_chunk_time(16) > ss.chunk_time(16)


def test_planner_keeps_headroom_below_the_knee() -> None:
    dep = resolve_deployment(load_model("llama-3.1-8b"), Choices("h100-sxm"))
    ss = SteadyState(build_replica(dep), 1000, 200)
    best, _ = _max_rate(ss, Targets())  # no latency target: only the knee limits the rate
    assert best <= (1 - KNEE_HEADROOM) * ss.capacity_per_s() * 1.0001
    assert best >= (1 - KNEE_HEADROOM) * ss.capacity_per_s() * 0.99
    assert not ss.at_rate(1.05 * ss.capacity_per_s()).stable
