"""A checkpoint's ``quantization_config``: which inferplan precision stores the same bytes, which
parts of the model the format quantises, which modules it leaves unquantised, and the KV-cache
scheme it declares.

Unquantised-module lists, as each format names them (vLLM reads the same fields):
``modules_to_not_convert`` (Hugging Face fp8, fbgemm_fp8, AWQ, MXFP4), ``ignored_layers`` (HF fp8),
``ignore`` (compressed-tensors, entries may be ``re:`` regular expressions), ``exclude_modules``
(NVIDIA ModelOpt), ``llm_int8_skip_modules`` (bitsandbytes). An entry excludes a module when it
names it or a parent of it ('model.layers.0' excludes the whole first layer), when it is a glob
that matches ('model.layers.*.self_attn'), a ``re:`` pattern that matches, or a dotted suffix of
its name ('self_attn.o_proj', 'lm_head').
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from typing import Any

from inferplan.specs.config_reader import ConfigReader, describe_value, shown_text
from inferplan.specs.model import QuantInfo

__all__ = ["LINEAR_LEAVES", "excluded_share", "parse_quantization"]

Config = Mapping[str, Any]

#: The linear modules of one decoder layer by part, as Llama/Qwen/Mixtral checkpoints name them,
#: with each one's share of its part's parameters filled in by the caller.
LINEAR_LEAVES = {
    "attention": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"),
    "mlp": ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"),
    "experts": ("mlp.experts.0.gate_proj", "mlp.experts.0.up_proj", "mlp.experts.0.down_proj"),
    "shared": ("mlp.shared_experts.gate_proj", "mlp.shared_experts.up_proj", "mlp.shared_experts.down_proj"),
}
_MIXTRAL_EXPERTS = ("block_sparse_moe.experts.0.w1", "block_sparse_moe.experts.0.w3", "block_sparse_moe.experts.0.w2")


def _matches(pattern: str, name: str) -> bool:
    """Whether an unquantised-module entry names module ``name`` (module docstring)."""
    p = pattern.strip()
    if not p:
        return False
    if p.startswith("re:"):
        try:
            return re.match(p[3:], name) is not None
        except re.error:
            return False
    if any(c in p for c in "*?["):
        return fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(name, p + ".*")
    return name == p or name.startswith(p + ".") or name.endswith("." + p) or ("." + p + ".") in name


def excluded_share(patterns: Iterable[str], layer: int, part: str, weights: Iterable[float] | None = None) -> float:
    """Share (by parameters, ``weights`` per leaf; equal when None) of ``part`` of decoder layer
    ``layer`` that the unquantised-module entries keep in 16 bits."""
    pats = [p for p in patterns if p]
    if not pats:
        return 0.0
    leaves = LINEAR_LEAVES[part]
    sizes = list(weights) if weights is not None else [1.0] * len(leaves)
    total = sum(sizes) or 1.0
    names = [f"model.layers.{layer}.{leaf}" for leaf in leaves]
    if part == "experts":
        alt = [f"model.layers.{layer}.{leaf}" for leaf in _MIXTRAL_EXPERTS]
        hit = [any(_matches(p, n) or _matches(p, a) for p in pats) for n, a in zip(names, alt, strict=True)]
    else:
        hit = [any(_matches(p, n) for p in pats) for n in names]
    return sum(s for s, h in zip(sizes, hit, strict=True) if h) / total


def _names(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value if isinstance(v, str | int))
    return ()


def _unquantized(q: Mapping[str, Any]) -> tuple[str, ...]:
    found: list[str] = []
    for key in ("modules_to_not_convert", "ignored_layers", "ignore", "exclude_modules", "llm_int8_skip_modules"):
        found += _names(q.get(key))
    return tuple(dict.fromkeys(found))


def _kv_from_algo(algo: object) -> str:
    text = str(algo or "").upper()
    if "FP8" in text:
        return "fp8"
    if "FP4" in text:
        return "nvfp4"
    if "INT8" in text:
        return "int8"
    return ""


def parse_quantization(cfg: Config, origin: str = "config.json") -> QuantInfo | None:
    """Map a ``quantization_config`` (FP8, fbgemm FP8, AWQ, GPTQ, compressed-tensors,
    bitsandbytes, MXFP4, ModelOpt) to the inferplan precision that stores the same bytes, with
    its unquantised modules and KV-cache scheme."""
    r = ConfigReader(cfg, origin).section_reader("quantization_config")
    if r is None:
        return None
    nested = r.section_reader("quantization")  # ModelOpt hf_quant_config.json, nested form
    if nested is not None:
        r = ConfigReader({"quant_method": "modelopt", **nested.cfg}, origin, nested.section)
    info = _parse(r)
    return QuantInfo(
        info.method,
        info.precision,
        info.bits,
        info.group_size,
        info.quantized_parts,
        unquantized_modules=_unquantized(r.cfg),
        kv_dtype=info.kv_dtype,
    )


def _parse(r: ConfigReader) -> QuantInfo:
    method = r.text("quant_method", "").lower()
    if method in ("fp8", "fbgemm_fp8"):
        return QuantInfo(method, "fp8", 8)
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
        fp4 = "FP4" in algo
        kv = _kv_from_algo(r.cfg.get("kv_cache_quant_algo"))
        return QuantInfo("modelopt", "nvfp4" if fp4 else "fp8", 4 if fp4 else 8, kv_dtype=kv)
    raise r.fail(
        f"quantization_config.quant_method '{shown_text(method)}' is not supported; supported: "
        "fp8, fbgemm_fp8, awq, gptq, compressed-tensors, bitsandbytes, mxfp4, modelopt"
    )


def _kv_scheme(r: ConfigReader) -> str:
    """The KV-cache dtype a compressed-tensors ``kv_cache_scheme`` declares ('' when none)."""
    scheme = r.section_reader("kv_cache_scheme")
    if scheme is None:
        return ""
    bits = scheme.integer("num_bits", default=8, low=1)
    if bits != 8:
        return ""
    return "fp8" if scheme.cfg.get("type") == "float" else "int8"


def _compressed_tensors(r: ConfigReader) -> QuantInfo:
    kv = _kv_scheme(r)
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
            int8 = "w8a8-int8" if group.get("input_activations") else "int8"
            return QuantInfo("compressed-tensors", "fp8" if is_float else int8, 8, kv_dtype=kv)
        if bits == 4:
            return QuantInfo("compressed-tensors", "nvfp4" if is_float else "int4", 4, max(group_size, 0), kv_dtype=kv)
    raise r.fail("compressed-tensors quantization_config has no weight bits")
