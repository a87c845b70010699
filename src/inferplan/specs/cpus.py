"""CPUs as devices: the CPU catalog (``data/cpus.yaml``, one entry per socket) and devices
described by measurement (``bench gpu --save-device FILE`` on a CPU, then ``measured:FILE``).

A CPU socket is a :class:`~inferplan.specs.hardware.GpuSpec` with ``form_factor='cpu'``: one
NUMA node, one vLLM-CPU tensor-parallel rank. Its peaks are derived, not typed:
``cores x base clock x FLOPs per cycle`` and ``channels x MT/s x 8 bytes``.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inferplan.errors import ConfigError
from inferplan.specs.hardware import GpuSpec
from inferplan.units import GIB

__all__ = [
    "MEASURED_PREFIX",
    "cpu_catalog",
    "cpu_peak_flops",
    "find_cpu",
    "load_measured_device",
    "memory_bandwidth_bytes_per_s",
    "normalize_cpu_name",
]

MEASURED_PREFIX = "measured:"
_DTYPES = ("fp32", "bf16", "fp16", "int8")


class _CpuEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    name: str
    vendor: str
    architecture: str
    cores: int = Field(gt=0, le=4096)
    threads: int = Field(gt=0, le=8192)
    base_ghz: float = Field(gt=0, le=10)
    boost_ghz: float | None = Field(default=None, gt=0, le=10)
    l3_mib: float | None = Field(default=None, ge=0)
    max_sockets: int = Field(default=1, ge=1, le=8)
    memory_channels: int = Field(gt=0, le=64)
    memory_type: str
    memory_mts: float = Field(gt=0)
    memory_gib: float = Field(gt=0)
    flops_per_cycle: dict[str, float]
    isa: list[str]
    tdp_w: float = Field(gt=0)
    sources: str = Field(min_length=5)


class _MeasuredEntry(BaseModel):
    """A device file written by ``bench gpu --save-device`` (rates as measured, not peaks)."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,80}$")
    name: str = Field(max_length=200)
    threads: int = Field(gt=0, le=8192)
    memory_gib: float = Field(gt=0, le=1e6)
    mem_bw_gb_s: float = Field(gt=0, le=1e5)
    matmul_tflops: dict[str, float]
    sources: str = Field(max_length=2000)


def cpu_peak_flops(cores: int, base_ghz: float, flops_per_cycle: float) -> float:
    """Peak FLOP/s of one socket = cores x base clock (Hz) x dense FLOPs per cycle per core
    (FMA counted as 2). At base clock: an upper bound under AVX-512/AMX frequency licences."""
    return cores * base_ghz * 1e9 * flops_per_cycle


def memory_bandwidth_bytes_per_s(channels: int, mega_transfers_per_s: float) -> float:
    """Theoretical DRAM bandwidth of one socket = channels x MT/s x 8 bytes per transfer
    (a DDR4/DDR5 channel is 64 bits wide; e.g. 12 x 4800 x 8 = 460.8 GB/s, AMD's figure)."""
    return channels * mega_transfers_per_s * 1e6 * 8.0


def _rates(values: dict[str, float], what: str) -> dict[str, float]:
    for key, rate in values.items():
        if key not in _DTYPES or not rate > 0:
            raise ConfigError(f"{what}: '{key}: {rate}' must be a positive rate for one of {_DTYPES}")
    if "fp32" not in values:
        raise ConfigError(f"{what}: an fp32 rate is required")
    return values


def _cpu_spec(e: _CpuEntry) -> GpuSpec:
    per_cycle = _rates(e.flops_per_cycle, e.id)
    memory = e.memory_gib * GIB
    return GpuSpec(
        id=e.id,
        name=e.name,
        vendor=e.vendor,
        architecture=e.architecture,
        form_factor="cpu",
        memory_bytes=memory,
        visible_memory_bytes=memory,
        mem_bw_bytes_per_s=memory_bandwidth_bytes_per_s(e.memory_channels, e.memory_mts),
        peak_flops={k: cpu_peak_flops(e.cores, e.base_ghz, v) for k, v in per_cycle.items()},
        measured_matmul_flops={},
        scale_up=None,
        max_scale_up_gpus=e.max_sockets,
        pcie="pcie5",
        tdp_w=e.tdp_w,
        num_sms=e.cores,
        mig_profiles=(),
        sources=e.sources,
    )


def _read_yaml(path: Path | Any, what: str) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror}") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what}: not valid YAML ({exc})") from exc


def _first_error(what: str, exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"{what}: field '{'.'.join(str(p) for p in err['loc'])}': {err['msg']}"


@cache
def cpu_catalog() -> dict[str, GpuSpec]:
    """Every catalog CPU socket by id."""
    data = _read_yaml(resources.files("inferplan") / "data" / "cpus.yaml", "cpus.yaml")
    if not isinstance(data, list):
        raise ConfigError("cpus.yaml: expected a list of entries")
    out: dict[str, GpuSpec] = {}
    for i, raw in enumerate(data):
        try:
            entry = _CpuEntry.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(_first_error(f"cpus.yaml entry {i + 1}", exc)) from exc
        out[entry.id] = _cpu_spec(entry)
    return out


def normalize_cpu_name(name: str) -> str:
    """A CPU name as people write it, as lscpu prints it, or as the catalog id:
    'AMD EPYC 9654 96-Core Processor', 'Intel(R) Xeon(R) Platinum 8480+' -> 'epyc-9654', 'xeon-8480plus'."""
    key = name.lower().replace("(r)", " ").replace("(tm)", " ").replace("®", " ").replace("+", "plus")
    key = re.sub(r"\b(amd|intel|processor|cpu|\d+-core|platinum|gold|silver)\b", " ", key)
    key = re.sub(r"@.*$", "", key)  # '@ 2.00GHz'
    return re.sub(r"[\s_]+", "-", key.strip()).strip("-")


def load_measured_device(path: Path) -> GpuSpec:
    """The device a ``bench gpu --save-device`` file describes: its measured GEMM rates are
    both the peak and the achievable rate, its measured copy bandwidth the memory bandwidth."""
    what = str(path)
    data = _read_yaml(path, what)
    try:
        e = _MeasuredEntry.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_first_error(what, exc) + " (write it with inferplan bench gpu --save-device)") from exc
    rates = {k: v * 1e12 for k, v in _rates(e.matmul_tflops, what).items()}
    memory = e.memory_gib * GIB
    return GpuSpec(
        id=e.id,
        name=e.name,
        vendor="measured",
        architecture="measured",
        form_factor="cpu",
        memory_bytes=memory,
        visible_memory_bytes=memory,
        mem_bw_bytes_per_s=e.mem_bw_gb_s * 1e9,
        peak_flops=rates,
        measured_matmul_flops=dict(rates),
        scale_up=None,
        max_scale_up_gpus=1,
        pcie="pcie4",
        tdp_w=1.0,
        num_sms=e.threads,
        mig_profiles=(),
        sources=e.sources,
    )


def find_cpu(name: str) -> GpuSpec | None:
    """A catalog CPU by the names people write, or a measured device ('measured:FILE');
    None when ``name`` names no CPU."""
    if name.startswith(MEASURED_PREFIX):
        return load_measured_device(Path(name[len(MEASURED_PREFIX) :]))
    catalog = cpu_catalog()
    key = normalize_cpu_name(name)
    if key in catalog:
        return catalog[key]
    bare = {k.split("-", 1)[1]: k for k in catalog}  # '9654', '8480plus'
    return catalog[bare[key]] if key in bare else None
