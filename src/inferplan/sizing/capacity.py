"""Answers built on the memory model: does it fit, how many sequences, how long a context,
how many GPUs at least. :func:`plan_memory` returns a :class:`MemoryPlan` per GPU.

Four engine memory modes:

* vLLM: ``KV = visible x gpu_memory_utilization - weights - activations - logits - non_torch``;
* TensorRT-LLM: ``KV = kv_free_fraction x (visible - weights - activations - non_torch)``;
* SGLang: ``KV = (total - weights) - total x (1 - mem_fraction_static)`` with ``total`` the
  memory left after CUDA and NCCL set-up (the reserve holds activations and CUDA graphs).
* vLLM-CPU: ``KV = VLLM_CPU_KVCACHE_SPACE GiB`` when the engine sets it (no KV when weights,
  activations and runtime do not fit beside it in the socket's memory), else the vLLM rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from inferplan.errors import DoesNotFitError, InputError
from inferplan.sizing.drafter import drafter_kv_bytes_per_token, drafter_weight_bytes_per_gpu
from inferplan.sizing.features import feature_memory
from inferplan.sizing.memory import (
    activation_peak_bytes,
    attention_scores_bytes_eager,
    kv_bytes_per_sequence,
    kv_layout,
    logits_buffer_bytes,
    rule_of_thumb_bytes,
    runtime_overhead_bytes,
)
from inferplan.sizing.weights import weight_bytes, weight_bytes_per_gpu
from inferplan.specs.deployment import Deployment
from inferplan.specs.engine_defaults import sglang_defaults
from inferplan.specs.hardware import GpuSpec, gpus_per_server
from inferplan.specs.model import ModelSpec, count_params
from inferplan.specs.parallelism import Parallelism
from inferplan.units import GIB

__all__ = [
    "MemoryPlan",
    "check_divisibility",
    "explicit_kv_bytes",
    "max_context_tokens",
    "min_gpus",
    "plan_memory",
    "sglang_fraction",
    "sglang_kv_pool_bytes",
    "tp_options",
    "usable_bytes",
    "weights_floor_gpus",
]


def usable_bytes(gpu: GpuSpec, utilization: float) -> float:
    """Memory one engine may use on ``gpu``: visible memory x gpu_memory_utilization.
    The one home of the usable memory fraction (it is the engine's setting)."""
    return gpu.visible_memory_bytes * utilization


def explicit_kv_bytes(space_gib: int, room_bytes: float) -> float:
    """vLLM-CPU's KV cache with VLLM_CPU_KVCACHE_SPACE set: exactly ``space_gib`` GiB, or none
    (vLLM refuses to start) when that exceeds the memory left beside weights and runtime."""
    wanted = space_gib * GIB
    return wanted if wanted <= room_bytes else 0.0


@dataclass(frozen=True, slots=True)
class MemoryPlan:
    """Per-GPU memory of one deployment (bytes), and what it allows."""

    deployment: Deployment
    visible_bytes: float
    budget_bytes: float
    weights_bytes: float
    activation_bytes: float
    logits_bytes: float
    non_torch_bytes: float
    kv_cache_bytes: float
    kv_bytes_per_token: float
    num_blocks: int
    total_weight_bytes: float
    rule_of_thumb_total_bytes: float
    drafter_weights_bytes: float = 0.0  # speculative decoding's drafter (included in weights_bytes)
    kv_scale: float = 1.0  # KV bytes per token with the drafter's KV / without (1: no drafter)
    lora_bytes: float = 0.0  # issue 13: LoRA adapter slots (included in weights_bytes)
    offloaded_weights_bytes: float = 0.0  # issue 13: weights in host memory (not in weights_bytes)

    @property
    def block_size(self) -> int:
        return self.deployment.engine.block_size

    @property
    def fits(self) -> bool:
        """True when the KV cache has room for at least one block."""
        return self.num_blocks > 0

    @property
    def kv_tokens(self) -> int:
        """Tokens the KV cache holds with every layer storing each token."""
        return self.num_blocks * self.block_size

    def sequence_bytes(self, context_tokens: int) -> float:
        d = self.deployment
        return (
            kv_bytes_per_sequence(d.model, context_tokens, d.kv_dtype, d.parallelism, self.block_size) * self.kv_scale
        )

    def max_sequences(self, context_tokens: int) -> int:
        """Sequences of ``context_tokens`` that fit at once (KV only)."""
        if context_tokens <= 0:
            raise InputError(f"context must be a positive number of tokens, got {context_tokens}")
        if not self.fits:
            return 0
        return int(self.kv_cache_bytes // self.sequence_bytes(context_tokens))

    def attention_scores_bytes(self, context_tokens: int) -> float:
        """Extra bytes of one prefill without FlashAttention (quadratic in context)."""
        d = self.deployment
        return attention_scores_bytes_eager(d.model, context_tokens, d.parallelism.tp)

    @property
    def used_bytes(self) -> float:
        return self.weights_bytes + self.activation_bytes + self.logits_bytes + self.non_torch_bytes


def check_divisibility(model: ModelSpec, par: Parallelism) -> None:
    """vLLM's constraints: attention heads divisible by TP; KV heads divisible by TP or TP
    by KV heads; at least one layer per pipeline stage."""
    attn = model.attention
    if attn.num_heads % par.tp:
        raise InputError(
            f"tensor parallel {par.tp} does not divide the {attn.num_heads} attention heads; "
            "choose a TP size that divides it"
        )
    kv = attn.num_kv_heads
    if not attn.kv_lora_rank and kv % par.tp and par.tp % kv:
        raise InputError(f"tensor parallel {par.tp} and the {kv} KV heads must divide one another")
    if par.pp > model.num_layers:
        raise InputError(f"pipeline parallel {par.pp} exceeds the {model.num_layers} layers")


def plan_memory(dep: Deployment) -> MemoryPlan:
    """The per-GPU memory breakdown and KV capacity of ``dep`` (its engine's settings)."""
    model, gpu, par, engine = dep.model, dep.gpu, dep.parallelism, dep.engine
    check_divisibility(model, par)
    visible = gpu.visible_memory_bytes
    budget = usable_bytes(gpu, engine.gpu_memory_utilization)
    drafter = drafter_weight_bytes_per_gpu(dep)
    weights = weight_bytes_per_gpu(model, dep.precision, par) + drafter
    extra = feature_memory(dep, weights)  # issue 13: LoRA slots in, offloaded weights out
    weights += extra.lora_bytes - extra.offloaded_bytes
    activation = activation_peak_bytes(model, engine.max_num_batched_tokens, par.tp)
    # speculative decoding samples k + 1 positions of every sequence
    positions = 1 + (dep.speculation.num_tokens if dep.speculation else 0)
    logits = logits_buffer_bytes(model, engine.max_num_seqs * positions, par.tp)
    non_torch = runtime_overhead_bytes(par, engine.non_torch_bytes, dep.tp_link)
    if engine.memory_mode == "trtllm":
        budget = visible
        kv_bytes = max(visible - weights - activation - non_torch, 0.0) * engine.kv_free_fraction
        logits = 0.0
    elif engine.memory_mode == "sglang":
        total = visible - non_torch
        fraction = sglang_fraction(dep)
        budget = total * fraction
        kv_bytes = sglang_kv_pool_bytes(total, weights, fraction)
        activation, logits = total * (1.0 - fraction), 0.0  # what the reserve is for
    elif engine.memory_mode == "vllm-cpu" and engine.kv_cache_space_gib is not None:
        kv_bytes = explicit_kv_bytes(engine.kv_cache_space_gib, budget - weights - activation - logits - non_torch)
    else:
        kv_bytes = budget - weights - activation - logits - non_torch
    layout = kv_layout(model, dep.kv_dtype, par, engine.block_size)
    kv_scale = 1.0 + drafter_kv_bytes_per_token(dep) / layout.bytes_per_token
    blocks = max(int(kv_bytes // (layout.bytes_per_block * kv_scale)), 0)
    return MemoryPlan(
        deployment=dep,
        visible_bytes=visible,
        budget_bytes=budget,
        weights_bytes=weights,
        activation_bytes=activation,
        logits_bytes=logits,
        non_torch_bytes=non_torch,
        kv_cache_bytes=max(kv_bytes, 0.0) if blocks else kv_bytes,
        kv_bytes_per_token=layout.bytes_per_token * kv_scale,
        num_blocks=blocks,
        total_weight_bytes=weight_bytes(model, dep.precision).total,
        rule_of_thumb_total_bytes=rule_of_thumb_bytes(count_params(model).total, dep.precision.bytes_per_param),
        drafter_weights_bytes=drafter,
        kv_scale=kv_scale,
        lora_bytes=extra.lora_bytes,
        offloaded_weights_bytes=extra.offloaded_bytes,
    )


def sglang_fraction(dep: Deployment) -> float:
    """SGLang's ``mem_fraction_static``: the engine's setting, else SGLang's default formula."""
    if dep.engine.mem_fraction_static is not None:
        return dep.engine.mem_fraction_static
    par = dep.parallelism
    return sglang_defaults(dep.gpu, par.tp, par.pp).memory_fraction


def sglang_kv_pool_bytes(total: float, weights: float, fraction: float) -> float:
    """SGLang's KV pool: ``rest = (total - weights) - total x (1 - mem_fraction_static)``, with
    ``total`` the memory free after CUDA and NCCL set-up, before the weights
    (``ModelRunner.profile_max_num_token``, sglang 0.5.3 model_runner.py l.1257-1297)."""
    return (total - weights) - total * (1.0 - fraction)


def max_context_tokens(plan: MemoryPlan, concurrency: int) -> int:
    """Longest context that ``concurrency`` sequences can each hold at once (binary search
    on the KV bytes per sequence, which never decreases with context)."""
    if concurrency <= 0:
        raise InputError(f"concurrency must be a positive integer, got {concurrency}")
    if not plan.fits or plan.sequence_bytes(1) * concurrency > plan.kv_cache_bytes:
        return 0
    low, high = 1, 1 << 24
    while low < high:
        mid = (low + high + 1) // 2
        if plan.sequence_bytes(mid) * concurrency <= plan.kv_cache_bytes:
            low = mid
        else:
            high = mid - 1
    return low


def tp_options(model: ModelSpec, max_tp: int) -> list[int]:
    """Powers of two up to ``max_tp`` that the model's heads allow as TP sizes."""
    out = []
    tp = 1
    while tp <= max_tp:
        try:
            check_divisibility(model, Parallelism(tp=tp))
            out.append(tp)
        except InputError:
            pass
        tp *= 2
    return out


_PP_SIZES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)


def min_gpus(dep: Deployment, context_tokens: int, concurrency: int, max_gpus: int = 512) -> MemoryPlan:
    """The smallest split of ``dep`` (TP within a server, then PP across servers) on which
    ``concurrency`` sequences of ``context_tokens`` fit."""
    model, gpu = dep.model, dep.gpu
    tps = tp_options(model, min(gpus_per_server(gpu), max_gpus))
    candidates = sorted(
        (tp * pp, tp, pp)
        for tp in tps
        for pp in _PP_SIZES
        if tp * pp <= max_gpus and pp <= model.num_layers and (pp == 1 or tp == tps[-1])
    )
    for _, tp, pp in candidates:
        plan = plan_memory(replace(dep, parallelism=Parallelism(tp=tp, pp=pp, ep=dep.parallelism.ep)))
        if plan.fits and plan.max_sequences(context_tokens) >= concurrency:
            return plan
    raise DoesNotFitError(
        f"{model.name} at {dep.precision.name} does not fit {concurrency} x {context_tokens} tokens "
        f"on up to {max_gpus} x {gpu.id}; use a lower precision, FP8 KV cache or a bigger GPU"
    )


def weights_floor_gpus(total_weight_bytes: float, gpu: GpuSpec, utilization: float) -> int:
    """GPUs needed for the weights alone (the VRAM floor before any KV cache)."""
    return max(1, math.ceil(total_weight_bytes / usable_bytes(gpu, utilization)))
