"""Search GPU type x TP x PP x replicas x weight and KV precision for the cheapest
deployment that meets latency targets. :func:`search` is a pure function.

Each candidate replica is priced analytically in steady state (continuous batching):

* prefill occupancy per request ``P`` (chunks of the token budget, interleaved with decode),
* decode step time ``t(b)`` at batch ``b`` (interpolated from a few roofline evaluations),
* at ``lam`` requests/s per replica: ``rho_p = lam * P``, ``tpot = t(b) / (1 - rho_p)``,
  ``b = lam * osl * tpot`` (Little's law), solved by fixed-point iteration, capped by
  max sequences and KV capacity;
* TTFT = prefill service + queueing: ``W = rho / (2 (1 - rho)) * P`` (M/D/1), p90 ~ + 2.3 W.

The largest ``lam`` meeting the targets sets the replicas: ``ceil(rate / lam)``.
The planner then verifies the best candidates with the full simulator.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from inferplan.errors import InferplanError, InputError
from inferplan.perf.replica import Built, build, tp_link_for
from inferplan.perf.roofline import step_shape
from inferplan.sizing.capacity import check_divisibility
from inferplan.sizing.memory import Parallelism, weight_bytes_per_gpu
from inferplan.specs.engines import EngineProfile
from inferplan.specs.environment import EnvironmentProfile
from inferplan.specs.hardware import GpuSpec, LinkSpec
from inferplan.specs.model import ModelSpec
from inferplan.specs.precision import KvDtype, Precision, get_kv_dtype
from inferplan.specs.prices import Offer, cheapest_cloud_offer

__all__ = [
    "Candidate",
    "Demand",
    "Evaluated",
    "Targets",
    "candidates",
    "evaluate",
    "pareto_front",
    "search",
    "steady_state_curve",
]

_BATCH_POINTS = (1, 4, 16, 64, 256, 1024)


@dataclass(frozen=True, slots=True)
class Targets:
    """p90 latency targets (seconds), minimum output tokens/s, budget (USD per hour)."""

    ttft_p90_s: float | None = None
    tpot_p90_s: float | None = None
    e2e_p90_s: float | None = None
    min_output_tokens_per_s: float | None = None
    max_usd_per_hour: float | None = None

    def exceeded(self, ttft_s: float, tpot_s: float, e2e_s: float) -> list[tuple[str, float, float]]:
        """(option name, value, limit) for every p90 latency target that the values miss."""
        return [
            (name, value, limit)
            for name, value, limit in (
                ("ttft", ttft_s, self.ttft_p90_s),
                ("tpot", tpot_s, self.tpot_p90_s),
                ("e2e", e2e_s, self.e2e_p90_s),
            )
            if limit is not None and value > limit
        ]


@dataclass(frozen=True, slots=True)
class Demand:
    """The workload: mean lengths and a request rate or a number of concurrent users."""

    isl: int
    osl: int
    rate_per_s: float | None = None
    concurrency: int | None = None

    def __post_init__(self) -> None:
        if (self.rate_per_s is None) == (self.concurrency is None):
            raise InputError("give exactly one of a request rate or a concurrency")
        if self.rate_per_s is not None and not 0 < self.rate_per_s <= 1e6:
            raise InputError(f"request rate must be in (0, 1e6], got {self.rate_per_s}")
        if self.concurrency is not None and not 1 <= self.concurrency <= 1_000_000:
            raise InputError(f"concurrency must be between 1 and 1,000,000, got {self.concurrency}")
        if not (1 <= self.isl <= 10_000_000 and 1 <= self.osl <= 10_000_000):
            raise InputError("input and output lengths must be between 1 and 10,000,000 tokens")

    @classmethod
    def from_load(cls, isl: int, osl: int, rate_per_s: float | None, concurrency: int | None) -> Demand:
        """The demand the CLI and the web UI mean: 1 request/s when neither load is given."""
        if rate_per_s is None and concurrency is None:
            rate_per_s = 1.0
        return cls(isl, osl, rate_per_s, concurrency)


@dataclass(frozen=True, slots=True)
class Candidate:
    gpu: GpuSpec
    tp: int
    pp: int
    precision: Precision
    kv_dtype: KvDtype

    @property
    def gpus_per_replica(self) -> int:
        return self.tp * self.pp

    def label(self) -> str:
        return (
            f"{self.gpu.id} TP{self.tp}"
            + (f" PP{self.pp}" if self.pp > 1 else "")
            + f" {self.precision.name}/{self.kv_dtype.name}-kv"
        )


@dataclass(frozen=True, slots=True)
class Operating:
    """Predicted steady state of one replica at ``rate_per_s``."""

    rate_per_s: float
    batch: float
    ttft_p90_s: float
    tpot_p90_s: float
    e2e_p90_s: float
    stable: bool


@dataclass(frozen=True, slots=True)
class Evaluated:
    candidate: Candidate
    replicas: int
    per_replica: Operating | None
    best_latency: Operating | None
    max_rate_per_replica: float
    offer: Offer | None
    usd_per_hour: float | None
    meets: bool
    miss: str = ""
    frontier: list[tuple[float, float]] = field(default_factory=list)

    @property
    def num_gpus(self) -> int:
        return self.replicas * self.candidate.gpus_per_replica

    def usd_per_mtok(self, demand_output_tokens_per_s: float) -> float | None:
        if self.usd_per_hour is None or demand_output_tokens_per_s <= 0:
            return None
        return self.usd_per_hour / (demand_output_tokens_per_s * 3600.0) * 1e6


def candidates(
    model: ModelSpec,
    gpus: Iterable[GpuSpec],
    precisions: Iterable[Precision],
    kv_dtypes: Iterable[str],
    max_nodes: int = 4,
) -> list[Candidate]:
    """Every (GPU, TP, PP, precision, KV dtype) whose weights fit and whose TP divides the heads.
    TP stays inside a server's NVLink/PCIe domain (8 GPUs); PP spans whole servers."""
    out = []
    for gpu in gpus:
        node = gpu.max_scale_up_gpus if gpu.scale_up else 8
        node = min(node, 8)
        for precision in precisions:
            for tp in (1, 2, 4, 8):
                if tp > node:
                    continue
                for pp in (1, 2, 4, 8):
                    if pp > 1 and (tp != node or pp > max_nodes):
                        continue
                    par = Parallelism(tp=tp, pp=pp)
                    try:
                        check_divisibility(model, par)
                    except InputError:
                        continue
                    if weight_bytes_per_gpu(model, precision, par) > gpu.visible_memory_bytes * 0.92:
                        continue
                    for kv in dict.fromkeys(kv_dtypes):
                        out.append(
                            Candidate(
                                gpu,
                                tp,
                                pp,
                                precision,
                                get_kv_dtype(kv if kv != "auto" else ("fp16" if precision.name == "fp16" else "bf16")),
                            )
                        )
                    break  # the smallest PP that fits is enough for this TP
    return out


