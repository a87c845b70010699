"""Calibration: fit the performance model's physical parameters to measurements of a real
deployment and save them as a named profile that ``predict`` and ``plan`` can use.

Serving runs are replayed exactly: the simulator gets each stored request's arrival time and
token counts, and its TTFT, TPOT and throughput are compared with the measured ones. Micro-
benchmarks (``bench gpu``) give the GPU's achievable matmul rate and memory bandwidth
directly. Only engine overheads and kernel efficiencies are fitted, never per-run terms.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from inferplan.bench.client import RequestRecord
from inferplan.bench.summary import summarize_records
from inferplan.errors import ConfigError, InputError
from inferplan.perf.metrics import serving_metrics
from inferplan.perf.replica import build
from inferplan.perf.simulator import simulate
from inferplan.perf.workload import Requests
from inferplan.sizing.memory import Parallelism
from inferplan.specs.engines import EngineProfile, KernelParams
from inferplan.specs.hardware import GpuSpec
from inferplan.specs.model import ModelSpec
from inferplan.specs.precision import KvDtype, Precision

__all__ = [
    "ENGINE_FIELDS",
    "KERNEL_FIELDS",
    "CalibrationProfile",
    "Observation",
    "apply_profile",
    "calibrate",
    "fit_parameters",
    "load_profile",
    "observation_from_records",
    "profile_dir",
    "replay_observation",
    "save_profile",
]

KERNEL_FIELDS = ("gemm_efficiency", "gemm_m_half", "mem_efficiency", "attention_efficiency", "weight_only_bandwidth")
ENGINE_FIELDS = ("step_overhead_s", "layer_overhead_s")
BOUNDS = {
    "gemm_efficiency": (0.2, 1.0),
    "gemm_m_half": (1.0, 1024.0),
    "mem_efficiency": (0.2, 0.98),
    "attention_efficiency": (0.1, 0.95),
    "weight_only_bandwidth": (0.3, 1.0),
    "step_overhead_s": (1e-6, 0.1),
    "layer_overhead_s": (1e-8, 1e-3),
}


@dataclass(frozen=True, slots=True)
class CalibrationProfile:
    name: str
    engine: str
    kernels: dict[str, float] = field(default_factory=dict)
    engine_overrides: dict[str, float] = field(default_factory=dict)
    gpu: str | None = None
    measured_matmul_tflops: dict[str, float] = field(default_factory=dict)
    measured_mem_bw_gb_s: float | None = None
    fitted_on: list[str] = field(default_factory=list)
    error_before: float | None = None
    error_after: float | None = None
    created_at: str = ""


def fit_parameters(
    objective: Callable[[dict[str, float]], float],
    start: dict[str, float],
    bounds: dict[str, tuple[float, float]],
    rounds: int = 6,
    step: float = 1.6,
    log: Callable[[str], None] | None = None,
) -> tuple[dict[str, float], float]:
    """Pattern search in log space: move one parameter, or two together (correlated
    parameters such as a fixed overhead and a bandwidth efficiency lie along diagonal
    valleys), by a factor ``step``, for as long as the objective falls; then shrink the step."""
    params, best = dict(start), objective(start)
    keys = list(params)
    moves = [{k: f} for k in keys for f in (step, 1 / step)]
    moves += [
        {a: fa, b: fb}
        for i, a in enumerate(keys)
        for b in keys[i + 1 :]
        for fa in (step, 1 / step)
        for fb in (step, 1 / step)
    ]
    for rnd in range(rounds):
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


def observation_from_records(label: str, records: list[RequestRecord]) -> Observation:
    ok = [r for r in records if r.ok]
    if len(ok) < 2:
        raise InputError(f"run {label} has fewer than two successful requests; nothing to calibrate on")
    s = summarize_records(ok)
    start = min(r.scheduled_s for r in ok)
    reqs = Requests(
        np.array([r.scheduled_s - start for r in ok]),
        np.array([max(r.input_tokens, 1) for r in ok]),
        np.array([max(r.output_tokens, 1) for r in ok]),
    )
    return Observation(label, reqs, s["ttft_s"]["mean"], s["tpot_s"]["mean"], s["output_token_throughput_per_s"])


def _engine_with(engine: EngineProfile, values: dict[str, float]) -> EngineProfile:
    kernels: KernelParams = replace(engine.kernels, **{k: v for k, v in values.items() if k in KERNEL_FIELDS})
    return replace(
        engine,
        kernels=kernels,
        step_overhead_s=values.get("step_overhead_s", engine.step_overhead_s),
        layer_overhead_s=values.get("layer_overhead_s", engine.layer_overhead_s),
    )


def apply_profile(
    engine: EngineProfile, gpu: GpuSpec, profile: CalibrationProfile | None
) -> tuple[EngineProfile, GpuSpec]:
    """The engine and GPU as the profile measured them."""
    if profile is None:
        return engine, gpu
    engine = _engine_with(engine, profile.kernels | profile.engine_overrides)
    if profile.measured_matmul_tflops and (profile.gpu is None or profile.gpu == gpu.id):
        measured = dict(gpu.measured_matmul_flops) | {k: v * 1e12 for k, v in profile.measured_matmul_tflops.items()}
        gpu = replace(gpu, measured_matmul_flops=measured)
    return engine, gpu


def replay_observation(
    obs: Observation,
    model: ModelSpec,
    gpu: GpuSpec,
    precision: Precision,
    kv: KvDtype,
    par: Parallelism,
    engine: EngineProfile,
) -> tuple[float, float, float]:
    """Replay the run's exact requests on the deployment: (TTFT mean s, TPOT mean s, output tok/s)."""
    built = build(model, gpu, precision, kv, par, engine)
    m = serving_metrics(simulate(built.cost, built.scheduler, obs.requests))
    return m.ttft_s.mean, m.tpot_s.mean, m.output_token_throughput_per_s


