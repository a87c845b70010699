"""``inferplan bench sweep``: one server from one request at a time to saturation, stored as
one group (a row of ``sweeps``; each point a run with its ``sweep_id``), and its knee.

The points, in order:

1. *synchronous*: one request at a time (concurrency 1): the server's latency unloaded and the
   rate R_sync one stream reaches;
2. *throughput*: every request at once: the most the server completes, R_max;
3. either *rates*: ``points`` Poisson rates evenly spaced strictly between R_sync and R_max,
   or (``find_max_rate``, with targets) a *bisection* between them for the highest rate whose
   TTFT p90 and TPOT p90 meet the targets, until the bracket is within :data:`BISECT_TOLERANCE`
   of its top or ``steps`` runs were made.

The knee (:func:`knee`) is where more offered load stops adding goodput: of the points whose
goodput (requests per second that met every target; without targets every request that
succeeded) is within :data:`KNEE_SHARE` of the most any point reached, the one offered the
least load. Every figure of a sweep is read back from its stored runs
(:func:`sweep_points`), so an interrupted sweep reads the same way as a finished one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from inferplan.bench.record import RequestRecord
from inferplan.bench.serve import LocalSender, Point, PointResult, Sender, ServeSpec, public_url, run_point
from inferplan.bench.store import ResultsStore, RunInfo
from inferplan.errors import InputError
from inferplan.perf.workload import Arrivals

__all__ = [
    "BISECT_TOLERANCE",
    "KNEE_SHARE",
    "SweepPoint",
    "SweepSpec",
    "SweepView",
    "knee",
    "load_sweep",
    "meets_targets",
    "run_saturation_sweep",
    "sweep_points",
    "sweep_summary",
]

BISECT_TOLERANCE = 0.05
KNEE_SHARE = 0.95
MAX_POINTS = 50


@dataclass(frozen=True, slots=True)
class SweepSpec:
    """The server and workload (``serve``: its rates and concurrencies are not used), the rates
    between the two ends, or a bisection for the highest rate meeting ``serve.slo``."""

    serve: ServeSpec
    points: int = 6
    find_max_rate: bool = False
    steps: int = 6

    def __post_init__(self) -> None:
        if not 0 <= self.points <= MAX_POINTS or not 1 <= self.steps <= MAX_POINTS:
            raise InputError(f"--points and --steps must be between 0 (1 for --steps) and {MAX_POINTS}")
        if self.find_max_rate and self.serve.slo.ttft_s is None and self.serve.slo.tpot_s is None:
            raise InputError("--find-max-rate needs a target: --ttft and/or --tpot, e.g. --ttft 500ms --tpot 50ms")

    def stored(self) -> dict[str, Any]:
        s = self.serve
        return {
            "mode": "bisect" if self.find_max_rate else "rates",
            "points": self.points,
            "steps": self.steps,
            "isl": s.isl,
            "osl": s.osl,
            "num_requests": s.num_requests,
            "dataset": str(s.dataset) if s.dataset else None,
            "endpoint": s.endpoint,
            "targets": asdict(s.slo),
        }


@dataclass(frozen=True, slots=True)
class SweepPoint:
    """One point of a sweep, from its stored run."""

    run_id: int
    kind: str  # synchronous, throughput or rate
    status: str
    offered_per_s: float | None  # the Poisson rate asked for (None for the two ends)
    achieved_per_s: float  # requests completed per second
    goodput_per_s: float
    figures: dict[str, float | None] = field(default_factory=dict)  # ttft/tpot/itl/e2e p50 and p90 (s), tok/s

    @property
    def rate_per_s(self) -> float:
        """The rate this point ran at: the Poisson rate offered, or at the two ends the rate reached."""
        return self.offered_per_s if self.offered_per_s is not None else self.achieved_per_s

    @property
    def load_per_s(self) -> float:
        """The load offered: the rate asked for, or at the two ends what they reached (the
        throughput end: every request at once, the most of all)."""
        if self.kind == "throughput":
            return math.inf
        return self.offered_per_s if self.offered_per_s is not None else self.achieved_per_s


def meets_targets(p: SweepPoint, targets: dict[str, Any]) -> bool | None:
    """TTFT p90 and TPOT p90 within the targets (None when there are none)."""
    pairs = [(p.figures.get("ttft_p90_s"), targets.get("ttft_s")), (p.figures.get("tpot_p90_s"), targets.get("tpot_s"))]
    given = [(v, t) for v, t in pairs if t is not None]
    if not given:
        return None
    return all(v is not None and v <= t for v, t in given) and p.achieved_per_s > 0


def _point(run: RunInfo) -> SweepPoint:
    s = run.summary or {}
    arrivals = run.config.get("arrivals") or {}
    kind = {"concurrency": "synchronous", "offline": "throughput"}.get(str(arrivals.get("kind")), "rate")
    figures: dict[str, float | None] = {}
    for metric in ("ttft", "tpot", "itl", "e2e"):
        for q in ("p50", "p90"):
            value = (s.get(f"{metric}_s") or {}).get(q)
            figures[f"{metric}_{q}_s"] = float(value) if isinstance(value, int | float) else None
    figures["output_tokens_per_s"] = s.get("output_token_throughput_per_s")
    rate = arrivals.get("rate_per_s")
    return SweepPoint(
        run.id,
        kind,
        run.status,
        float(rate) if kind == "rate" and isinstance(rate, int | float) else None,
        float(s.get("request_throughput_per_s") or 0.0),
        float(s.get("goodput_requests_per_s") or 0.0),
        figures,
    )


def sweep_points(store: ResultsStore, sweep_id: int) -> list[SweepPoint]:
    """The sweep's points from its stored runs, by the load offered."""
    points = [_point(store.run(run_id)) for run_id in store.sweep(sweep_id).run_ids]
    return sorted(points, key=lambda p: (p.load_per_s, p.run_id))


