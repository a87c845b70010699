"""Price and rank deployments for a demand. :func:`search` is a pure function: candidates in,
ranked results out.

Each candidate replica is priced with the analytic steady state
(:class:`~inferplan.perf.steady_state.SteadyState`); the largest per-replica rate that meets
the p90 targets sets the replicas, ``ceil(rate / max_rate)``; the cheapest cloud capacity
prices them (whole instances: spare GPUs become extra replicas at no cost).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from inferplan.errors import InferplanError
from inferplan.perf.replica import build_replica
from inferplan.perf.steady_state import KNEE_HEADROOM, Operating, SteadyState
from inferplan.plan.question import Demand, Targets
from inferplan.specs.deployment import Deployment
from inferplan.specs.prices import Offer
from inferplan.specs.rentals import Rental, cheapest_rental
from inferplan.units import counted

__all__ = [
    "RANKINGS",
    "Evaluated",
    "evaluate",
    "pareto_front",
    "search",
    "steady_state",
    "steady_state_curve",
]

RANKINGS = ("cost", "latency", "gpus", "throughput_per_gpu")
_FRONTIER_LOADS = (0.05, 0.2, 0.4, 0.6, 0.8, 0.95)


@dataclass(frozen=True, slots=True)
class Evaluated:
    """One deployment priced for the demand: replicas, one replica's steady state at its share
    of the demand (``per_replica``) and at low load (``best_latency``), the most one replica
    sustains within the targets, and the cheapest cloud capacity for the replicas."""

    deployment: Deployment
    replicas: int
    per_replica: Operating | None
    best_latency: Operating | None
    max_rate_per_replica: float
    rental: Rental | None
    meets: bool
    miss: str = ""
    frontier: list[tuple[float, float]] = field(default_factory=list)

    @property
    def num_gpus(self) -> int:
        return self.replicas * self.deployment.gpus_per_replica

    @property
    def offer(self) -> Offer | None:
        return self.rental.offer if self.rental else None

    @property
    def usd_per_hour(self) -> float | None:
        return self.rental.usd_per_hour if self.rental else None

    def label(self) -> str:
        return self.deployment.label()

    def fleet(self) -> str:
        """'3 replicas = 12 GPUs' ('1 replica = 1 CPU socket')."""
        return f"{counted(self.replicas, 'replica')} = {self.deployment.gpu.count(self.num_gpus)}"

    def usd_per_mtok(self, demand_output_tokens_per_s: float) -> float | None:
        if self.usd_per_hour is None or demand_output_tokens_per_s <= 0:
            return None
        return self.usd_per_hour / (demand_output_tokens_per_s * 3600.0) * 1e6


def meets(op: Operating, t: Targets) -> bool:
    return op.stable and not t.exceeded(op.ttft_p90_s, op.tpot_p90_s, op.e2e_p90_s)


def miss_text(op: Operating, t: Targets) -> str:
    return "; ".join(
        f"{name.upper()} p90 {value * 1e3:,.0f} ms > {limit * 1e3:,.0f} ms"
        for name, value, limit in t.exceeded(op.ttft_p90_s, op.tpot_p90_s, op.e2e_p90_s)
    )


def steady_state(dep: Deployment, demand: Demand) -> SteadyState | None:
    """The analytic model of one replica, or None if it cannot hold one request."""
    try:
        replica = build_replica(dep.with_replicas(1))
    except InferplanError:
        return None
    if replica.scheduler.kv_tokens < demand.context_tokens:
        return None
    # issue 13: a session's prompt carries the conversation so far; the prefix cache holds part of it
    cached = demand.traffic.cached_tokens(demand.isl, demand.osl, replica.scheduler.block_size)
    return SteadyState(replica, demand.prompt_tokens, demand.osl, cached if dep.features.prefix_caching else 0)


def steady_state_curve(dep: Deployment, demand: Demand, rates_per_replica: list[float]) -> list[Operating]:
    """The analytic steady state (what the search ranks on) of one replica at each rate;
    unstable points have infinite latencies."""
    model = steady_state(dep, demand)
    return [model.at_rate(r) for r in rates_per_replica] if model else []


def evaluate(dep: Deployment, demand: Demand, targets: Targets, offers: list[Offer]) -> Evaluated | None:
    """The cheapest way to serve ``demand`` with replicas of ``dep`` (None if it cannot run)."""
    model = steady_state(dep, demand)
    if model is None:
        return None
    low_load = model.at_rate(1e-6)
    lo, hi = _max_rate(model, targets)
    frontier = [
        (op.rate_per_s * model.osl / dep.gpus_per_replica, 1.0 / op.tpot_mean_s)
        for op in (model.at_rate(f * max(hi, 1e-9)) for f in _FRONTIER_LOADS)
        if op.stable
    ]
    if lo <= 0.0:
        miss = miss_text(low_load, targets) or "unstable even at low load"
        return Evaluated(dep, 0, None, low_load, 0.0, None, False, miss, frontier)
    replicas, op = _replicas_needed(model, demand, targets, lo)
    rental = cheapest_rental(offers, dep.gpu, dep.gpus_per_replica, replicas)
    if rental and rental.replicas_held > replicas and demand.rate_per_s is not None:
        # whole instances are rented: spare GPUs become extra replicas (headroom at no cost)
        replicas, op = rental.replicas_held, model.at_rate(demand.rate_per_s / rental.replicas_held)
    ok = meets(op, targets) and (
        targets.max_usd_per_hour is None or (rental is not None and rental.usd_per_hour <= targets.max_usd_per_hour)
    )
    miss = "" if ok else (miss_text(op, targets) or "over budget")
    return Evaluated(dep, replicas, op, low_load, lo, rental, ok, miss, frontier)


def _max_rate(model: SteadyState, targets: Targets) -> tuple[float, float]:
    """Bisection for the largest per-replica rate that is stable, meets the targets and stays
    :data:`KNEE_HEADROOM` below the replica's capacity (the knee): (highest rate that meets
    them, lowest rate found not to)."""
    hi = model.capacity_per_s() * (1.0 - KNEE_HEADROOM)
    lo = 0.0
    for _ in range(20):
        mid = (lo + hi) / 2
        if meets(model.at_rate(mid), targets):
            lo = mid
        else:
            hi = mid
    return lo, hi


def _replicas_needed(model: SteadyState, demand: Demand, targets: Targets, max_rate: float) -> tuple[int, Operating]:
    """Replicas to serve the demand within the targets, and one replica's operating point."""
    if demand.rate_per_s is not None:
        replicas = max(math.ceil(demand.rate_per_s / max_rate - 1e-9), 1)
        return replicas, model.at_rate(demand.rate_per_s / replicas)
    assert demand.concurrency is not None
    replicas = 1
    op = model.at_concurrency(float(demand.concurrency))
    while not meets(op, targets) and replicas < 100_000:
        replicas = replicas * 2 if replicas < 8 else replicas + max(replicas // 4, 1)
        op = model.at_concurrency(demand.concurrency / replicas)
    if targets.min_output_tokens_per_s:
        need = targets.min_output_tokens_per_s / max(op.rate_per_s * replicas * model.osl, 1e-9)
        if need > 1:
            replicas = math.ceil(replicas * need)
            op = model.at_concurrency(demand.concurrency / replicas)
    return replicas, op


def demand_tokens_per_s(demand: Demand, results: list[Evaluated]) -> float:
    """Output tokens/s the demand asks for; for a closed loop, the median feasible throughput."""
    if demand.rate_per_s is not None:
        return demand.rate_per_s * demand.osl
    rates = [e.per_replica.rate_per_s * e.replicas for e in results if e.per_replica and e.meets]
    return (sorted(rates)[len(rates) // 2] if rates else 0.0) * demand.osl


def search(
    cands: list[Deployment], demand: Demand, targets: Targets, offers: list[Offer], rank_by: str = "cost"
) -> list[Evaluated]:
    """Evaluate every candidate; those meeting the targets first, ranked by ``rank_by``
    (cost, latency, gpus, throughput_per_gpu); then the misses, nearest first."""
    results = [e for c in cands if (e := evaluate(c, demand, targets, offers))]
    return rank(results, demand, rank_by)


def rank(results: list[Evaluated], demand: Demand, rank_by: str) -> list[Evaluated]:
    tokens = demand_tokens_per_s(demand, results)

    def key(e: Evaluated) -> tuple[float, ...]:
        cost = e.usd_per_mtok(tokens) or math.inf
        lat = e.per_replica.e2e_p90_s if e.per_replica else math.inf
        tput = -e.max_rate_per_replica / e.deployment.gpus_per_replica
        return {
            "cost": (cost, e.num_gpus, lat),
            "latency": (lat, cost),
            "gpus": (e.num_gpus, cost),
            "throughput_per_gpu": (tput, cost),
        }[rank_by]

    good = sorted((e for e in results if e.meets), key=key)
    bad = sorted(
        (e for e in results if not e.meets),
        key=lambda e: e.best_latency.ttft_p90_s if e.best_latency else math.inf,
    )
    return good + bad


def pareto_front(results: list[Evaluated]) -> list[tuple[float, float, str]]:
    """Points (output tokens/s per GPU, tokens/s per user) not dominated by any other."""
    pts = [(x, y, e.label()) for e in results for x, y in e.frontier]
    pts.sort(key=lambda p: (-p[0], -p[1]))
    front, best_y = [], -math.inf
    for x, y, label in pts:
        if y > best_y:
            front.append((x, y, label))
            best_y = y
    return front
