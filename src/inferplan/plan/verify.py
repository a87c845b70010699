"""Check a ranked configuration with the full simulator, at steady state.

The analytic steady state ranks; the simulator checks. A check is only worth reading once the
simulated system has warmed up and then served the demand for long enough: the arrivals span a
warm-up (several end-to-end latencies, excluded) and a measurement window, and the check
reports whether the throughput measured in the window matches the demand within
:data:`STEADY_TOLERANCE` (a closed loop: whether both halves of the window agree). When it does
not, it says why: the replicas cannot keep up (the queue grows), or the simulation budget ran
out first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from inferplan.perf.metrics import ServingMetrics, Slo, output_tokens_in_window, serving_metrics
from inferplan.perf.replica import build_replica
from inferplan.perf.sim_result import FeatureStats
from inferplan.perf.simulator import SimResult, simulate
from inferplan.perf.workload import Arrivals, LengthDist, Workload, make_requests
from inferplan.plan.question import Demand, Targets
from inferplan.plan.search import Evaluated

__all__ = ["STEADY_TOLERANCE", "Verification", "plan_requests", "steadiness", "verify"]

#: Measured throughput within this fraction of the demand counts as steady state.
STEADY_TOLERANCE = 0.05
#: Prompt + output tokens one check may simulate, and engine steps (both bound the time a
#: check takes: a few seconds on a laptop).
VERIFY_TOKEN_BUDGET = 20_000_000
VERIFY_MAX_STEPS = 1_500_000
#: The warm-up spans this many end-to-end latencies; the window at least this many more.
WARMUP_E2E = 3.0
WINDOW_E2E = 10.0
MIN_MEASURED_REQUESTS = 1000
MAX_EXTRA_REPLICAS = 4


@dataclass(frozen=True, slots=True)
class Verification:
    """The simulator's check of one configuration (at ``replicas`` replicas)."""

    replicas: int
    added_replicas: int
    metrics: ServingMetrics  # over the measurement window only
    num_requests: int
    simulated_s: float
    warmup_s: float
    demand_tokens_per_s: float | None
    steady: bool
    note: str
    features: FeatureStats | None = None  # issue 13: the prefix cache's hits, adapter loads

    @property
    def hit_rate(self) -> float | None:
        """The simulated prefix-cache hit rate (None: no requests shared tokens)."""
        cache = self.features.cache if self.features else None
        return cache.hit_rate if cache else None

    @property
    def window_s(self) -> float:
        return self.metrics.duration_s


def plan_requests(demand: Demand, e2e_s: float) -> tuple[int, float]:
    """(requests to simulate, warm-up seconds) so that the window holds enough requests and
    end-to-end latencies, within the token budget."""
    per_request_tokens = demand.prompt_tokens + demand.osl
    budget = max(int(VERIFY_TOKEN_BUDGET // per_request_tokens), 200)
    if demand.rate_per_s is None:
        assert demand.concurrency is not None
        n = min(max(MIN_MEASURED_REQUESTS, 20 * demand.concurrency), budget)
        return n, 0.0
    warmup = WARMUP_E2E * e2e_s
    shape = demand.traffic.shape
    if shape is not None and shape.sessions:  # until sessions of every age run: a whole session's life
        warmup = max(warmup, shape.turns * (shape.think_time_s + e2e_s))
    span = warmup + max(WINDOW_E2E * e2e_s, MIN_MEASURED_REQUESTS / demand.rate_per_s)
    return min(max(math.ceil(span * demand.rate_per_s), 200), budget), warmup


def steadiness(sim: SimResult, demand: Demand, window: tuple[float, float], finished: bool) -> tuple[bool, str]:
    start, end = window
    if demand.rate_per_s is not None:
        want = demand.rate_per_s * demand.osl
        got = output_tokens_in_window(sim, start, end) / max(end - start, 1e-12)
        gap = got / want - 1.0
        if abs(gap) <= STEADY_TOLERANCE:
            return True, f"steady state: {got:,.0f} output tok/s measured against {want:,.0f} demanded ({gap:+.1%})"
        why = (
            "the simulation budget ended before the window did"
            if not finished
            else "the replicas cannot keep up: the queue grows"
            if gap < 0
            else "the window is too short for this burstiness"
        )
        return False, f"not at steady state: {got:,.0f} output tok/s measured against {want:,.0f} demanded; {why}"
    mid = (start + end) / 2
    first = output_tokens_in_window(sim, start, mid) / max(mid - start, 1e-12)
    second = output_tokens_in_window(sim, mid, end) / max(end - mid, 1e-12)
    gap = second / max(first, 1e-12) - 1.0
    if abs(gap) <= STEADY_TOLERANCE:
        return True, f"steady state: both halves of the window serve {first:,.0f} and {second:,.0f} output tok/s"
    return False, f"not at steady state: the two halves of the window serve {first:,.0f} and {second:,.0f} tok/s"


def _window(sim: SimResult, warmup_s: float, closed_loop: bool) -> tuple[float, float]:
    if closed_loop:
        done = sim.finish_s[~(sim.finish_s != sim.finish_s)]
        end = float(done.max()) if done.size else 0.0
        return end * 0.2, end * 0.9
    return warmup_s, float(sim.arrival_s.max()) if sim.arrival_s.size else warmup_s


def verify(e: Evaluated, demand: Demand, targets: Targets, seed: int = 1) -> Verification:
    """Simulate ``e`` at the demand; add replicas (up to :data:`MAX_EXTRA_REPLICAS`) until the
    simulated p90 latencies meet the targets."""
    e2e = e.per_replica.e2e_p90_s if e.per_replica and math.isfinite(e.per_replica.e2e_p90_s) else 10.0
    n, warmup = plan_requests(demand, e2e)
    closed = demand.rate_per_s is None
    arrivals = (
        Arrivals("concurrency", concurrency=demand.concurrency or 1)
        if closed
        else Arrivals("poisson", rate_per_s=demand.rate_per_s or 1.0)
    )
    traffic = demand.traffic  # issue 13: a dataset's lengths, sessions, shared prompts, adapters
    workload = Workload(
        LengthDist(demand.isl), LengthDist(demand.osl), arrivals, n, seed, traffic.lengths, traffic.shape
    )
    requests = make_requests(workload)
    slo = Slo(targets.ttft_p90_s, targets.tpot_p90_s, targets.e2e_p90_s)
    replica = build_replica(e.deployment.with_replicas(1))
    replicas = max(e.replicas, 1)
    for extra in range(MAX_EXTRA_REPLICAS + 1):
        sim = simulate(replica, requests, replicas=replicas, concurrency=demand.concurrency, max_steps=VERIFY_MAX_STEPS)
        window = _window(sim, warmup, closed)
        metrics = serving_metrics(sim, slo, window)
        if not targets.exceeded(metrics.ttft_s.p90, metrics.tpot_s.p90, metrics.e2e_s.p90):
            break
        if extra < MAX_EXTRA_REPLICAS:
            replicas += 1
    finished = bool((sim.finish_s == sim.finish_s).all())
    steady, note = steadiness(sim, demand, window, finished)
    return Verification(
        replicas=replicas,
        added_replicas=replicas - max(e.replicas, 1),
        metrics=metrics,
        num_requests=n,
        simulated_s=float(max(sim.finish_s[sim.finish_s == sim.finish_s].max(), 0.0)) if finished else window[1],
        warmup_s=window[0],
        demand_tokens_per_s=demand.output_tokens_per_s,
        steady=steady,
        note=note,
        features=sim.features,
    )