class _Replica:
    """Analytic steady state of one replica."""

    def __init__(self, built: Built, demand: Demand, env: EnvironmentProfile | None) -> None:
        cost, sched = built.cost, built.scheduler
        self.env = env
        overhead = cost.step_overhead + cost.layers_per_stage * cost.pp * cost.layer_overhead
        self.overhead = overhead
        ctx = demand.isl + demand.osl // 2
        kv_tokens = sched.kv_blocks * sched.block_size / max(cost.pp, 1)
        self.max_batch = max(min(sched.max_num_seqs, kv_tokens / (demand.isl + demand.osl)), 0.0)
        points = [b for b in _BATCH_POINTS if b <= max(self.max_batch, 1)] or [1]
        if points[-1] < self.max_batch:
            points.append(int(self.max_batch))
        self.b_points = np.array(points, dtype=float)
        self.t_points = np.array([self._adj(cost.time_s(step_shape([], [ctx] * b))) for b in points])
        budget = sched.max_num_batched_tokens
        chunks, left = [], demand.isl
        while left > 0:
            chunks.append((min(left, budget), demand.isl - left))
            left -= budget
        self.prefill_latency = sum(self._adj(cost.time_s(step_shape([c], []))) for c in chunks)
        self.chunks = len(chunks)
        self.prefill_work = max(self.prefill_latency - len(chunks) * self._adj(overhead), 1e-9)
        self.osl = demand.osl
        self.pp = cost.pp

    def _adj(self, t: float) -> float:
        return self.env.step_time_s(t, self.overhead) if self.env else t

    def step(self, batch: float) -> float:
        """Decode step time at ``batch`` (0 gives the fixed part: weights and overhead)."""
        if batch <= 0.0:
            slope = (self.t_points[1] - self.t_points[0]) / 3.0 if len(self.t_points) > 1 else 0.0
            return float(self.t_points[0] - slope)
        return float(np.interp(max(batch, 1.0), self.b_points, self.t_points))

    def at_rate(self, lam: float) -> Operating:
        """Steady state at ``lam`` requests/s (pipeline: ``pp`` interleaved virtual engines)."""
        lam_v = lam / self.pp
        rho_p = lam_v * self.prefill_work
        if rho_p >= 0.98 or self.max_batch < 1:
            return Operating(lam, self.max_batch, math.inf, math.inf, math.inf, False)
        b = max(lam_v * self.osl * self.step(1.0), 1e-6)
        stable = True
        for _ in range(60):
            tpot = self.step(b) / (1.0 - rho_p)
            nb = lam_v * self.osl * tpot
            if nb > self.max_batch:
                stable = False
                b = self.max_batch
                break
            if abs(nb - b) < 1e-3 * max(b, 1.0):
                b = nb
                break
            b = nb
        tpot = self.step(b) / (1.0 - rho_p)
        if not stable:
            return Operating(lam, b, math.inf, math.inf, math.inf, False)
        # prompts queue only behind other prompts (chunked prefill schedules them first);
        # each prefill chunk also carries the running decode batch
        wait = rho_p / (2.0 * (1.0 - rho_p)) * self.prefill_work
        service = self.prefill_latency + self.chunks * (self.step(b) - self.step(0.0))
        ttft_p90 = service + self.step(b) + 2.3 * wait
        tpot_p90 = tpot * 1.1
        return Operating(lam, b, ttft_p90, tpot_p90, ttft_p90 + self.osl * tpot_p90, True)

    def at_concurrency(self, users: float) -> Operating:
        """Closed loop with ``users`` requests in flight on this replica."""
        lam = users / max(self.prefill_latency + self.osl * self.step(users), 1e-9)
        for _ in range(40):
            op = self.at_rate(lam)
            if not op.stable:
                lam *= 0.9
                continue
            new = users / max(op.e2e_p90_s / 1.1, 1e-9)
            if abs(new - lam) < 1e-3 * lam:
                break
            lam = 0.5 * (lam + new)
        return self.at_rate(lam)


