"""Numeric formats: weight precisions (with quantisation overheads) and KV-cache dtypes.

A weight precision says how many bits a quantised linear weight takes, the size of its
scales and zero points per group, which dtype the GEMM runs in (``compute_dtype``,
used by the performance model) and which parts of the model the format quantises.
"""

from __future__ import annotations

from dataclasses import dataclass

from inferplan.errors import InputError
from inferplan.specs.model import ModelSpec
from inferplan.specs.names import resolve_kv_name, resolve_precision_name

__all__ = [
    "KV_DTYPES",
    "PRECISIONS",
    "KvDtype",
    "Precision",
    "default_kv_dtype",
    "get_kv_dtype",
    "get_precision",
    "quantized_bytes_per_param",
    "resolve_kv_dtype",
    "resolve_precision",
]


@dataclass(frozen=True, slots=True)
class Precision:
    """How linear-layer weights are stored and multiplied.

    ``group_size`` 0 means one scale per output channel (the overhead is then negligible,
    ``scale_bits / in_features`` per weight, and is ignored).
    """

    name: str
    weight_bits: float
    compute_dtype: str  # dtype key of the tensor-core rate used for the GEMM: bf16, fp8, int8, fp4
    group_size: int = 0
    scale_bits: int = 0
    zero_bits: int = 0
    weight_only: bool = False
    description: str = ""

    @property
    def bytes_per_param(self) -> float:
        """Bytes per quantised weight, scales and zeros included."""
        return quantized_bytes_per_param(self.weight_bits, self.group_size, self.scale_bits, self.zero_bits)


def quantized_bytes_per_param(weight_bits: float, group_size: int, scale_bits: int, zero_bits: int) -> float:
    """bytes/param = weight_bits/8 + (scale_bits + zero_bits) / (8 * group_size).

    Example: AWQ INT4, group 128, FP16 scales and 4-bit zeros: 0.5 + 20/1024 = 0.5195.
    """
    overhead = (scale_bits + zero_bits) / (8.0 * group_size) if group_size > 0 else 0.0
    return weight_bits / 8.0 + overhead


PRECISIONS: dict[str, Precision] = {
    p.name: p
    for p in (
        Precision("bf16", 16, "bf16", description="BF16 weights and activations"),
        Precision("fp16", 16, "fp16", description="FP16 weights and activations"),
        Precision("fp32", 32, "fp32", description="FP32 weights and activations (CPUs without native BF16)"),
        Precision(
            "fp8",
            8,
            "fp8",
            description="FP8 (E4M3) weights and activations, per-tensor/channel scales (W8A8)",
        ),
        Precision(
            "int8",
            8,
            "bf16",
            weight_only=True,
            description="INT8 weight-only, per-channel scales; GEMM in BF16 after dequantisation",
        ),
        Precision(
            "w8a8-int8",
            8,
            "int8",
            description="INT8 weights and activations (SmoothQuant-style) on INT8 tensor cores",
        ),
        Precision(
            "int4",
            4,
            "bf16",
            group_size=128,
            scale_bits=16,
            zero_bits=4,
            weight_only=True,
            description="INT4 weight-only (AWQ/GPTQ), group 128, FP16 scales + 4-bit zeros",
        ),
        Precision(
            "int4-g32",
            4,
            "bf16",
            group_size=32,
            scale_bits=16,
            zero_bits=16,
            weight_only=True,
            description="INT4 weight-only, group 32 with BF16 scales and zeros (gpt-fast int4)",
        ),
        Precision(
            "mxfp4",
            4,
            "fp4",
            group_size=32,
            scale_bits=8,
            weight_only=True,
            description="MXFP4: 4-bit E2M1 values with one 8-bit scale per 32 (OCP MX)",
        ),
        Precision(
            "nvfp4",
            4,
            "fp4",
            group_size=16,
            scale_bits=8,
            description="NVFP4: 4-bit E2M1 with one FP8 scale per 16, W4A4 on Blackwell",
        ),
    )
}


@dataclass(frozen=True, slots=True)
class KvDtype:
    name: str
    bytes_per_value: float


KV_DTYPES: dict[str, KvDtype] = {
    "bf16": KvDtype("bf16", 2.0),
    "fp16": KvDtype("fp16", 2.0),
    "fp8": KvDtype("fp8", 1.0),
    "int8": KvDtype("int8", 1.0),
    # NVFP4 KV (TensorRT-LLM on Blackwell): 4-bit values plus one FP8 scale per 16
    "nvfp4": KvDtype("nvfp4", 0.5 + 1.0 / 16),
    "fp32": KvDtype("fp32", 4.0),
}


def get_precision(name: str) -> Precision:
    """A weight precision by name or any spelling the resolver reads (bf16, 'FP8 (W8A8)', AWQ,
    GPTQ, W4A16, 'int4 weight-only G=32', NVFP4, MXFP4; :mod:`inferplan.specs.names`)."""
    key = name.strip().lower()
    if key in PRECISIONS:
        return PRECISIONS[key]
    found = resolve_precision_name(name)
    if found is None:
        raise InputError(f"unknown precision '{name}'; choose one of {', '.join(PRECISIONS)}")
    return PRECISIONS[found.key]


def get_kv_dtype(name: str) -> KvDtype:
    """A KV-cache dtype (bf16, fp16, fp32, fp8 as e4m3 or e5m2, int8,
    nvfp4; 'auto' is resolved by the caller)."""
    key = name.strip().lower()
    found = KV_DTYPES.get(key)
    if found is None:
        resolved = resolve_kv_name(name)
        if resolved is None:
            raise InputError(f"unknown KV-cache dtype '{name}'; choose one of {', '.join(KV_DTYPES)}")
        found = KV_DTYPES[resolved.key]
    return found


def default_kv_dtype(precision: Precision) -> KvDtype:
    """What 'auto' means for the KV cache: the model dtype for FP16 and FP32 (vLLM-CPU in FP32),
    else BF16 (vLLM's and SGLang's default, FP8 weights included). The one home of this rule."""
    return KV_DTYPES[precision.name if precision.name in ("fp16", "fp32") else "bf16"]


def resolve_precision(model: ModelSpec, name: str | None) -> Precision:
    """The requested precision; 'auto' (or none) is the checkpoint's own, quantised or native."""
    if name and name != "auto":
        return get_precision(name)
    if model.quantization is not None:
        return get_precision(model.quantization.precision)
    return get_precision(model.native_dtype)


def resolve_kv_dtype(name: str | None, precision: Precision) -> KvDtype:
    """The requested KV dtype; 'auto' (or none) follows :func:`default_kv_dtype`."""
    if name and name != "auto":
        return get_kv_dtype(name)
    return default_kv_dtype(precision)
