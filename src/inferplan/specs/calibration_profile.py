"""Calibration profiles: named sets of fitted engine and kernel parameters (and measured GPU
rates) that ``predict``, ``plan`` and the web apply to the catalog's defaults.

The fitting itself lives in :mod:`inferplan.bench.calibration`; a profile is a spec, read by
every layer above this one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from inferplan.errors import ConfigError
from inferplan.specs.deployment import Deployment
from inferplan.specs.engines import EngineProfile, KernelParams
from inferplan.specs.hardware import GpuSpec, get_gpu

__all__ = [
    "ENGINE_FIELDS",
    "KERNEL_FIELDS",
    "CalibrationProfile",
    "apply_profile",
    "calibrated",
    "engine_with",
    "load_profile",
    "profile_dir",
    "profile_names",
    "save_profile",
]

KERNEL_FIELDS = ("gemm_efficiency", "gemm_m_half", "mem_efficiency", "attention_efficiency", "weight_only_bandwidth")
ENGINE_FIELDS = ("step_overhead_s", "layer_overhead_s", "sequence_overhead_s")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


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
    # |predicted - measured| / measured, percent, per kind (ttft, tpot, throughput), on the runs fitted
    residual_pct: dict[str, list[float]] = field(default_factory=dict)
    created_at: str = ""


def engine_with(engine: EngineProfile, values: dict[str, float]) -> EngineProfile:
    fields: dict[str, Any] = {k: v for k, v in values.items() if k in KERNEL_FIELDS}
    kernels: KernelParams = replace(engine.kernels, **fields)
    return replace(
        engine,
        kernels=kernels,
        step_overhead_s=values.get("step_overhead_s", engine.step_overhead_s),
        layer_overhead_s=values.get("layer_overhead_s", engine.layer_overhead_s),
        sequence_overhead_s=values.get("sequence_overhead_s", engine.sequence_overhead_s),
    )


def apply_profile(
    engine: EngineProfile, gpu: GpuSpec, profile: CalibrationProfile | None
) -> tuple[EngineProfile, GpuSpec]:
    """The engine and GPU as the profile measured them."""
    if profile is None:
        return engine, gpu
    engine = engine_with(engine, profile.kernels | profile.engine_overrides)
    if profile.measured_matmul_tflops and (profile.gpu is None or get_gpu(profile.gpu).id == gpu.id):
        measured = dict(gpu.measured_matmul_flops) | {k: v * 1e12 for k, v in profile.measured_matmul_tflops.items()}
        gpu = replace(gpu, measured_matmul_flops=measured)
    return engine, gpu


def calibrated(dep: Deployment, profile: CalibrationProfile | None) -> Deployment:
    """``dep`` with the profile's engine parameters and measured GPU rates applied."""
    if profile is None:
        return dep
    engine, gpu = apply_profile(dep.engine, dep.gpu, profile)
    return replace(dep, engine=engine, gpu=gpu)


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


def _is_file(path: Path) -> bool:
    """Whether ``path`` is a file; False also for a name too long to be a path."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def load_profile(name_or_path: str, directory: Path | None = None, *, allow_paths: bool = True) -> CalibrationProfile:
    """A profile by name (in the calibration folder) or, with ``allow_paths``, by path.
    The web UI passes ``allow_paths=False``: a name only, never a path."""
    if not allow_paths and not _NAME.match(name_or_path):
        raise ConfigError(f"calibration profile '{name_or_path}': give a profile name (letters, digits, . _ -)")
    path = Path(name_or_path)
    if not allow_paths or not _is_file(path):
        path = (directory or profile_dir()) / f"{name_or_path}.yaml"
    if not _is_file(path):
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
    except (yaml.YAMLError, TypeError, UnicodeDecodeError, OSError) as exc:
        raise ConfigError(f"{path}: not a calibration profile ({exc})") from exc


def profile_names(directory: Path | None = None) -> list[str]:
    """Names of the saved profiles (what the web form offers)."""
    folder = directory or profile_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.yaml") if _NAME.match(p.stem))