def _meets(op: Operating, t: Targets) -> bool:
    return op.stable and not t.exceeded(op.ttft_p90_s, op.tpot_p90_s, op.e2e_p90_s)


def _miss(op: Operating, t: Targets) -> str:
    return "; ".join(
        f"{name.upper()} p90 {value * 1e3:,.0f} ms > {limit * 1e3:,.0f} ms"
        for name, value, limit in t.exceeded(op.ttft_p90_s, op.tpot_p90_s, op.e2e_p90_s)
    )


def _replica(
    model: ModelSpec,
    cand: Candidate,
    demand: Demand,
    engine: EngineProfile,
    env: EnvironmentProfile | None,
    tp_link: LinkSpec | None = None,
) -> _Replica | None:
    """The analytic model of one replica, or None if it cannot hold one request."""
    par = Parallelism(tp=cand.tp, pp=cand.pp)
    try:
        built = build(
            model,
            cand.gpu,
            cand.precision,
            cand.kv_dtype,
            par,
            engine,
            env=None,
            tp_link=tp_link or tp_link_for(cand.gpu, cand.tp),
        )
    except InferplanError:
        return None
    if built.scheduler.kv_blocks * built.scheduler.block_size < demand.isl + demand.osl:
        return None
    return _Replica(built, demand, env)


def steady_state_curve(
    model: ModelSpec,
    cand: Candidate,
    demand: Demand,
    engine: EngineProfile,
    env: EnvironmentProfile | None,
    rates_per_replica: list[float],
) -> list[Operating]:
    """The analytic steady state (what the search ranks on) of one replica at each rate;
    unstable points have infinite latencies."""
    rep = _replica(model, cand, demand, engine, env)
    return [rep.at_rate(r) for r in rates_per_replica] if rep else []


