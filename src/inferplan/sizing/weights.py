"""Weight bytes: of the whole model, and on the fullest GPU of a split (TP, PP, EP).

Linear layers take the precision's bytes per parameter (scales and zero points included) where
the checkpoint's format quantises them, and 16 bits where it does not: the parts a format never
quantises (embeddings, LM head, norms, routers; MXFP4 only the experts) and the modules its
unquantised-module list names (:func:`inferplan.specs.quantization.excluded_share`; Meta's
Llama-3.1-405B FP8 keeps every attention block and the first and last layers in BF16).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from inferplan.specs.model import ModelSpec, attention_params, count_params, mlp_params
from inferplan.specs.parallelism import Parallelism
from inferplan.specs.precision import Precision
from inferplan.specs.quantization import excluded_share

__all__ = ["LayerQuant", "WeightBytes", "layer_quant", "weight_bytes", "weight_bytes_per_gpu"]

#: Bytes of an unquantised (16-bit) parameter.
UNQUANTIZED_BYTES = 2.0


@dataclass(frozen=True, slots=True)
class WeightBytes:
    quantized: float
    unquantized: float

    @property
    def total(self) -> float:
        return self.quantized + self.unquantized


@dataclass(frozen=True, slots=True)
class LayerQuant:
    """Share of each part of one decoder layer stored at the quantised precision (0..1)."""

    attention: float
    mlp: float
    experts: float
    shared: float


def _parts(model: ModelSpec, precision: Precision) -> tuple[str, ...]:
    q = model.quantization
    if q is not None and q.precision == precision.name:
        return q.quantized_parts
    return ("attention", "mlp", "experts")


def _attention_leaf_sizes(model: ModelSpec) -> tuple[float, float, float, float]:
    a, d = model.attention, model.hidden_size
    if a.kv_lora_rank:
        return (1.0, 1.0, 1.0, 1.0)
    return (d * a.q_dim, d * a.num_kv_heads * a.head_dim, d * a.num_kv_heads * a.v_head_dim, a.q_dim * d)


@lru_cache(maxsize=512)
def layer_quant(model: ModelSpec, precision: Precision) -> tuple[LayerQuant, ...]:
    """Per decoder layer, the quantised share of attention, dense MLP, routed and shared experts."""
    parts = _parts(model, precision)
    q = model.quantization
    patterns = q.unquantized_modules if q is not None and q.precision == precision.name else ()
    sizes = _attention_leaf_sizes(model)
    out = []
    for i in range(model.num_layers):

        def share(part: str, key: str, i: int = i) -> float:
            if key not in parts:
                return 0.0
            return 1.0 - excluded_share(patterns, i, part, sizes if part == "attention" else None)

        out.append(
            LayerQuant(
                share("attention", "attention"),
                share("mlp", "mlp"),
                share("experts", "experts"),
                share("shared", "experts"),
            )
        )
    return tuple(out)


def _bytes(params: float, quant_share: float, precision: Precision) -> float:
    return params * (quant_share * precision.bytes_per_param + (1.0 - quant_share) * UNQUANTIZED_BYTES)


def weight_bytes(model: ModelSpec, precision: Precision) -> WeightBytes:
    """Bytes of all weights, split into the quantised and the 16-bit parts."""
    c = count_params(model)
    d = model.hidden_size
    attn = attention_params(d, model.attention)
    dense = mlp_params(d, model.mlp)
    moe = model.moe
    experts = moe.num_experts * mlp_params(d, moe.expert) if moe else 0
    shared = mlp_params(d, moe.shared) if moe and moe.shared else 0
    quantized = 0.0
    for layer, lq in zip(model.layers, layer_quant(model, precision), strict=True):
        quantized += attn * lq.attention
        if layer.moe and moe:
            quantized += experts * lq.experts + shared * lq.shared
        else:
            quantized += dense * lq.mlp
    return WeightBytes(quantized * precision.bytes_per_param, (c.total - quantized) * UNQUANTIZED_BYTES)


def _kv_share(model: ModelSpec, tp: int) -> float:
    """Fraction of all KV heads one TP rank holds: KV/tp, at least one head (replicated)."""
    a = model.attention
    return max(a.num_kv_heads / tp, 1.0) / a.num_kv_heads


def _layer_bytes_per_gpu(model: ModelSpec, precision: Precision, par: Parallelism) -> list[float]:
    """Bytes one GPU holds of each decoder layer. Attention and dense MLPs split over TP (K/V
    projections replicated once TP exceeds the KV heads; MLA's down-projection on every rank);
    routed experts split over TP, or over EP as whole experts; norms and routers replicated."""
    d, tp, a = model.hidden_size, par.tp, model.attention
    attn = attention_params(d, a)
    if a.kv_lora_rank:
        kv_a = d * (a.kv_lora_rank + a.qk_rope_head_dim)
        attn_gpu = (attn - kv_a) / tp + kv_a
    else:
        kv_params = d * a.num_kv_heads * (a.head_dim + a.v_head_dim)
        attn_gpu = (attn - kv_params) / tp + kv_params * _kv_share(model, tp)
    dense_gpu = mlp_params(d, model.mlp) / tp
    moe = model.moe
    if moe:
        per_expert = mlp_params(d, moe.expert)
        experts_gpu = moe.num_experts * per_expert / (par.ep if par.ep > 1 else tp)
        shared_gpu = (mlp_params(d, moe.shared) if moe.shared else 0) / tp
        router = float(d * moe.num_experts + (moe.num_experts if moe.router_bias else 0))
    else:
        experts_gpu = shared_gpu = router = 0.0
    out = []
    for layer, lq in zip(model.layers, layer_quant(model, precision), strict=True):
        b = _bytes(attn_gpu, lq.attention, precision) + model.norm_params_per_layer * UNQUANTIZED_BYTES
        if layer.moe and moe:
            b += _bytes(experts_gpu, lq.experts, precision) + _bytes(shared_gpu, lq.shared, precision)
            b += router * UNQUANTIZED_BYTES
        else:
            b += _bytes(dense_gpu, lq.mlp, precision)
        out.append(b)
    return out


@lru_cache(maxsize=4096)
def weight_bytes_per_gpu(model: ModelSpec, precision: Precision, par: Parallelism) -> float:
    """Weight bytes on the fullest GPU: each pipeline stage holds its layers (the first also the
    embedding, the last the LM head and final norm)."""
    c = count_params(model)
    layers = _layer_bytes_per_gpu(model, precision, par)
    embed = c.embedding / par.tp * UNQUANTIZED_BYTES
    head = (c.lm_head / par.tp + c.extra + model.final_norm_params) * UNQUANTIZED_BYTES
    per_stage = math.ceil(model.num_layers / par.pp)
    stages = [sum(layers[s : s + per_stage]) for s in range(0, model.num_layers, per_stage)]
    if len(stages) == 1:
        return stages[0] + embed + head
    return max([stages[0] + embed, *stages[1:-1], stages[-1] + head])