@dataclass(frozen=True, slots=True)
class SweepView:
    """A stored sweep as the report draws it: its points, its knee and its workload."""

    id: int
    points: list[SweepPoint]
    knee_run_id: int | None
    isl: int
    osl: int
    targets: dict[str, Any]
    model: str | None


def load_sweep(store: ResultsStore, sweep_id: int) -> SweepView:
    info = store.sweep(sweep_id)
    points = sweep_points(store, sweep_id)
    k = knee(points)
    c = info.config
    isl, osl = (int(c[key]) if isinstance(c.get(key), int) and c[key] > 0 else 1 for key in ("isl", "osl"))
    targets = c["targets"] if isinstance(c.get("targets"), dict) else {}
    return SweepView(sweep_id, points, k.run_id if k else None, isl, osl, targets, info.model)


def knee(points: list[SweepPoint]) -> SweepPoint | None:
    """The least-loaded point whose goodput is within :data:`KNEE_SHARE` of the most."""
    best = max((p.goodput_per_s for p in points), default=0.0)
    if best <= 0:
        return None
    return min((p for p in points if p.goodput_per_s >= KNEE_SHARE * best), key=lambda p: p.load_per_s)


def sweep_summary(points: list[SweepPoint], targets: dict[str, Any]) -> dict[str, Any]:
    """What the sweep found: every point, the knee, and the highest rate meeting the targets."""
    k = knee(points)
    meeting = [p for p in points if meets_targets(p, targets)]
    return {
        "points": [asdict(p) | {"meets": meets_targets(p, targets)} for p in points],
        "knee_run_id": k.run_id if k else None,
        "knee_per_s": k.rate_per_s if k else None,
        "knee_goodput_per_s": k.goodput_per_s if k else None,
        "max_rate_meeting_targets_per_s": max((p.rate_per_s for p in meeting), default=None),
        "targets": targets,
    }


def _rates(low: float, high: float, n: int) -> list[float]:
    """``n`` rates evenly spaced strictly between ``low`` and ``high``."""
    return [low + (high - low) * (i + 1) / (n + 1) for i in range(n)] if high > low else []


async def run_saturation_sweep(
    spec: SweepSpec,
    store: ResultsStore,
    progress: Callable[[int, RequestRecord], None] | None = None,
    sender: Callable[[], Sender] = LocalSender,
) -> tuple[int, list[PointResult]]:
    """Run the sweep; returns its id and each point's result (also when interrupted, the
    sweep is finished in the database with what it has)."""
    store.require_writable()
    serve = spec.serve
    sweep_id = store.start_sweep(spec.stored(), public_url(serve.url), serve.model)
    results: list[PointResult] = []
    status = "interrupted"

    async def measure(arrivals: Arrivals) -> PointResult:
        results.append(await run_point(serve, store, arrivals, progress, Point(sender(), sweep_id)))
        return results[-1]

    try:
        sync = await measure(Arrivals("concurrency", concurrency=1))
        if not sync.unreachable:
            top = await measure(Arrivals("offline"))
            low, high = (r.summary["request_throughput_per_s"] for r in (sync, top))
            targets = asdict(serve.slo)
            ends = [_point_of(r, None) for r in (sync, top)]
            if spec.find_max_rate and meets_targets(ends[0], targets) and not meets_targets(ends[1], targets):
                await _bisect(spec, (low, high), measure)
            else:
                for rate in _rates(low, high, spec.points):
                    await measure(Arrivals("poisson", rate_per_s=rate))
        status = _status(results)
    finally:
        targets = asdict(serve.slo)
        store.finish_sweep(sweep_id, status, sweep_summary(sweep_points(store, sweep_id), targets))
    return sweep_id, results


async def _bisect(spec: SweepSpec, bracket: tuple[float, float], measure: Callable[[Arrivals], Any]) -> None:
    """Narrow [low, high] to the highest rate whose p90s meet the targets."""
    low, high = bracket
    targets = asdict(spec.serve.slo)
    for _ in range(spec.steps):
        if high <= low or (high - low) <= BISECT_TOLERANCE * high:
            return
        rate = (low + high) / 2
        result: PointResult = await measure(Arrivals("poisson", rate_per_s=rate))
        point = _point_of(result, rate)
        low, high = (rate, high) if meets_targets(point, targets) else (low, rate)


def _point_of(result: PointResult, rate: float | None) -> SweepPoint:
    s = result.summary
    figures = {f"{m}_p90_s": (s.get(f"{m}_s") or {}).get("p90") for m in ("ttft", "tpot")}
    return SweepPoint(
        result.run_id, "rate", result.status, rate, s["request_throughput_per_s"], s["goodput_requests_per_s"], figures
    )


def _status(results: list[PointResult]) -> str:
    if results and all(r.status == "complete" for r in results):
        return "complete"
    return "partial" if any(r.summary["succeeded"] for r in results) else "failed"
