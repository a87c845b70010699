"""A checkpoint's ``quantization_config``: which inferplan precision stores the same bytes, and
which parts of the model the format quantises."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from inferplan.errors import ConfigError
from inferplan.specs.config_reader import ConfigReader, describe_value, shown_text
from inferplan.specs.model import QuantInfo

__all__ = ["parse_quantization"]

Config = Mapping[str, Any]


def parse_quantization(cfg: Config, origin: str = "config.json") -> QuantInfo | None:
    """Map a ``quantization_config`` (FP8, AWQ, GPTQ, compressed-tensors, bitsandbytes,
    MXFP4, ModelOpt) to the inferplan precision that stores the same bytes."""
    r = ConfigReader(cfg, origin).section_reader("quantization_config")
    if r is None:
        return None
    method = r.text("quant_method", "").lower()
    if method in ("fp8", "fbgemm_fp8"):
        return QuantInfo("fp8", "fp8", 8)
    if method == "mxfp4":
        return QuantInfo("mxfp4", "mxfp4", 4, 32, quantized_parts=("experts",))
    if method in ("awq", "gptq", "awq_marlin", "gptq_marlin"):
        bits = r.integer("bits", "w_bit", default=4, low=1)
        group = r.integer("group_size", "q_group_size", default=128, low=-1)  # -1: one group per channel
        return QuantInfo(method, "int4" if bits == 4 else "int8", bits, max(group, 0))
    if method == "bitsandbytes":
        four = r.flag("load_in_4bit", False)
        return QuantInfo(method, "int4" if four else "int8", 4 if four else 8, 64 if four else 0)
    if method == "compressed-tensors":
        return _compressed_tensors(r)
    if method in ("modelopt", "nvfp4"):
        algo = r.text("quant_algo", "FP8").upper()
        return QuantInfo("modelopt", "nvfp4" if "FP4" in algo else "fp8", 4 if "FP4" in algo else 8)
    raise ConfigError(
        f"{origin}: quantization_config.quant_method '{shown_text(method)}' is not supported; supported: "
        "fp8, awq, gptq, compressed-tensors, bitsandbytes, mxfp4, modelopt"
    )


def _compressed_tensors(r: ConfigReader) -> QuantInfo:
    groups = r.section_reader("config_groups")
    for key, group in (groups.cfg if groups is not None else {}).items():
        if not isinstance(group, Mapping):
            raise r.fail(f"field '{r.field(f'config_groups.{key}')}' must be an object, got {describe_value(group)}")
        where = f"{r.section}config_groups.{key}."
        weights = ConfigReader(group, r.origin, where).section_reader("weights") or ConfigReader({}, r.origin, where)
        bits = weights.integer("num_bits", default=8, low=1)
        is_float = weights.cfg.get("type") == "float"
        group_size = weights.integer("group_size", default=0, low=-1)
        if bits == 8:
            return QuantInfo("compressed-tensors", "fp8" if is_float else "w8a8-int8", 8)
        if bits == 4:
            return QuantInfo("compressed-tensors", "nvfp4" if is_float else "int4", 4, max(group_size, 0))
    raise r.fail("compressed-tensors quantization_config has no weight bits")
