"""Search prefill/decode splits (xPyD) beside the co-located configurations (issue 14).

Every pair of candidate replicas with the same weight precision and KV dtype is a split: one
serves the prefill pool, the other the decode pool. Each pool is sized on its own target:

* a decode replica's largest rate meets TPOT p90 (and stays stable) at its decode-only batch;
* a prefill replica's largest rate keeps TTFT p90 = prefill + M/D/1 wait + exposed KV transfer +
  the first decode step within the TTFT target (and E2E's share of it), in closed form:
  ``2.3 rho / (2 (1 - rho)) S <= budget`` gives ``rho <= c / (1 + c)``, ``c = budget / (1.15 S)``;

then ``x = ceil(rate / prefill max)``, ``y = ceil(rate / decode max)`` replicas, both priced with
the cheapest cloud capacity. Splits are searched for a request rate (a closed loop of users has
no arrival rate to split).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from inferplan.errors import InferplanError
from inferplan.limits import MAX_PARALLEL
from inferplan.perf.disaggregation import DisaggOperating, DisaggSteadyState
from inferplan.perf.replica import build_replica
from inferplan.perf.steady_state import TTFT_P90_WAITS, SteadyState
from inferplan.plan.question import Demand, Targets
from inferplan.plan.search import meets, miss_text
from inferplan.specs.deployment import Deployment
from inferplan.specs.disaggregation import Disaggregated
from inferplan.specs.prices import Offer
from inferplan.specs.rentals import Rental, cheapest_rental

__all__ = ["DisaggEvaluated", "PoolSetup", "rank_splits", "search_disaggregated"]

#: The busiest a prefill replica runs without a TTFT target (the M/D/1 wait grows without bound).
MAX_PREFILL_UTILIZATION = 0.95


@dataclass(frozen=True, slots=True)
class PoolSetup:
    """How the pools connect: the link between them and the transfer overlap (None: the engine's)."""

    kv_link_id: str
    overlap: str | None = None


@dataclass(frozen=True, slots=True)
class DisaggEvaluated:
    """One split priced for the demand: replicas of each pool, the steady state at the demand, each
    pool replica's largest rate within the targets, and each pool's cloud capacity."""

    disagg: Disaggregated
    at_demand: DisaggOperating
    prefill_max_rate: float
    decode_max_rate: float
    prefill_rental: Rental | None
    decode_rental: Rental | None
    meets: bool
    miss: str = ""

    @property
    def usd_per_hour(self) -> float | None:
        if self.prefill_rental is None or self.decode_rental is None:
            return None
        return self.prefill_rental.usd_per_hour + self.decode_rental.usd_per_hour

    @property
    def num_gpus(self) -> int:
        return self.disagg.num_gpus

    def label(self) -> str:
        return self.disagg.label()


@dataclass(frozen=True, slots=True)
class _Side:
    """One candidate replica's steady state and, as a decode replica, its largest rate."""

    dep: Deployment
    model: SteadyState
    decode_max_rate: float


def _decode_max_rate(ss: DisaggSteadyState, targets: Targets) -> float:
    """Bisection for the largest decode-replica rate that is stable and meets TPOT p90."""
    dec = ss.decode
    hi = dec.max_batch / max(dec.osl * dec.token_time(dec.max_batch), 1e-12)
    lo = 0.0
    for _ in range(40):
        mid = (lo + hi) / 2
        _, tpot, stable = ss.decode_at(mid)
        ok = stable and (targets.tpot_p90_s is None or tpot <= targets.tpot_p90_s)
        lo, hi = (mid, hi) if ok else (lo, mid)
    return lo


def _prefill_max_rate(ss: DisaggSteadyState, targets: Targets, decoded: tuple[float, float, bool]) -> float:
    """The largest prefill-replica rate whose p90 queueing fits the TTFT budget (closed form);
    ``decoded``: the decode replica's (batch, time per token, stable) at its share of the demand."""
    _, tpot, _ = decoded
    first = ss.prefill.prefill_latency + ss.transfer.exposed_s + tpot * ss.decode.replica.tokens_per_step
    limits = [t for t in (targets.ttft_p90_s,) if t is not None]
    if targets.e2e_p90_s is not None:
        limits.append(targets.e2e_p90_s - ss.osl * tpot)
    work = ss.prefill.prefill_work
    if not limits:
        return MAX_PREFILL_UTILIZATION / work
    budget = min(limits) - first
    if budget <= 0:
        return 0.0
    c = budget / (TTFT_P90_WAITS / 2.0 * work)
    return min(c / (1.0 + c), MAX_PREFILL_UTILIZATION) / work


def _side(dep: Deployment, demand: Demand) -> SteadyState | None:
    try:
        replica = build_replica(dep.with_replicas(1))
    except InferplanError:
        return None
    if replica.scheduler.kv_tokens < demand.context_tokens:
        return None
    return SteadyState(replica, demand.isl, demand.osl)


class _Pricer:
    """Cheapest rentals, memoised by (GPU, GPUs per replica, replicas)."""

    def __init__(self, offers: list[Offer]) -> None:
        self.offers = offers
        self.memo: dict[tuple[str, int, int], Rental | None] = {}

    def __call__(self, dep: Deployment, replicas: int) -> Rental | None:
        key = (dep.gpu.id, dep.gpus_per_replica, replicas)
        if key not in self.memo:
            self.memo[key] = cheapest_rental(self.offers, dep.gpu, dep.gpus_per_replica, replicas)
        return self.memo[key]


@dataclass(frozen=True, slots=True)
class _Pair:
    """A prefill side and a decode side with the decode pool's replicas and state at the demand."""

    prefill: _Side
    decode: _Side
    decode_replicas: int
    decoded: tuple[float, float, bool]


def _evaluate(
    pair: _Pair, demand: Demand, targets: Targets, pools: PoolSetup, price: _Pricer
) -> DisaggEvaluated | None:
    rate = demand.rate_per_s
    assert rate is not None
    p, d, y = pair.prefill, pair.decode, pair.decode_replicas
    # the prefill pool samples one token per prompt: it runs no drafter
    dis = Disaggregated(p.dep.with_speculation(None), d.dep.with_replicas(y), pools.kv_link_id, overlap=pools.overlap)
    p_max = _prefill_max_rate(DisaggSteadyState(dis, demand.isl, demand.osl, (p.model, d.model)), targets, pair.decoded)
    if p_max <= 0:
        return None
    x = max(math.ceil(rate / p_max - 1e-9), 1)
    if x > MAX_PARALLEL:
        return None
    sized = dis.with_replicas(x, y)
    op = DisaggSteadyState(sized, demand.isl, demand.osl, (p.model, d.model)).at(rate / x, rate / y, pair.decoded)
    p_rent, d_rent = price(p.dep, x), price(d.dep, y)
    ok = meets(op.op, targets)
    if ok and targets.max_usd_per_hour is not None:
        ok = (
            p_rent is not None
            and d_rent is not None
            and p_rent.usd_per_hour + d_rent.usd_per_hour <= targets.max_usd_per_hour
        )
    miss = "" if ok else (miss_text(op.op, targets) or "over budget or unstable")
    return DisaggEvaluated(sized, op, p_max, d.decode_max_rate, p_rent, d_rent, ok, miss)


def _groups(cands: Iterable[Deployment]) -> dict[tuple[str, str], list[Deployment]]:
    out: dict[tuple[str, str], list[Deployment]] = {}
    for c in cands:
        out.setdefault((c.precision.name, c.kv_dtype.name), []).append(c)
    return out


def _rank_key(e: DisaggEvaluated, rank_by: str) -> tuple[float, ...]:
    cost = e.usd_per_hour if e.usd_per_hour is not None else math.inf
    op = e.at_demand.op
    return {
        "cost": (cost, e.num_gpus, op.e2e_p90_s),
        "latency": (op.e2e_p90_s, cost),
        "gpus": (e.num_gpus, cost),
        "throughput_per_gpu": (e.num_gpus, cost),
    }[rank_by]


def rank_splits(results: list[DisaggEvaluated], rank_by: str = "cost") -> list[DisaggEvaluated]:
    """Those meeting the targets first, ranked by ``rank_by``; then the misses, nearest TTFT first."""
    good = sorted((e for e in results if e.meets), key=lambda e: _rank_key(e, rank_by))
    bad = sorted((e for e in results if not e.meets), key=lambda e: e.at_demand.op.ttft_p90_s)
    return good + bad


def _sides(group: list[Deployment], demand: Demand, targets: Targets, pools: PoolSetup) -> list[_Side]:
    """Each candidate that holds a request, with its largest rate as a decode replica."""
    sides = []
    for dep in group:
        model = _side(dep, demand)
        if model is None:
            continue
        probe = DisaggSteadyState(Disaggregated(dep, dep, pools.kv_link_id), demand.isl, demand.osl, (model, model))
        sides.append(_Side(dep, model, _decode_max_rate(probe, targets)))
    return sides


def search_disaggregated(
    cands: list[Deployment], demand: Demand, targets: Targets, offers: list[Offer], pools: PoolSetup
) -> list[DisaggEvaluated]:
    """Every split of two candidates with the same precision and KV dtype, ranked by cost
    (:func:`rank_splits` ranks otherwise); empty for a closed loop of users."""
    rate = demand.rate_per_s
    if rate is None:
        return []
    price = _Pricer(offers)
    results: list[DisaggEvaluated] = []
    for group in _groups(cands).values():
        sides = _sides(group, demand, targets, pools)
        for d in (x for x in sides if x.decode_max_rate > rate / MAX_PARALLEL):
            y = max(math.ceil(rate / d.decode_max_rate - 1e-9), 1)
            probe = DisaggSteadyState(
                Disaggregated(d.dep, d.dep, pools.kv_link_id), demand.isl, demand.osl, (d.model, d.model)
            )
            decoded = probe.decode_at(rate / y)
            for p in sides:
                e = _evaluate(_Pair(p, d, y, decoded), demand, targets, pools, price)
                if e is not None:
                    results.append(e)
    return rank_splits(results)
