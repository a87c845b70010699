"""The closed calibration loop against a live server: measure a small calibration set, fit
the engine's physical parameters (``calibrate``), then predict runs the fit has not seen and
compare (``calibrate --auto``, ``benchmarks/closed_loop_cpu.py`` and the vLLM-CPU tier).

Every load point is bounded in requests and in time; a prediction replays the measured run's
exact arrivals and token counts on one replica (:func:`replay_observation`).
"""

from __future__ import annotations

import asyncio
import math
import statistics
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import zip_longest

from inferplan.bench.calibration import Observation, calibrate, observation_from_records, replay_observation
from inferplan.bench.deadline import Timeouts
from inferplan.bench.serve import ServeSpec, run_sweep
from inferplan.bench.store import ResultsStore
from inferplan.errors import BenchmarkError
from inferplan.specs.calibration_profile import CalibrationProfile, calibrated
from inferplan.specs.deployment import Deployment

__all__ = [
    "CALIBRATION_SET",
    "METRICS",
    "UNSEEN_SET",
    "AutoCalibration",
    "LoadPoint",
    "Measured",
    "PredictionRow",
    "auto_calibrate",
    "compare",
    "fit_and_judge",
    "interleaved",
    "measure_points",
    "median_error",
    "relative_error",
]

#: TTFT and TPOT medians (a few requests disturbed by other processes move a mean, not a
#: median), output throughput of the whole run.
METRICS = ("ttft_s", "tpot_s", "output_tok_s")
#: What the loop fits: the engine's fixed costs per step and per sampled sequence, and how close
#: its GEMMs get to the device's measured rate (one model: a per-layer cost could not be told
#: from a per-step one).
#: With one model the weights' streaming time is a fixed cost per step like the step overhead,
#: so the streaming efficiency is not fitted (the device's measured bandwidth stands).
FIELDS = ("step_overhead_s", "sequence_overhead_s", "gemm_efficiency")
#: Seconds one load point may run (its requests stop being sent after this).
POINT_LIMIT_S = 60.0


@dataclass(frozen=True, slots=True)
class LoadPoint:
    """One measured run: a closed loop of ``concurrency`` streams or Poisson arrivals at
    ``rate_per_s``, ``num_requests`` requests of ``isl`` prompt and ``osl`` output tokens."""

    isl: int
    osl: int
    concurrency: int | None = None
    rate_per_s: float | None = None
    num_requests: int = 12

    @property
    def label(self) -> str:
        load = f"c={self.concurrency}" if self.concurrency else f"{self.rate_per_s:g} req/s"
        return f"{load} {self.isl}/{self.osl}"

    @property
    def seed(self) -> int:
        """Prompts of their own per point: no point reuses another's (a prefix cache would hit)."""
        return zlib.crc32(self.label.encode())

    def spec(self, url: str, model: str) -> ServeSpec:
        return ServeSpec(
            url,
            model,
            rates=(self.rate_per_s,) if self.rate_per_s else (),
            concurrencies=(self.concurrency,) if self.concurrency else (),
            isl=self.isl,
            osl=self.osl,
            num_requests=self.num_requests,
            duration_s=POINT_LIMIT_S,
            warmup=1,
            seed=self.seed,
            timeouts=Timeouts(total_s=60.0),
        )


#: Batch 1 and one concurrency level: what ``calibrate --auto`` measures and fits on.
#: Two prompt lengths, so that a per-token prefill cost and a fixed per-step cost separate.
CALIBRATION_SET = (
    LoadPoint(256, 32, concurrency=1, num_requests=10),
    LoadPoint(64, 48, concurrency=4, num_requests=16),
)
#: Other concurrencies, request rates and lengths: what the fit is judged on, never fitted on.
UNSEEN_SET = (
    LoadPoint(512, 16, concurrency=1, num_requests=8),
    LoadPoint(64, 64, concurrency=2, num_requests=10),
    LoadPoint(256, 24, concurrency=8, num_requests=16),
    LoadPoint(96, 48, rate_per_s=6.0, num_requests=16),
    LoadPoint(32, 96, concurrency=6, num_requests=12),
    LoadPoint(384, 16, rate_per_s=3.0, num_requests=12),
)


@dataclass(frozen=True, slots=True)
class Measured:
    point: LoadPoint
    run_id: int
    observation: Observation


