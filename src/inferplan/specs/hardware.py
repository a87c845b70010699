"""The hardware catalog: GPUs and the links between them, loaded from YAML and validated.

``GpuSpec`` holds SI values (bytes, bytes/s, FLOP/s). A MIG slice is a ``GpuSpec`` too:
:func:`mig_slice` scales compute by the slice's GPCs (g/7) and memory capacity and
bandwidth by its memory slices (the GB label over the whole card's).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from inferplan.errors import ConfigError, InputError, UnknownGpuError
from inferplan.specs.names import GpuName, normalize, resolve_gpu_name
from inferplan.units import GB, GIB, MIB, counted

__all__ = [
    "GpuSpec",
    "LinkSpec",
    "get_gpu",
    "get_link",
    "gpu_catalog",
    "gpus_per_server",
    "link_catalog",
    "list_devices",
    "load_gpu_file",
    "mig_slice",
    "pcie_link",
    "resolve_gpu",
    "tp_link_for",
]

#: GPUs in one server: the most a tensor-parallel group spans (engines keep TP inside a
#: server; larger NVLink domains such as NVL72 are still used as 8-GPU TP groups).
MAX_GPUS_PER_SERVER = 8

#: Fraction of nominal memory visible to CUDA when no measurement is catalogued
#: (ECC and driver reservations: 79.22 of 80 GiB on H100, 79.15 on A100 80GB = 0.990).
DEFAULT_VISIBLE_MEMORY_FRACTION = 0.99
_DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp4")


class _GpuEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    name: str
    vendor: str
    architecture: str
    form_factor: str
    product: str = Field(default="", pattern=r"^[a-z0-9]*$")
    variant: str | None = None
    memory_type: str = ""
    default_variant: bool = False
    reported_memory_mib: int | None = Field(default=None, gt=0)
    aliases: list[str] = Field(default_factory=list)
    memory_gib: float = Field(gt=0)
    visible_memory_gib: float | None = Field(default=None, gt=0)
    mem_bw_tb_s: float = Field(gt=0)
    dense_tflops: dict[str, float]
    measured_matmul_tflops: dict[str, float] = Field(default_factory=dict)
    scale_up: str | None
    max_scale_up_gpus: int = Field(default=8, ge=1)
    pcie: str
    tdp_w: float = Field(gt=0)
    num_sms: int = Field(gt=0)
    mig: list[str]
    sources: str = Field(min_length=5)

    @field_validator("dense_tflops", "measured_matmul_tflops")
    @classmethod
    def _known_dtypes(cls, value: dict[str, float]) -> dict[str, float]:
        for key, rate in value.items():
            if key not in _DTYPES or rate <= 0:
                raise ValueError(f"'{key}: {rate}' must be a positive rate for one of {_DTYPES}")
        return value


class _LinkEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    name: str
    kind: str
    bw_gb_s_per_direction: float = Field(gt=0)
    latency_us: float = Field(ge=0)
    allreduce_bus_efficiency: float = Field(gt=0, le=1)
    sharp_bus_gb_s: float | None = None
    max_gpus: int = 1024
    sources: str = Field(min_length=5)


@dataclass(frozen=True, slots=True)
class GpuSpec:
    """One GPU (or MIG slice). Rates are dense tensor-core FLOP/s per dtype."""

    id: str
    name: str
    vendor: str
    architecture: str
    form_factor: str
    memory_bytes: float
    visible_memory_bytes: float
    mem_bw_bytes_per_s: float
    peak_flops: dict[str, float]
    measured_matmul_flops: dict[str, float]
    scale_up: str | None
    max_scale_up_gpus: int
    pcie: str
    tdp_w: float
    num_sms: int
    mig_profiles: tuple[str, ...]
    sources: str
    compute_fraction: float = 1.0  # < 1 for a MIG slice
    mig_profile: str | None = None  # set on a MIG slice, e.g. '3g.40gb'
    base_id: str = ""  # the whole card's id for a MIG slice
    card_share: float = 1.0  # share of the card a slice occupies: max(compute share, memory share)
    product: str = ""
    variant: str | None = None
    memory_type: str = ""
    aliases: tuple[str, ...] = ()
    default_variant: bool = False
    reported_memory_bytes: float | None = None  # nvidia-smi's memory.total, where published

    @property
    def is_cpu(self) -> bool:
        """A CPU socket (specs/cpus.py): KV cache in host memory, no tensor cores."""
        return self.form_factor == "cpu"

    @property
    def unit(self) -> str:
        """What one device is called in sentences: 'GPU', 'CPU socket', or '3g.40gb slice' on MIG."""
        if self.is_cpu:
            return "CPU socket"
        return f"{self.mig_profile} slice" if self.mig_profile else "GPU"

    def count(self, n: int) -> str:
        """'1 GPU', '16 GPUs', '2 CPU sockets', '2 3g.40gb slices'."""
        return counted(n, self.unit)

    @property
    def card_id(self) -> str:
        """The id of the physical card (a MIG slice's parent)."""
        return self.base_id or self.id

    def runs_weights(self, precision: str) -> bool:
        """Whether the engine runs weights of ``precision`` here: FP8 and FP4 weights are GPU
        tensor-core formats, which vLLM's CPU backend does not run."""
        return not (self.is_cpu and precision in ("fp8", "mxfp4", "nvfp4"))

    def holds_kv(self, kv_dtype: str) -> bool:
        """Whether the engine keeps a KV cache of ``kv_dtype`` here: vLLM-CPU's FP8 KV needs
        AVX-512 or AMX, which the CPU catalog marks by an INT8 (VNNI/AMX) rate."""
        return not (self.is_cpu and kv_dtype == "fp8" and "int8" not in self.peak_flops)

    def supports(self, dtype: str) -> bool:
        """Whether the tensor cores run ``dtype`` natively (e.g. FP8 on Hopper, not Ampere)."""
        return dtype in self.peak_flops

    def flops_for(self, dtype: str) -> float:
        """Dense peak FLOP/s for a GEMM in ``dtype``; BF16/FP16 when the dtype is unsupported."""
        if dtype in self.peak_flops:
            return self.peak_flops[dtype]
        return self.peak_flops.get("bf16", self.peak_flops.get("fp16", 0.0))


@dataclass(frozen=True, slots=True)
class LinkSpec:
    id: str
    name: str
    kind: str
    bw_bytes_per_s: float  # per GPU, per direction
    latency_s: float
    allreduce_bus_efficiency: float
    sharp_bus_bytes_per_s: float | None
    max_gpus: int
    sources: str


def _load_yaml(path: Path | Any, what: str) -> list[dict[str, Any]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what}: not valid YAML ({exc})") from exc
    if not isinstance(data, list):
        raise ConfigError(f"{what}: expected a list of entries")
    return data


def _validation_message(what: str, index: int, exc: ValidationError) -> str:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"])
    return f"{what}: entry {index + 1}, field '{field}': {err['msg']}"


@cache
def gpu_catalog() -> dict[str, GpuSpec]:
    """Every catalog GPU by id."""
    return load_gpu_file(resources.files("inferplan") / "data" / "gpus.yaml")


def load_gpu_file(path: Path | Any) -> dict[str, GpuSpec]:
    """Read and validate a GPU YAML file (the catalog's format); errors name entry and field."""
    out: dict[str, GpuSpec] = {}
    what = getattr(path, "name", str(path))
    for i, raw in enumerate(_load_yaml(path, what)):
        try:
            e = _GpuEntry.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(_validation_message(what, i, exc)) from exc
        memory = e.memory_gib * GIB
        visible = e.visible_memory_gib * GIB if e.visible_memory_gib else memory * DEFAULT_VISIBLE_MEMORY_FRACTION
        out[e.id] = GpuSpec(
            id=e.id,
            name=e.name,
            vendor=e.vendor,
            architecture=e.architecture,
            form_factor=e.form_factor,
            memory_bytes=memory,
            visible_memory_bytes=visible,
            mem_bw_bytes_per_s=e.mem_bw_tb_s * 1e12,
            peak_flops={k: v * 1e12 for k, v in e.dense_tflops.items()},
            measured_matmul_flops={k: v * 1e12 for k, v in e.measured_matmul_tflops.items()},
            scale_up=e.scale_up,
            max_scale_up_gpus=e.max_scale_up_gpus,
            pcie=e.pcie,
            tdp_w=e.tdp_w,
            num_sms=e.num_sms,
            mig_profiles=tuple(e.mig),
            sources=e.sources,
            product=e.product,
            variant=e.variant,
            memory_type=e.memory_type,
            aliases=tuple(e.aliases),
            default_variant=e.default_variant,
            reported_memory_bytes=e.reported_memory_mib * MIB if e.reported_memory_mib else None,
        )
    return out


@cache
def link_catalog() -> dict[str, LinkSpec]:
    """Every interconnect by id."""
    path = resources.files("inferplan") / "data" / "interconnects.yaml"
    out: dict[str, LinkSpec] = {}
    for i, raw in enumerate(_load_yaml(path, "interconnects.yaml")):
        try:
            e = _LinkEntry.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(_validation_message("interconnects.yaml", i, exc)) from exc
        out[e.id] = LinkSpec(
            id=e.id,
            name=e.name,
            kind=e.kind,
            bw_bytes_per_s=e.bw_gb_s_per_direction * GB,
            latency_s=e.latency_us * 1e-6,
            allreduce_bus_efficiency=e.allreduce_bus_efficiency,
            sharp_bus_bytes_per_s=e.sharp_bus_gb_s * GB if e.sharp_bus_gb_s else None,
            max_gpus=e.max_gpus,
            sources=e.sources,
        )
    return out


@cache
def _gpu_names() -> tuple[GpuName, ...]:
    return tuple(
        GpuName(g.id, g.name, g.product, g.variant, g.memory_bytes / GIB, g.memory_type, g.aliases, g.default_variant)
        for g in gpu_catalog().values()
    )


def resolve_gpu(name: str) -> tuple[GpuSpec, str]:
    """A catalog GPU from any way of writing it (ids, nvidia-smi/rocm-smi names, 'H100 SXM5 80GB';
    see :mod:`inferplan.specs.names`), and the resolver's note when it chose a default.
    'h100-sxm:3g.40gb' names a MIG slice. CPUs resolve too ('AMD EPYC 9654', 'measured:FILE';
    :mod:`inferplan.specs.cpus`)."""
    from inferplan.specs.cpus import cpu_catalog, find_cpu  # cpus.py builds on GpuSpec

    cpu = find_cpu(name)  # a CPU by the names people and lscpu write, or 'measured:FILE'
    if cpu is not None:
        return cpu, ""
    base, _, profile = name.partition(":")
    try:
        found = resolve_gpu_name(base, _gpu_names())
    except UnknownGpuError:
        if re.search(r"epyc|xeon|\bcpu\b", name, re.IGNORECASE):  # a CPU the catalog lacks: suggest CPUs
            raise UnknownGpuError(
                name, cpu_catalog(), "(CPUs: 'inferplan bench gpu --save-device' measures yours)"
            ) from None
        raise
    gpu = gpu_catalog()[found.key]
    return (mig_slice(gpu, profile.strip()) if profile else gpu), found.note


def list_devices(search: str = "", *, cpus: bool = False, min_memory_bytes: float = 0.0) -> list[GpuSpec]:
    """Catalog devices for ``inferplan gpus``: every GPU whose id, name, product or alias holds
    ``search`` as people write it ('H100 SXM' finds h100-sxm), CPUs too when ``cpus`` or when the
    search names one ('xeon'); failing any such match, the one device the resolver reads in the
    whole text (nvidia-smi's 'NVIDIA H100 80GB HBM3', lscpu's model name). Never raises for a
    search that matches nothing: the list is empty."""
    from inferplan.specs.cpus import cpu_catalog  # cpus.py builds on GpuSpec

    key = "".join(normalize(search).split())

    def holds(d: GpuSpec) -> bool:
        names = (d.id, d.name, d.product, *d.aliases)
        return any(key in "".join(normalize(n).split()) for n in names)

    every = [*gpu_catalog().values(), *cpu_catalog().values()]
    if not key:
        found = [d for d in every if cpus or not d.is_cpu]
    else:
        found = [d for d in every if holds(d)]
        if not found and not search.startswith("measured:"):
            with contextlib.suppress(UnknownGpuError):
                found = [resolve_gpu(search)[0]]
    return [d for d in found if d.memory_bytes >= min_memory_bytes]


def get_gpu(name: str) -> GpuSpec:
    """A catalog GPU or CPU by id or any name :func:`resolve_gpu` reads."""
    return resolve_gpu(name)[0]


def get_link(link_id: str) -> LinkSpec:
    links = link_catalog()
    if link_id not in links:
        raise InputError(f"unknown interconnect '{link_id}'; choose one of {', '.join(links)}")
    return links[link_id]


def mig_slice(gpu: GpuSpec, profile: str) -> GpuSpec:
    """The GPU seen by a process in MIG profile ``profile`` (e.g. '3g.40gb').

    Compute scales with the GPCs (g of 7); memory and bandwidth with the memory slices,
    taken as the profile's GB label over the largest profile's label.
    """
    if profile not in gpu.mig_profiles:
        offered = ", ".join(gpu.mig_profiles) or "none (this GPU has no MIG)"
        raise InputError(f"{gpu.id} has no MIG profile '{profile}'; profiles: {offered}")
    match = re.fullmatch(r"(\d)g\.(\d+)gb", profile)
    full = re.fullmatch(r"(\d)g\.(\d+)gb", gpu.mig_profiles[-1])
    if not match or not full:
        raise InputError(f"cannot read MIG profile '{profile}'; expected the form 3g.40gb")
    compute = int(match.group(1)) / 7.0
    memory = int(match.group(2)) / int(full.group(2))
    return replace(
        gpu,
        id=f"{gpu.id}:{profile}",
        name=f"{gpu.name} MIG {profile}",
        memory_bytes=gpu.memory_bytes * memory,
        visible_memory_bytes=gpu.visible_memory_bytes * memory,
        mem_bw_bytes_per_s=gpu.mem_bw_bytes_per_s * memory,
        peak_flops={k: v * compute for k, v in gpu.peak_flops.items()},
        measured_matmul_flops={k: v * compute for k, v in gpu.measured_matmul_flops.items()},
        scale_up=None,
        max_scale_up_gpus=1,
        num_sms=max(1, round(gpu.num_sms * compute)),
        mig_profiles=(),
        compute_fraction=compute,
        mig_profile=profile,
        base_id=gpu.id,
        card_share=max(compute, memory),
    )


def gpus_per_server(gpu: GpuSpec) -> int:
    """GPUs of this kind in one server: the GPU's NVLink/XGMI domain up to 8, else 8 PCIe cards.
    The one rule for how far tensor parallelism reaches before pipeline stages cross servers."""
    if gpu.is_cpu:
        return gpu.max_scale_up_gpus  # sockets: one vLLM-CPU rank per NUMA node
    if gpu.mig_profile:
        return 1  # a MIG slice is alone: slices of one card share no fast link
    if gpu.scale_up:
        return min(gpu.max_scale_up_gpus, MAX_GPUS_PER_SERVER)
    return MAX_GPUS_PER_SERVER


def pcie_link(gpu: GpuSpec) -> LinkSpec:
    """The PCIe generation the card sits on (PCIe 5 when the catalog names another bus)."""
    return get_link(gpu.pcie if gpu.pcie.startswith("pcie") else "pcie5")


def tp_link_for(gpu: GpuSpec, tp: int) -> LinkSpec:
    """NVLink/XGMI when the GPU has it and the TP group fits in its domain, else PCIe: under one
    switch / socket up to its ``max_gpus``, across the CPU sockets beyond (``-xsocket``)."""
    if gpu.scale_up:
        link = get_link(gpu.scale_up)
        if tp <= min(link.max_gpus, gpu.max_scale_up_gpus):
            return link
    pcie = pcie_link(gpu)
    if tp > pcie.max_gpus and f"{pcie.id}-xsocket" in link_catalog():
        return get_link(f"{pcie.id}-xsocket")
    return pcie
