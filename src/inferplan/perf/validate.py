"""Predict measured rows (the format of ../shared/data/throughput.csv) and report the errors
per category, metric and percentile, GPU and engine (never one aggregate: errors can cancel).

Rows are read by :mod:`inferplan.perf.measurement`; rows that share a deployment, workload and
load share one simulation. Rows we cannot predict are listed with the column and the reason,
never silently dropped.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from inferplan.errors import InferplanError
from inferplan.perf.measurement import Measurement, RowSetup, SkipRow, read_measurements, setup_row
from inferplan.perf.metrics import Percentiles, ServingMetrics, serving_metrics
from inferplan.perf.replica import Replica, build_replica
from inferplan.perf.roofline import step_shape
from inferplan.perf.simulator import simulate
from inferplan.perf.workload import Arrivals, LengthDist, Workload, make_requests
from inferplan.specs.engines import EngineProfile

__all__ = [
    "Group",
    "Measurement",
    "Outcome",
    "read_measurements",
    "summarize",
    "validate_rows",
]

#: Bisection steps for a "maximum rate within a latency bound" row.
MAX_RATE_STEPS = 12


@dataclass(frozen=True, slots=True)
class Outcome:
    """One row: measured and predicted (in the row's own unit), or why it was skipped."""

    row: Measurement
    predicted: float | None
    measured: float
    skipped: str = ""
    category: str = ""
    statistic: str = ""
    gpu: str = ""
    engine: str = ""
    assumptions: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ape(self) -> float | None:
        if self.predicted is None or self.measured == 0 or not math.isfinite(self.predicted):
            return None
        return abs(self.predicted - self.measured) / abs(self.measured) * 100

    @property
    def skip_column(self) -> str:
        return self.skipped.split("'")[1] if self.skipped.startswith("column '") else ""

    def key(self, name: str) -> str:
        """A grouping key: category, statistic, gpu, engine, or any column of the row."""
        own = {
            "category": self.category,
            "statistic": self.statistic,
            "gpu_id": self.gpu,
            "engine_profile": self.engine,
        }
        return own[name] if name in own else self.row[name]


# -- one row ------------------------------------------------------------------------------------


def _stat(p: Percentiles, statistic: str) -> float:
    if statistic == "p95":  # interpolated between the p90 and p99 the metrics keep
        return p.p90 + (p.p99 - p.p90) * 5.0 / 9.0
    return float(getattr(p, statistic if statistic in ("mean", "p50", "p90", "p99") else "mean"))


_REPLICAS: dict[tuple[object, ...], Replica] = {}


def _replica(setup: RowSetup) -> Replica:
    key = (*setup.deployment.key(), setup.deployment.engine)
    if key not in _REPLICAS:
        if len(_REPLICAS) > 256:
            _REPLICAS.clear()
        _REPLICAS[key] = build_replica(setup.deployment)
    return _REPLICAS[key]


def _metrics(setup: RowSetup, rate: float | None = None) -> ServingMetrics:
    replica = _replica(setup)
    load = setup.load
    if replica.scheduler.kv_tokens < setup.isl + setup.osl:
        raise SkipRow("isl", "one request does not fit the KV cache of this deployment")
    concurrency = load.concurrency if load.kind == "concurrency" else None
    if rate is not None:
        arrivals = Arrivals("poisson", rate_per_s=rate)
    elif load.kind == "poisson":
        arrivals = Arrivals("poisson", rate_per_s=load.rate_per_s or 1.0)
    elif concurrency is not None:
        arrivals = Arrivals("concurrency", concurrency=concurrency)
    else:
        arrivals = Arrivals("offline")
    reqs = make_requests(Workload(LengthDist(setup.isl), LengthDist(setup.osl), arrivals, load.num_requests, seed=0))
    dp = setup.deployment.parallelism.dp
    return serving_metrics(simulate(replica, reqs, replicas=dp, concurrency=concurrency))


_SIM_CACHE: dict[tuple[object, ...], ServingMetrics] = {}


def _cached_metrics(setup: RowSetup) -> ServingMetrics:
    key = setup.key()
    if key not in _SIM_CACHE:
        if len(_SIM_CACHE) > 512:
            _SIM_CACHE.clear()
        _SIM_CACHE[key] = _metrics(setup)
    return _SIM_CACHE[key]


def _value(m: ServingMetrics, setup: RowSetup) -> float:
    kind, stat = setup.metric.kind, setup.metric.statistic
    gpus = setup.deployment.parallelism.num_gpus
    if kind in ("output_tps", "total_tps", "request_rate"):
        value = {
            "output_tps": m.output_token_throughput_per_s,
            "total_tps": m.total_token_throughput_per_s,
            "request_rate": m.request_throughput_per_s,
        }[kind]
        return value / gpus if setup.per_gpu else value
    if kind == "decode_speed":
        return 1.0 / max(_stat(m.tpot_s, "mean"), 1e-12)
    series = {"ttft": m.ttft_s, "itl": m.itl_s, "tpot": m.tpot_s, "e2e": m.e2e_s}[kind]
    return _stat(series, stat) / setup.metric.seconds


def _batch1(setup: RowSetup) -> float:
    replica = _replica(setup)
    kind = setup.metric.kind
    if kind == "ttft":
        budget = replica.scheduler.max_num_batched_tokens if replica.scheduler.chunked_prefill else setup.isl
        t, done = 0.0, 0
        while done < setup.isl:
            chunk = min(budget, setup.isl - done)
            t += replica.step_time_s(step_shape([(chunk, done)], []))
            done += chunk
        return t / setup.metric.seconds
    ctx = setup.isl + setup.osl // 2
    t = replica.step_time_s(step_shape([], [ctx]))
    if kind == "decode_speed":
        return 1.0 / t
    if kind in ("tpot", "itl"):
        return t / setup.metric.seconds
    raise SkipRow("metric", f"'{setup.metric.kind}' is not predicted for one request at a time")


def _max_rate(setup: RowSetup) -> float:
    """The highest Poisson rate whose simulated latency statistic stays within the bound."""
    bound = setup.load.bound
    assert bound is not None
    replica = _replica(setup)
    lo, hi = 0.0, 1.0
    per_request = replica.step_time_s(step_shape([(setup.isl, 0)], [])) + setup.osl * replica.step_time_s(
        step_shape([], [setup.isl])
    )
    hi = 4.0 * max(replica.scheduler.max_num_seqs, 1) / max(per_request, 1e-6) * setup.deployment.parallelism.dp
    for _ in range(MAX_RATE_STEPS):
        mid = (lo + hi) / 2
        m = _metrics(setup, rate=mid)
        series = {"ttft": m.ttft_s, "itl": m.itl_s, "tpot": m.tpot_s, "e2e": m.e2e_s}[bound.kind]
        if _stat(series, bound.statistic) <= bound.seconds:
            lo = mid
        else:
            hi = mid
    return lo / setup.deployment.parallelism.num_gpus if setup.per_gpu else lo


def predict_row(setup: RowSetup) -> float:
    """The row's figure as the model predicts it, in the row's unit."""
    if setup.load.kind == "batch1":
        return _batch1(setup)
    if setup.load.kind == "max-rate":
        return _max_rate(setup)
    return _value(_cached_metrics(setup), setup)


def _outcome(row: Measurement, engines: dict[str, EngineProfile] | None) -> Outcome:
    measured = float(row["value"])
    setup: RowSetup | None = None
    try:
        setup = setup_row(row, engines)
        predicted = predict_row(setup)
    except SkipRow as exc:
        if setup is None and exc.category:
            return Outcome(row, None, measured, skipped=str(exc), category=exc.category)
        return _skipped(row, measured, str(exc), setup)
    except InferplanError as exc:
        return _skipped(row, measured, f"column 'model': this deployment cannot run ({exc})", setup)
    dep = setup.deployment
    return Outcome(
        row,
        predicted,
        measured,
        category=setup.category,
        statistic=setup.metric.statistic,
        gpu=dep.gpu.id,
        engine=dep.engine.name,
        assumptions=setup.assumptions,
    )


def _skipped(row: Measurement, measured: float, reason: str, setup: RowSetup | None) -> Outcome:
    if setup is None:
        return Outcome(row, None, measured, skipped=reason)
    dep = setup.deployment
    return Outcome(row, None, measured, reason, setup.category, setup.metric.statistic, dep.gpu.id, dep.engine.name)


def _chunk(args: tuple[list[tuple[int, Measurement]], dict[str, EngineProfile] | None]) -> list[tuple[int, Outcome]]:
    rows, engines = args
    return [(i, _outcome(r, engines)) for i, r in rows]


def _group_key(row: Measurement) -> tuple[str, ...]:
    return (row["model"], row["gpu"], row["tp"], row["isl"], row["osl"], row["load_condition"], row["engine"])


def validate_rows(
    rows: Iterable[Measurement], engines: dict[str, EngineProfile] | None = None, workers: int = 1
) -> list[Outcome]:
    """Predict every row; ``engines`` overrides engine profiles by name (used when fitting);
    ``workers`` > 1 spreads rows over processes (rows that share a simulation stay together)."""
    indexed = list(enumerate(rows))
    if workers <= 1 or len(indexed) < 8:
        return [o for _, o in _chunk((indexed, engines))]
    groups: dict[tuple[str, ...], list[tuple[int, Measurement]]] = {}
    for i, r in indexed:
        groups.setdefault(_group_key(r), []).append((i, r))
    parts: list[list[tuple[int, Measurement]]] = [[] for _ in range(workers * 4)]
    loads = [0] * len(parts)
    for g in sorted(groups.values(), key=len, reverse=True):
        j = loads.index(min(loads))
        parts[j].extend(g)
        loads[j] += len(g)
    with ProcessPoolExecutor(workers) as pool:
        done = [pair for part in pool.map(_chunk, [(p, engines) for p in parts if p]) for pair in part]
    return [o for _, o in sorted(done, key=lambda pair: pair[0])]


# -- summaries ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Group:
    key: tuple[str, ...]
    count: int
    median_ape: float
    p90_ape: float
    skipped: int = 0
    apes: list[float] = field(default_factory=list)


def percentile_90(values: Sequence[float]) -> float:
    """The 90th percentile by the nearest rank on sorted values (the table's convention)."""
    s = sorted(values)
    return s[min(round(0.9 * (len(s) - 1)), len(s) - 1)]


def summarize(outcomes: list[Outcome], by: tuple[str, ...] = ("source_key", "gpu", "metric")) -> list[Group]:
    """Median and 90th-percentile absolute percentage error per group, with its skipped rows."""
    groups: dict[tuple[str, ...], list[float]] = {}
    skips: dict[tuple[str, ...], int] = {}
    for o in outcomes:
        key = tuple(o.key(k) for k in by)
        if o.ape is None:
            if o.skipped:
                skips[key] = skips.get(key, 0) + 1
            continue
        groups.setdefault(key, []).append(o.ape)
    result = []
    for key in sorted(set(groups) | set(skips)):
        apes = sorted(groups.get(key, []))
        if not apes:
            result.append(Group(key, 0, math.nan, math.nan, skips.get(key, 0)))
            continue
        result.append(Group(key, len(apes), statistics.median(apes), percentile_90(apes), skips.get(key, 0), apes))
    return result