def interleaved(first: tuple[LoadPoint, ...], second: tuple[LoadPoint, ...], rounds: int) -> list[LoadPoint]:
    """Both sets' points taken turn about, ``rounds`` times, every other round in reverse: on a
    shared machine whose speed drifts, neither set is measured in a quieter stretch than the other."""
    merged = [p for pair in zip_longest(first, second) for p in pair if p is not None]
    return [p for r in range(rounds) for p in (merged if r % 2 == 0 else merged[::-1])]


def measure_points(
    url: str,
    model: str,
    points: tuple[LoadPoint, ...] | list[LoadPoint],
    store: ResultsStore,
    progress: Callable[[str], None] | None = None,
) -> list[Measured]:
    """Run each point against the server (stored as a serving run) and read it back as an
    observation; a point that reaches no server stops the loop with a one-line error."""
    out: list[Measured] = []
    for point in points:
        if progress:
            progress(f"measuring {point.label} ({point.num_requests} requests)")
        result = asyncio.run(run_sweep(point.spec(url, model), store))[0]
        if result.unreachable:
            raise BenchmarkError(f"no answer from {url} while measuring {point.label}; is the server up?")
        obs = observation_from_records(point.label, store.records(result.run_id), statistic="p50")
        out.append(Measured(point, result.run_id, replace(obs, concurrency=point.concurrency)))
    return out


def relative_error(predicted: float, measured: float) -> float:
    """|predicted - measured| / measured (inf when either is not a positive finite number)."""
    if not (measured > 0 and math.isfinite(predicted) and math.isfinite(measured)):
        return math.inf
    return abs(predicted - measured) / measured


@dataclass(frozen=True, slots=True)
class PredictionRow:
    """One metric of one run: measured, and predicted before and after calibration."""

    label: str
    metric: str
    measured: float
    uncalibrated: float
    calibrated: float

    @property
    def error_uncalibrated(self) -> float:
        return relative_error(self.uncalibrated, self.measured)

    @property
    def error_calibrated(self) -> float:
        return relative_error(self.calibrated, self.measured)


def compare(measured: list[Measured], before: Deployment, after: Deployment) -> list[PredictionRow]:
    """Each run replayed on the uncalibrated and the calibrated deployment, metric by metric."""
    rows = []
    for m in measured:
        obs = m.observation
        truth = (obs.ttft_mean_s, obs.tpot_mean_s, obs.output_tokens_per_s)
        pred_before = replay_observation(obs, before)
        pred_after = replay_observation(obs, after)
        rows += [
            PredictionRow(m.point.label, metric, truth[i], pred_before[i], pred_after[i])
            for i, metric in enumerate(METRICS)
        ]
    return rows


def median_error(rows: list[PredictionRow], calibrated: bool, metric: str | None = None) -> float:
    """Median relative error over the rows (of one metric, or all)."""
    errors = [r.error_calibrated if calibrated else r.error_uncalibrated for r in rows if metric in (None, r.metric)]
    return statistics.median(errors) if errors else math.inf


def fit_and_judge(
    name: str, fitted_on: list[Measured], unseen: list[Measured], dep: Deployment
) -> tuple[CalibrationProfile, list[PredictionRow]]:
    """Calibrate ``dep`` on ``fitted_on`` only, then predict ``unseen`` before and after."""
    profile = calibrate(name, [m.observation for m in fitted_on], dep, FIELDS)
    return profile, compare(unseen, dep.with_replicas(1), calibrated(dep.with_replicas(1), profile))


@dataclass(frozen=True, slots=True)
class AutoCalibration:
    """What ``calibrate --auto`` did: the runs it stored, the parameters before and after, and
    each metric of each run predicted before and after (the error that remains)."""

    run_ids: list[int]
    profile: CalibrationProfile
    before: dict[str, float]
    rows: list[PredictionRow]


def auto_calibrate(url: str, served_model: str, dep: Deployment, name: str, store: ResultsStore) -> AutoCalibration:
    """Measure :data:`CALIBRATION_SET` on the live server, fit, and judge the fit on those runs."""
    measured = measure_points(url, served_model, CALIBRATION_SET, store)
    profile = calibrate(name, [m.observation for m in measured], dep, FIELDS)
    fitted = profile.kernels | profile.engine_overrides
    engine = dep.engine
    before = {k: float(getattr(engine.kernels, k, getattr(engine, k, math.nan))) for k in fitted}
    one = dep.with_replicas(1)
    rows = compare(measured, one, calibrated(one, profile))
    return AutoCalibration([m.run_id for m in measured], profile, before, rows)
