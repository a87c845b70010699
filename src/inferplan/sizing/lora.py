"""LoRA adapter memory (issue 13), from the model's shapes, the rank and the adapted modules.

An adapter of rank ``r`` on a linear layer ``d_in -> d_out`` holds ``A (r x d_in)`` and
``B (d_out x r)``: ``r (d_in + d_out)`` parameters. vLLM (``vllm/lora/layers/base_linear.py``)
preallocates ``--max-loras`` GPU slots for every linear layer it wraps (q/k/v and gate/up as one
slice each of the packed layer, o and down), each slot of ``--max-lora-rank``, in the model's
dtype; a column-parallel layer keeps ``A`` whole and splits ``B`` over TP, a row-parallel one
splits ``A``. An MoE layer's adapters are per expert. The adapter files themselves (host memory,
disk, a swap into a slot) hold only the adapted modules at the adapters' own rank.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from inferplan.specs.lora import LoraSpec
from inferplan.specs.model import ModelSpec
from inferplan.specs.parallelism import Parallelism

__all__ = ["LoraModule", "adapter_bytes", "adapter_bytes_per_gpu", "lora_modules", "slot_bytes_per_gpu"]

#: LoRA weights are kept in 16 bits (vLLM's ``lora_dtype`` 'auto' = the model's BF16/FP16).
LORA_BYTES = 2.0


@dataclass(frozen=True, slots=True)
class LoraModule:
    """One adapted linear slice of a layer: ``d_in -> d_out`` (whole), ``row`` when row-parallel
    (its input split over TP), ``copies`` of it per layer (experts), in ``layers`` layers."""

    name: str
    d_in: int
    d_out: int
    row: bool
    copies: int
    layers: int

    def per_gpu(self, tp: int) -> tuple[float, float]:
        """(input, output) width on one TP rank."""
        if self.row:
            return self.d_in / tp, float(self.d_out)
        return float(self.d_in), self.d_out / tp


def lora_modules(model: ModelSpec) -> list[LoraModule]:
    """The linear slices vLLM wraps with adapters: q, k, v, o in every layer; gate, up, down in the
    dense layers and in each routed expert of the MoE layers."""
    d, attn = model.hidden_size, model.attention
    n = model.num_layers
    kv_out = attn.num_kv_heads * attn.head_dim
    moe_layers = model.num_moe_layers if model.moe else 0
    mods = [
        LoraModule("q_proj", d, attn.q_dim, False, 1, n),
        LoraModule("k_proj", d, kv_out, False, 1, n),
        LoraModule("v_proj", d, attn.num_kv_heads * attn.v_head_dim, False, 1, n),
        LoraModule("o_proj", attn.num_heads * attn.v_head_dim, d, True, 1, n),
    ]
    dense = n - moe_layers
    if dense:
        width = model.mlp.intermediate_size
        gate = [LoraModule("gate_proj", d, width, False, 1, dense)] if model.mlp.gated else []
        mods += [
            *gate,
            LoraModule("up_proj", d, width, False, 1, dense),
            LoraModule("down_proj", width, d, True, 1, dense),
        ]
    if moe_layers and model.moe:
        width, experts = model.moe.expert.intermediate_size, model.moe.num_experts
        mods += [
            LoraModule("gate_proj", d, width, False, experts, moe_layers),
            LoraModule("up_proj", d, width, False, experts, moe_layers),
            LoraModule("down_proj", width, d, True, experts, moe_layers),
        ]
    return mods


def slot_bytes_per_gpu(model: ModelSpec, lora: LoraSpec, par: Parallelism) -> float:
    """GPU memory of the adapter slots on the fullest GPU: ``max_loras x max_lora_rank x
    sum over wrapped slices (d_in + d_out per rank) x 2 bytes`` over its pipeline stage's layers."""
    per_layer = sum(m.copies * sum(m.per_gpu(par.tp)) * (m.layers / model.num_layers) for m in lora_modules(model))
    layers = math.ceil(model.num_layers / par.pp)
    return lora.slots * lora.slot_rank * per_layer * layers * LORA_BYTES


def _adapted(model: ModelSpec, lora: LoraSpec) -> list[LoraModule]:
    return [m for m in lora_modules(model) if m.name in lora.targets]


def adapter_bytes(model: ModelSpec, lora: LoraSpec) -> float:
    """One adapter's weights (its file, its copy in host memory): ``r x sum over adapted slices
    (d_in + d_out) x layers x 2 bytes``."""
    return sum(lora.rank * m.copies * (m.d_in + m.d_out) * m.layers for m in _adapted(model, lora)) * LORA_BYTES


def adapter_bytes_per_gpu(model: ModelSpec, lora: LoraSpec, par: Parallelism) -> float:
    """What loading one adapter into a slot copies to the fullest GPU."""
    share = math.ceil(model.num_layers / par.pp) / model.num_layers
    total = sum(lora.rank * m.copies * sum(m.per_gpu(par.tp)) * m.layers for m in _adapted(model, lora))
    return total * share * LORA_BYTES
