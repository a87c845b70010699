"""A checkpoint's ``quantization_config``: which inferplan precision stores the same bytes, and
which parts of the model the format quantises."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from inferplan.errors import ConfigError
from inferplan.specs.model import QuantInfo

__all__ = ["parse_quantization"]

Config = Mapping[str, Any]


def parse_quantization(cfg: Config, origin: str = "config.json") -> QuantInfo | None:
    """Map a ``quantization_config`` (FP8, AWQ, GPTQ, compressed-tensors, bitsandbytes,
    MXFP4, ModelOpt) to the inferplan precision that stores the same bytes."""
    q = cfg.get("quantization_config")
    if q is None:
        return None
    if not isinstance(q, Mapping):
        raise ConfigError(f"{origin}: field 'quantization_config' must be an object")
    method = str(q.get("quant_method", "")).lower()
    if method in ("fp8", "fbgemm_fp8"):
        return QuantInfo("fp8", "fp8", 8)
    if method == "mxfp4":
        return QuantInfo("mxfp4", "mxfp4", 4, 32, quantized_parts=("experts",))
    if method in ("awq", "gptq", "awq_marlin", "gptq_marlin"):
        bits = int(q.get("bits", q.get("w_bit", 4)))
        group = int(q.get("group_size", q.get("q_group_size", 128)))
        return QuantInfo(method, "int4" if bits == 4 else "int8", bits, max(group, 0))
    if method == "bitsandbytes":
        four = bool(q.get("load_in_4bit"))
        return QuantInfo(method, "int4" if four else "int8", 4 if four else 8, 64 if four else 0)
    if method == "compressed-tensors":
        return _compressed_tensors(q, origin)
    if method in ("modelopt", "nvfp4"):
        algo = str(q.get("quant_algo", "FP8")).upper()
        return QuantInfo("modelopt", "nvfp4" if "FP4" in algo else "fp8", 4 if "FP4" in algo else 8)
    raise ConfigError(
        f"{origin}: quantization_config.quant_method '{method}' is not supported; supported: "
        "fp8, awq, gptq, compressed-tensors, bitsandbytes, mxfp4, modelopt"
    )


def _compressed_tensors(q: Mapping[str, Any], origin: str) -> QuantInfo:
    groups = q.get("config_groups") or {}
    for group in groups.values() if isinstance(groups, Mapping) else []:
        weights = group.get("weights") or {}
        bits = int(weights.get("num_bits", 8))
        is_float = weights.get("type") == "float"
        group_size = int(weights.get("group_size") or 0)
        if bits == 8:
            return QuantInfo("compressed-tensors", "fp8" if is_float else "w8a8-int8", 8)
        if bits == 4:
            return QuantInfo("compressed-tensors", "nvfp4" if is_float else "int4", 4, group_size)
    raise ConfigError(f"{origin}: compressed-tensors quantization_config has no weight bits")
