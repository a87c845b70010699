"""Calibration: fit the performance model's physical parameters to measurements of a real
deployment and save them as a named profile that ``predict`` and ``plan`` can use.

Serving runs are replayed exactly: the simulator gets each stored request's arrival time and
token counts, and its TTFT, TPOT and throughput are compared with the measured ones. Micro-
benchmarks (``bench gpu``) give the GPU's achievable matmul rate and memory bandwidth
directly. Only engine overheads and kernel efficiencies are fitted, never per-run terms.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from inferplan.bench.client import RequestRecord
from inferplan.bench.multiturn import recorded_sessions
from inferplan.bench.summary import summarize_records
from inferplan.errors import ConfigError, InputError
from inferplan.perf.metrics import serving_metrics
from inferplan.perf.replica import build_replica
from inferplan.perf.simulator import simulate
from inferplan.perf.workload import Requests
from inferplan.specs.calibration_profile import ENGINE_FIELDS, KERNEL_FIELDS, CalibrationProfile, engine_with
from inferplan.specs.deployment import Deployment

__all__ = [
    "BOUNDS",
    "Observation",
    "Schedule",
    "calibrate",
    "fit_parameters",
    "observation_from_records",
    "replay_observation",
    "residual_pct",
]


@dataclass(frozen=True, slots=True)
class Schedule:
    """How a pattern search moves: ``rounds`` rounds, starting with factor ``step``, which
    shrinks to its square root every round."""

    rounds: int = 6
    step: float = 1.6


BOUNDS = {
    "gemm_efficiency": (0.2, 1.0),
    "gemm_m_half": (1.0, 1024.0),
    "mem_efficiency": (0.2, 0.98),
    "attention_efficiency": (0.1, 0.95),
    "weight_only_bandwidth": (0.3, 1.0),
    "step_overhead_s": (1e-6, 0.1),
    "layer_overhead_s": (1e-8, 1e-3),
    "sequence_overhead_s": (1e-7, 0.01),
}


def fit_parameters(
    objective: Callable[[dict[str, float]], float],
    start: dict[str, float],
    bounds: dict[str, tuple[float, float]],
    schedule: Schedule | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[dict[str, float], float]:
    """Pattern search in log space: move one parameter, or two together (correlated
    parameters such as a fixed overhead and a bandwidth efficiency lie along diagonal
    valleys), by a factor ``step``, for as long as the objective falls; then shrink the step."""
    params, best = dict(start), objective(start)
    schedule = schedule or Schedule()
    step = schedule.step
    keys = list(params)
    moves = [{k: f} for k in keys for f in (step, 1 / step)]
    moves += [
        {a: fa, b: fb}
        for i, a in enumerate(keys)
        for b in keys[i + 1 :]
        for fa in (step, 1 / step)
        for fb in (step, 1 / step)
    ]
    for rnd in range(schedule.rounds):
        improved = True
        while improved:
            improved = False
            for move in moves:
                trial = {k: min(max(v * move.get(k, 1.0), bounds[k][0]), bounds[k][1]) for k, v in params.items()}
                if trial == params:
                    continue
                value = objective(trial)
                if value < best - 1e-6:
                    params, best, improved = trial, value, True
                    if log:
                        log(f"round {rnd}: " + ", ".join(f"{k}={params[k]:.4g}" for k in move) + f", error {best:.4f}")
        step = math.sqrt(step)
        moves = [{k: (f**0.5) for k, f in move.items()} for move in moves]
    return params, best


@dataclass(frozen=True, slots=True)
class Observation:
    """One measured serving run: the exact requests sent and the figures measured."""

    label: str
    requests: Requests
    ttft_mean_s: float
    tpot_mean_s: float
    output_tokens_per_s: float
    concurrency: int | None = None  # a closed loop of this many streams (None: replay the arrivals)
    statistic: str = "mean"  # of TTFT and TPOT: 'mean', or 'p50' (robust to a few disturbed requests)


def observation_from_records(
    label: str, records: list[RequestRecord], statistic: str = "mean", traffic: Mapping[str, Any] | None = None
) -> Observation:
    """A stored run as the simulator replays it: its exact requests at the times they were sent;
    with the run's stored ``traffic`` (multi-turn sessions, shared prompts, adapters), each turn
    released by the one before it and sharing its tokens (:func:`inferplan.bench.multiturn.recorded_sessions`)."""
    ok = [r for r in records if r.ok]
    if len(ok) < 2:
        raise InputError(f"run {label} has fewer than two successful requests; nothing to calibrate on")
    s = summarize_records(ok)
    if isinstance(traffic, Mapping):
        try:
            reqs = recorded_sessions(ok, traffic)
        except ConfigError as exc:
            raise ConfigError(f"run {label}: {exc}") from None
    else:
        start = min(r.scheduled_s for r in ok)
        reqs = Requests(
            np.array([r.scheduled_s - start for r in ok]),
            np.array([max(r.input_tokens, 1) for r in ok]),
            np.array([max(r.output_tokens, 1) for r in ok]),
        )
    ttft, tpot = s["ttft_s"][statistic], s["tpot_s"][statistic]
    return Observation(label, reqs, ttft, tpot, s["output_token_throughput_per_s"], statistic=statistic)


def replay_observation(obs: Observation, dep: Deployment) -> tuple[float, float, float]:
    """Replay the run's exact requests on one replica of ``dep``: (TTFT, TPOT in s, the
    observation's statistic; output tok/s). A closed loop is replayed as one (each completion releases the next
    request), so that a slower prediction does not queue requests the real loop never sent."""
    m = serving_metrics(simulate(build_replica(dep), obs.requests, concurrency=obs.concurrency))
    if obs.statistic == "p50":
        return m.ttft_s.p50, m.tpot_s.p50, m.output_token_throughput_per_s
    return m.ttft_s.mean, m.tpot_s.mean, m.output_token_throughput_per_s


def _error(observations: list[Observation], predictor: Callable[[Observation], tuple[float, float, float]]) -> float:
    errs = []
    for obs in observations:
        pred = predictor(obs)
        for p, m in zip(pred, (obs.ttft_mean_s, obs.tpot_mean_s, obs.output_tokens_per_s), strict=True):
            if m > 0 and p > 0 and math.isfinite(p) and math.isfinite(m):
                errs.append(abs(math.log(p / m)))
    return statistics.mean(errs) if errs else math.inf


#: The kinds of figure a calibration's residuals are kept for (the error bands' kinds).
RESIDUAL_KINDS = ("ttft", "tpot", "throughput")


def residual_pct(observations: list[Observation], dep: Deployment) -> dict[str, list[float]]:
    """|predicted - measured| / measured in percent, per kind of figure, of every run replayed on
    ``dep``: what the error bands of a calibrated deployment are drawn from."""
    out: dict[str, list[float]] = {k: [] for k in RESIDUAL_KINDS}
    for obs in observations:
        pred = replay_observation(obs, dep)
        for kind, p, m in zip(
            RESIDUAL_KINDS, pred, (obs.ttft_mean_s, obs.tpot_mean_s, obs.output_tokens_per_s), strict=True
        ):
            if m > 0 and math.isfinite(p):
                out[kind].append(round(abs(p - m) / m * 100.0, 2))
    return out


DEFAULT_FIELDS = ("step_overhead_s", "mem_efficiency", "gemm_efficiency", "layer_overhead_s")


def calibrate(
    name: str,
    observations: list[Observation],
    dep: Deployment,
    fields: tuple[str, ...] = DEFAULT_FIELDS,
    log: Callable[[str], None] | None = None,
) -> CalibrationProfile:
    """Fit ``fields`` so that replayed runs match their measurements (mean |log error| of
    TTFT, TPOT and output throughput)."""
    unknown = set(fields) - set(KERNEL_FIELDS) - set(ENGINE_FIELDS)
    if unknown:
        raise InputError(f"cannot calibrate {sorted(unknown)}; choose from {', '.join(KERNEL_FIELDS + ENGINE_FIELDS)}")
    if not observations:
        raise InputError("give at least one run to calibrate on")

    engine = dep.engine
    one = dep.with_replicas(1)

    def objective(params: dict[str, float]) -> float:
        trial = replace(one, engine=engine_with(engine, params))
        return _error(observations, lambda o: replay_observation(o, trial))

    start = {k: float(getattr(engine.kernels, k) if k in KERNEL_FIELDS else getattr(engine, k)) for k in fields}
    before = objective(start)
    fitted, after = fit_parameters(objective, start, {k: BOUNDS[k] for k in fields}, log=log)
    residuals = residual_pct(observations, replace(one, engine=engine_with(engine, fitted)))
    return CalibrationProfile(
        name=name,
        engine=engine.name,
        kernels={k: v for k, v in fitted.items() if k in KERNEL_FIELDS},
        engine_overrides={k: v for k, v in fitted.items() if k in ENGINE_FIELDS},
        gpu=dep.gpu.id,
        fitted_on=[o.label for o in observations],
        error_before=before,
        error_after=after,
        residual_pct=residuals,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