def _error(observations: list[Observation], predictor: Callable[[Observation], tuple[float, float, float]]) -> float:
    errs = []
    for obs in observations:
        pred = predictor(obs)
        for p, m in zip(pred, (obs.ttft_mean_s, obs.tpot_mean_s, obs.output_tokens_per_s), strict=True):
            if m > 0 and p > 0 and math.isfinite(p) and math.isfinite(m):
                errs.append(abs(math.log(p / m)))
    return statistics.mean(errs) if errs else math.inf


def calibrate(
    name: str,
    observations: list[Observation],
    model: ModelSpec,
    gpu: GpuSpec,
    precision: Precision,
    kv: KvDtype,
    par: Parallelism,
    engine: EngineProfile,
    fields: tuple[str, ...] = ("step_overhead_s", "mem_efficiency", "gemm_efficiency", "layer_overhead_s"),
    log: Callable[[str], None] | None = None,
) -> CalibrationProfile:
    """Fit ``fields`` so that replayed runs match their measurements (mean |log error| of
    TTFT, TPOT and output throughput)."""
    unknown = set(fields) - set(KERNEL_FIELDS) - set(ENGINE_FIELDS)
    if unknown:
        raise InputError(f"cannot calibrate {sorted(unknown)}; choose from {', '.join(KERNEL_FIELDS + ENGINE_FIELDS)}")
    if not observations:
        raise InputError("give at least one run to calibrate on")

    def objective(params: dict[str, float]) -> float:
        eng = _engine_with(engine, params)
        return _error(observations, lambda o: replay_observation(o, model, gpu, precision, kv, par, eng))

    start = {k: float(getattr(engine.kernels, k) if k in KERNEL_FIELDS else getattr(engine, k)) for k in fields}
    before = objective(start)
    fitted, after = fit_parameters(objective, start, {k: BOUNDS[k] for k in fields}, log=log)
    return CalibrationProfile(
        name=name,
        engine=engine.name,
        kernels={k: v for k, v in fitted.items() if k in KERNEL_FIELDS},
        engine_overrides={k: v for k, v in fitted.items() if k in ENGINE_FIELDS},
        gpu=gpu.id,
        fitted_on=[o.label for o in observations],
        error_before=before,
        error_after=after,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def profile_dir() -> Path:
    """``$INFERPLAN_HOME/calibrations`` (default ``~/.inferplan/calibrations``)."""
    return Path(os.environ.get("INFERPLAN_HOME") or Path.home() / ".inferplan") / "calibrations"


def save_profile(profile: CalibrationProfile, directory: Path | None = None) -> Path:
    folder = directory or profile_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{profile.name}.yaml"
    data: dict[str, Any] = {f: getattr(profile, f) for f in profile.__dataclass_fields__}
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def load_profile(name_or_path: str, directory: Path | None = None) -> CalibrationProfile:
    """A profile by name (in the calibration folder) or by path."""
    path = Path(name_or_path)
    if not path.is_file():
        path = (directory or profile_dir()) / f"{name_or_path}.yaml"
    if not path.is_file():
        known = (
            sorted(p.stem for p in (directory or profile_dir()).glob("*.yaml"))
            if (directory or profile_dir()).is_dir()
            else []
        )
        raise ConfigError(
            f"no calibration profile '{name_or_path}'; known: {', '.join(known) or 'none'} "
            "(create one with inferplan calibrate)"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return CalibrationProfile(**data)
    except (yaml.YAMLError, TypeError) as exc:
        raise ConfigError(f"{path}: not a calibration profile ({exc})") from exc
