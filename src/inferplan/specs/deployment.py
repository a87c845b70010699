"""Resolve user-facing choices (precision, KV dtype, parallelism) against a model and GPU.

Shared by the CLI and the web layer so both apply the same defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

from inferplan.errors import InputError
from inferplan.sizing.memory import Parallelism
from inferplan.specs.hardware import GpuSpec, get_gpu
from inferplan.specs.model import ModelSpec
from inferplan.specs.model_catalog import load_model
from inferplan.specs.precision import KvDtype, Precision, get_kv_dtype, get_precision

__all__ = ["Resolved", "resolve_deployment", "resolve_kv_dtype", "resolve_parallelism", "resolve_precision"]


def resolve_precision(model: ModelSpec, name: str | None) -> Precision:
    """The requested precision; by default the checkpoint's own (quantised or native)."""
    if name and name != "auto":
        return get_precision(name)
    if model.quantization is not None:
        return get_precision(model.quantization.precision)
    return get_precision(model.native_dtype)


def resolve_kv_dtype(name: str | None, precision: Precision) -> KvDtype:
    """The requested KV dtype; 'auto' is 16-bit (vLLM's default even for FP8 weights)."""
    if name and name != "auto":
        return get_kv_dtype(name)
    return get_kv_dtype("fp16" if precision.name == "fp16" else "bf16")


def resolve_parallelism(
    gpu: GpuSpec, count: int | None, tp: int | None, pp: int | None, dp: int | None = None
) -> Parallelism:
    """Fill in TP/PP from a GPU count: TP up to the server's NVLink domain, then PP."""
    for label, value in (("count", count), ("tp", tp), ("pp", pp), ("dp", dp)):
        if value is not None and not 1 <= value <= 1024:
            raise InputError(f"--{label} must be between 1 and 1024, got {value}")
    dp = dp or 1
    if count is None:
        return Parallelism(tp=tp or 1, pp=pp or 1, dp=dp)
    if tp is None and pp is None:
        node = gpu.max_scale_up_gpus if gpu.scale_up else 8
        tp = min(count, node)
        pp = max(count // tp, 1)
    tp = tp or max(count // ((pp or 1) * dp), 1)
    pp = pp or max(count // (tp * dp), 1)
    if tp * pp * dp != count:
        raise InputError(f"--count {count} must equal tp x pp x dp = {tp} x {pp} x {dp}")
    return Parallelism(tp=tp, pp=pp, dp=dp)


@dataclass(frozen=True, slots=True)
class Resolved:
    model: ModelSpec
    gpu: GpuSpec
    precision: Precision
    kv_dtype: KvDtype
    parallelism: Parallelism


def resolve_deployment(
    model: str,
    gpu: str,
    dtype: str | None,
    kv_dtype: str | None,
    count: int | None,
    tp: int | None,
    pp: int | None,
    dp: int | None = None,
) -> Resolved:
    """Model, GPU, precision, KV dtype and parallelism from the options every command shares."""
    spec = load_model(model)
    g = get_gpu(gpu)
    precision = resolve_precision(spec, dtype)
    return Resolved(
        spec, g, precision, resolve_kv_dtype(kv_dtype, precision), resolve_parallelism(g, count, tp, pp, dp)
    )