def evaluate(
    model: ModelSpec,
    cand: Candidate,
    demand: Demand,
    targets: Targets,
    engine: EngineProfile,
    offers: list[Offer],
    env: EnvironmentProfile | None = None,
    tp_link: LinkSpec | None = None,
) -> Evaluated | None:
    """The cheapest way to serve ``demand`` with replicas of ``cand`` (None if it cannot run).
    ``tp_link`` replaces the GPU's own link (to price a PCIe-only server, say)."""
    rep = _replica(model, cand, demand, engine, env, tp_link)
    if rep is None:
        return None
    low_load = rep.at_rate(1e-6)
    lo, hi = _max_rate(rep, targets)
    frontier = [
        (op.rate_per_s * rep.osl / cand.gpus_per_replica, 1.0 / op.tpot_p90_s * 1.1)
        for op in (rep.at_rate(f * max(hi, 1e-9)) for f in (0.05, 0.2, 0.4, 0.6, 0.8, 0.95))
        if op.stable
    ]
    if lo <= 0.0:
        miss = _miss(low_load, targets) or "unstable even at low load"
        return Evaluated(cand, 0, None, low_load, 0.0, None, None, False, miss, frontier)
    replicas, op = _replicas_needed(rep, demand, targets, lo)
    price = cheapest_cloud_offer(offers, cand.gpu.id, cand.gpus_per_replica, replicas)
    usd = price[1] if price else None
    if price and usd and price[0].usd_per_gpu_hour and demand.rate_per_s is not None:
        # whole instances are rented: spare GPUs become extra replicas (headroom at no cost)
        spare = round(usd / price[0].usd_per_gpu_hour) // cand.gpus_per_replica
        if spare > replicas:
            replicas, op = spare, rep.at_rate(demand.rate_per_s / spare)
    meets = _meets(op, targets) and (
        targets.max_usd_per_hour is None or (usd is not None and usd <= targets.max_usd_per_hour)
    )
    miss = "" if meets else (_miss(op, targets) or "over budget")
    return Evaluated(cand, replicas, op, low_load, lo, price[0] if price else None, usd, meets, miss, frontier)


def _max_rate(rep: _Replica, targets: Targets) -> tuple[float, float]:
    """Bisection for the largest per-replica rate that is stable and meets the targets:
    (highest rate that meets them, lowest rate found not to)."""
    hi = rep.pp / max(rep.prefill_work + rep.osl * rep.step(rep.max_batch) / max(rep.max_batch, 1.0), 1e-9)
    lo = 0.0
    for _ in range(40):
        mid = (lo + hi) / 2
        if _meets(rep.at_rate(mid), targets):
            lo = mid
        else:
            hi = mid
    return lo, hi


def _replicas_needed(rep: _Replica, demand: Demand, targets: Targets, max_rate: float) -> tuple[int, Operating]:
    """Replicas to serve the demand within the targets, and one replica's operating point."""
    if demand.rate_per_s is not None:
        replicas = max(math.ceil(demand.rate_per_s / max_rate - 1e-9), 1)
        return replicas, rep.at_rate(demand.rate_per_s / replicas)
    assert demand.concurrency is not None
    replicas = 1
    op = rep.at_concurrency(float(demand.concurrency))
    while not _meets(op, targets) and replicas < 100_000:
        replicas = replicas * 2 if replicas < 8 else replicas + max(replicas // 4, 1)
        op = rep.at_concurrency(demand.concurrency / replicas)
    if targets.min_output_tokens_per_s:
        need = targets.min_output_tokens_per_s / max(op.rate_per_s * replicas * rep.osl, 1e-9)
        if need > 1:
            replicas = math.ceil(replicas * need)
            op = rep.at_concurrency(demand.concurrency / replicas)
    return replicas, op


def search(
    model: ModelSpec,
    cands: list[Candidate],
    demand: Demand,
    targets: Targets,
    engine: EngineProfile,
    offers: list[Offer],
    env: EnvironmentProfile | None = None,
    rank_by: str = "cost",
) -> list[Evaluated]:
    """Evaluate every candidate; those meeting the targets first, ranked by ``rank_by``
    (cost, latency, gpus, throughput_per_gpu); then the misses, nearest first."""
    results = [e for c in cands if (e := evaluate(model, c, demand, targets, engine, offers, env))]
    demand_tokens = _demand_tokens(demand, results)

    def key(e: Evaluated) -> tuple[float, ...]:
        cost = e.usd_per_mtok(demand_tokens) or math.inf
        lat = e.per_replica.e2e_p90_s if e.per_replica else math.inf
        tput = -e.max_rate_per_replica / e.candidate.gpus_per_replica
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


def _demand_tokens(demand: Demand, results: list[Evaluated]) -> float:
    if demand.rate_per_s is not None:
        return demand.rate_per_s * demand.osl
    rates = [e.per_replica.rate_per_s * e.replicas for e in results if e.per_replica and e.meets]
    return (sorted(rates)[len(rates) // 2] if rates else 0.0) * demand.osl


def pareto_front(results: list[Evaluated]) -> list[tuple[float, float, str]]:
    """Points (output tokens/s per GPU, tokens/s per user) not dominated by any other."""
    pts = [(x, y, e.candidate.label()) for e in results for x, y in e.frontier]
    pts.sort(key=lambda p: (-p[0], -p[1]))
    front, best_y = [], -math.inf
    for x, y, label in pts:
        if y > best_y:
            front.append((x, y, label))
            best_y = y
    return front
