"""GPU memory: KV cache, activations and runtime overhead, per GPU (weights: :mod:`inferplan.sizing.weights`).

Every formula is a named pure function. The budget follows vLLM's start-up profiling::

    kv_cache_bytes = visible_memory * gpu_memory_utilization
                     - weights - activation_peak - non_torch (CUDA context, NCCL buffers)

and the KV cache is handed out in blocks of ``block_size`` tokens (paged attention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from inferplan.specs.hardware import LinkSpec
from inferplan.specs.model import AttentionSpec, LayerSpec, ModelSpec
from inferplan.specs.parallelism import Parallelism
from inferplan.specs.precision import KvDtype
from inferplan.units import GIB

__all__ = [
    "ACTIVATION_BYTES",
    "COMM_BUFFER_BYTES",
    "CUDA_CONTEXT_BYTES",
    "CUSTOM_ALLREDUCE_BYTES",
    "NCCL_NVLS_BYTES",
    "RULE_OF_THUMB_HEADROOM",
    "KvLayout",
    "activation_peak_bytes",
    "attention_scores_bytes_eager",
    "comm_buffer_bytes",
    "kv_bytes_per_sequence",
    "kv_bytes_per_token_layer",
    "kv_layout",
    "logits_buffer_bytes",
    "rule_of_thumb_bytes",
    "rule_of_thumb_max_params",
    "runtime_overhead_bytes",
]

#: Activations are BF16/FP16 (2 bytes) in every engine we model.
ACTIVATION_BYTES = 2
#: Non-PyTorch memory of one engine process on one GPU: CUDA context, cuBLAS/attention
#: kernel modules and workspaces. vLLM logs 0.35 GiB (RTX 3090, memory.csv#20) to 1.79 GiB
#: (80 GB GPU, memory.csv#7); 0.5 GiB is a typical current value.
CUDA_CONTEXT_BYTES = 0.5 * GIB
#: NCCL's per-GPU buffers for a tensor-parallel group: with NVLink SHARP (NVLS, H100/H200/B200
#: on NVSwitch) vLLM logs 1.79 GiB more non-torch memory at TP 2 than at TP 1 (memory.csv#7 vs
#: #13: 1.79 -> 3.58 GiB); over NVLink without NVLS, 4x A100 measured 544 MB for 2-GPU and 688 MB
#: for larger groups (NVIDIA/nccl#964); PCIe rings (NCCL's "2 connections regardless of scale",
#: nccl#864) are taken as the 2-GPU NVLink figure (assumed).
NCCL_NVLS_BYTES = 1.79 * GIB
NCCL_RING_BYTES = {2: 544e6, 3: 688e6}
#: vLLM's custom all-reduce workspace per GPU on fully connected GPUs (TP 2, 4, 6, 8): two 8 MiB
#: buffers and 8 MiB of rank data (vllm 0.11 distributed/device_communicators/custom_all_reduce.py
#: l.164-178); off over PCIe beyond two GPUs.
CUSTOM_ALLREDUCE_BYTES = 24 * 2**20
COMM_BUFFER_BYTES = NCCL_NVLS_BYTES  # kept for callers that want the largest figure


def kv_bytes_per_token_layer(attn: AttentionSpec, kv: KvDtype, tp: int = 1) -> float:
    """KV bytes one token adds to one layer on one TP rank.

    MHA/GQA/MQA: ``(k_head_dim + v_head_dim) * max(KV/tp, 1) * bytes``;
    MLA: ``(kv_lora_rank + qk_rope_head_dim) * bytes``, the same on every rank.
    """
    if attn.kv_lora_rank:
        return (attn.kv_lora_rank + attn.qk_rope_head_dim) * kv.bytes_per_value
    heads = max(attn.num_kv_heads / tp, 1.0)
    return (attn.head_dim + attn.v_head_dim) * heads * kv.bytes_per_value


def _tokens_held(layer: LayerSpec, context_tokens: int, block_size: int) -> int:
    """Tokens a layer keeps for a sequence, in whole blocks. A sliding-window layer keeps
    the window plus the partly filled block at its start."""
    if layer.window_tokens is None or context_tokens <= layer.window_tokens:
        return math.ceil(context_tokens / block_size) * block_size
    return (math.ceil(layer.window_tokens / block_size) + 1) * block_size


def kv_bytes_per_sequence(
    model: ModelSpec, context_tokens: int, kv: KvDtype, par: Parallelism, block_size: int = 16
) -> float:
    """KV bytes of one sequence of ``context_tokens`` on the fullest GPU (its PP stage)."""
    per_layer = kv_bytes_per_token_layer(model.attention, kv, par.tp)
    stage = math.ceil(model.num_layers / par.pp)
    layers = model.layers[:stage] if par.pp > 1 else model.layers
    return per_layer * sum(_tokens_held(layer, context_tokens, block_size) for layer in layers)


@dataclass(frozen=True, slots=True)
class KvLayout:
    """Per-GPU KV facts: bytes per token with every layer full, and per paged block."""

    bytes_per_token: float
    bytes_per_block: float
    num_full_layers: int
    num_window_layers: int


def kv_layout(model: ModelSpec, kv: KvDtype, par: Parallelism, block_size: int = 16) -> KvLayout:
    per_layer = kv_bytes_per_token_layer(model.attention, kv, par.tp)
    stage = math.ceil(model.num_layers / par.pp)
    layers = model.layers[:stage]
    per_token = per_layer * len(layers)
    windows = sum(1 for layer in layers if layer.window_tokens is not None)
    return KvLayout(per_token, per_token * block_size, len(layers) - windows, windows)


def activation_peak_bytes(model: ModelSpec, num_tokens: int, tp: int = 1) -> float:
    """Peak activation bytes of one forward pass over ``num_tokens`` batched tokens.

    The MLP stage dominates: the residual stream, the normed input and the output
    (3 x hidden), the fused gate/up output (2I) and the activated product (I), I split
    over TP: ``bytes = T * 2 * (3*d + 3*I/tp)``. A routed MoE layer instead holds
    ``top_k * 3 * I_expert / tp + top_k * d`` per token in the fused-MoE caches.
    Fitted check: 110.6 kB/token for Llama-3.1-8B vs 109.8 kB/token in memory.csv#19/#24.
    """
    d = model.hidden_size
    per_token = 3 * d + 3 * model.mlp.intermediate_size / tp
    if model.moe is not None and model.num_moe_layers:
        moe = model.moe
        routed = moe.top_k * (3 * moe.expert.intermediate_size / tp + d)
        shared = 3 * moe.shared.intermediate_size / tp if moe.shared else 0.0
        per_token = max(per_token, 3 * d + routed + shared)
    attn = model.attention
    attn_stage = 2 * d + (2 * attn.q_dim + 2 * attn.num_kv_heads * attn.head_dim) / tp
    return num_tokens * ACTIVATION_BYTES * max(per_token, attn_stage)


def logits_buffer_bytes(model: ModelSpec, num_seqs: int, tp: int = 1) -> float:
    """FP32 logits of the sampled positions: ``num_seqs * vocab / tp * 4`` bytes."""
    return num_seqs * model.vocab_size / tp * 4.0


def attention_scores_bytes_eager(model: ModelSpec, context_tokens: int, tp: int = 1) -> float:
    """The L x L attention-score matrix one prefill of length L materialises without a
    FlashAttention-style kernel (FP32 for the softmax): ``heads/tp * L^2 * 4`` bytes.
    Fused kernels never store it: their extra memory is linear in L."""
    heads = max(model.attention.num_heads // tp, 1)
    return heads * float(context_tokens) ** 2 * 4.0


def comm_buffer_bytes(tp: int, link: LinkSpec | None) -> float:
    """Per-GPU communication buffers of a TP group over ``link``: NCCL's (NVLS or ring) and, on
    fully connected NVLink/XGMI groups of 2/4/6/8, vLLM's custom all-reduce workspace."""
    if tp <= 1:
        return 0.0
    nvls = link is not None and link.sharp_bus_bytes_per_s is not None
    nccl = NCCL_NVLS_BYTES if nvls else NCCL_RING_BYTES[2 if tp == 2 else 3]
    direct = link is not None and link.kind in ("nvlink", "xgmi") and tp <= link.max_gpus
    return nccl + (CUSTOM_ALLREDUCE_BYTES if direct and tp in (2, 4, 6, 8) else 0.0)


def runtime_overhead_bytes(
    par: Parallelism, non_torch_bytes: float | None = None, link: LinkSpec | None = None
) -> float:
    """Non-PyTorch memory per GPU: CUDA context, plus communication buffers by TP size and link
    (:func:`comm_buffer_bytes`); ``non_torch_bytes`` when measured."""
    if non_torch_bytes is not None:
        return non_torch_bytes
    return CUDA_CONTEXT_BYTES + comm_buffer_bytes(par.tp, link)


#: The common estimate's headroom over the weights: parameters x bytes x 1.2.
RULE_OF_THUMB_HEADROOM = 0.2


def rule_of_thumb_bytes(num_params: float, bytes_per_param: float) -> float:
    """The common estimate: parameters x bytes per parameter x (1 + 20% headroom)."""
    return num_params * bytes_per_param * (1.0 + RULE_OF_THUMB_HEADROOM)


def rule_of_thumb_max_params(memory_bytes: float, bytes_per_param: float) -> float:
    """Parameters that ``memory_bytes`` holds by the same rule (its inverse)."""
    return memory_bytes / (bytes_per_param * (1.0 + RULE_OF_THUMB_HEADROOM))
