"""Operator-level roofline of one engine step.

A step processes ``M`` tokens (prefill chunks plus one token per decoding sequence). Each
operator's time is ``max(FLOPs / (peak x compute efficiency), bytes / (HBM x memory
efficiency))``; communication is alpha-beta; engine overheads are added once per step.

:class:`StepCostModel` precomputes the per-deployment constants so that the serving
simulator can price a step in a few microseconds; :meth:`StepCostModel.breakdown` lists
every operator with the bound it hits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from inferplan.perf.moe import MoeLayerCost, expected_distinct_experts, moe_shape
from inferplan.sizing.memory import ACTIVATION_BYTES, kv_bytes_per_token_layer
from inferplan.specs.deployment import Deployment
from inferplan.specs.hardware import GpuSpec, LinkSpec
from inferplan.specs.model import attention_params, count_params, mlp_params
from inferplan.specs.precision import Precision

__all__ = [
    "OpTime",
    "StepCostModel",
    "StepShape",
    "allreduce_time_s",
    "alltoall_time_s",
    "expected_distinct_experts",
    "gemm_dtype",
    "gemm_efficiency",
    "roofline_time_s",
    "step_shape",
]


def roofline_time_s(flops: float, num_bytes: float, flops_per_s: float, bytes_per_s: float) -> float:
    """t = max(FLOPs / achievable FLOP/s, bytes / achievable bytes/s)."""
    return float(max(flops / flops_per_s, num_bytes / bytes_per_s))


def gemm_efficiency(num_tokens: float, max_efficiency: float, m_half: float) -> float:
    """Fraction of peak a GEMM with M = ``num_tokens`` rows reaches: ``max * M / (M + m_half)``
    (tensor-core tiles are 64-128 rows tall; a skinny GEMM wastes most of each tile)."""
    return max_efficiency * num_tokens / (num_tokens + m_half)


def gemm_dtype(precision: Precision, gpu: GpuSpec) -> tuple[str, bool]:
    """The tensor-core dtype a GEMM of ``precision`` runs in on ``gpu``, and whether it first
    dequantises its weights in registers. W8A8 and W4A4 (FP8, INT8, NVFP4) run natively where
    the GPU has the format; MXFP4 multiplies as W4A8 (MXFP8 activations, the FP8 rate) on GPUs
    with FP4 tensor cores; everything else (weight-only formats, formats the GPU lacks)
    dequantises to BF16 (FP16 on GPUs without BF16)."""
    base = "bf16" if gpu.supports("bf16") else "fp16"
    if precision.name == "mxfp4":
        return ("fp8", True) if gpu.supports("fp4") else (base, True)
    native = precision.compute_dtype
    if precision.weight_only or not gpu.supports(native):
        return base, native not in ("bf16", "fp16") or precision.weight_only
    return native, False


def achievable_fraction(gpu: GpuSpec, dtype: str, default: float) -> float:
    """Measured best matmul / dense peak for ``dtype``; FP4 without a measurement takes the FP8
    ratio of the same GPU (the same tensor-core pipeline), else ``default``."""
    measured = gpu.measured_matmul_flops.get(dtype)
    if measured:
        return measured / gpu.flops_for(dtype)
    if dtype == "fp4" and gpu.measured_matmul_flops.get("fp8"):
        return gpu.measured_matmul_flops["fp8"] / gpu.flops_for("fp8")
    return default


def alltoall_time_s(message_bytes: float, link: LinkSpec, latency_s: float | None = None) -> float:
    """One all-to-all (EP dispatch or combine) in which each GPU sends ``message_bytes`` to the
    others: ``alpha + S / (link rate x its measured bus efficiency)``."""
    if message_bytes <= 0:
        return 0.0
    return max(link.latency_s, latency_s or 0.0) + message_bytes / (link.bw_bytes_per_s * link.allreduce_bus_efficiency)


def allreduce_time_s(message_bytes: float, num_gpus: int, link: LinkSpec, latency_s: float | None = None) -> float:
    """Ring all-reduce, alpha-beta: ``alpha + 2(n-1)/n * S / bus_bw``; bus bandwidth is the
    link rate times its measured efficiency, or the NVLink-SHARP (NVLS) bus rate. ``alpha``
    is the larger of the link's latency and the engine's collective latency."""
    if num_gpus <= 1:
        return 0.0
    bus = link.sharp_bus_bytes_per_s or link.bw_bytes_per_s * link.allreduce_bus_efficiency
    alpha = max(link.latency_s, latency_s or 0.0)
    return alpha + 2.0 * (num_gpus - 1) / num_gpus * message_bytes / bus


@dataclass(frozen=True, slots=True)
class StepShape:
    """Aggregate work of one step. ``attn_pairs_*``: query-key pairs (sum over prefill chunks
    of c*(p + (c+1)/2), plus each decoding sequence's context); ``kv_read_*``: tokens whose
    K/V are read; ``*_window`` for sliding-window layers (already capped at the window)."""

    num_tokens: int
    num_sampled: int
    attn_pairs_full: float = 0.0
    attn_pairs_window: float = 0.0
    kv_read_full: float = 0.0
    kv_read_window: float = 0.0


def step_shape(
    prefill_chunks: Sequence[tuple[int, int]],
    decode_contexts: Sequence[int],
    window: int | None = None,
    finishing_prefills: int | None = None,
) -> StepShape:
    """Build a StepShape from prefill chunks ``(chunk_tokens, past_tokens)`` and the context
    of each decoding sequence."""
    pairs_f = pairs_w = kv_f = kv_w = 0.0
    for c, p in prefill_chunks:
        pairs_f += c * (p + (c + 1) / 2.0)
        kv_f += p + c
        if window:
            pairs_w += c * min(p + (c + 1) / 2.0, window)
            kv_w += min(p + c, window)
    for ctx in decode_contexts:
        pairs_f += ctx
        kv_f += ctx
        if window:
            pairs_w += min(ctx, window)
            kv_w += min(ctx, window)
    tokens = sum(c for c, _ in prefill_chunks) + len(decode_contexts)
    sampled = len(decode_contexts) + (len(prefill_chunks) if finishing_prefills is None else finishing_prefills)
    return StepShape(tokens, sampled, pairs_f, pairs_w, kv_f, kv_w)


@dataclass(frozen=True, slots=True)
class OpTime:
    """One operator summed over the layers it runs in, for one step on one GPU."""

    name: str
    flops: float
    bytes: float
    time_s: float
    bound: str  # compute, memory, communication, overhead
    count: int = 1


class StepCostModel:
    """Prices steps of one deployment. Build once; call :meth:`time_s` per step."""

    def __init__(self, dep: Deployment) -> None:
        self.dep = dep
        m, g, par, k = dep.model, dep.gpu, dep.parallelism, dep.engine.kernels
        self.layers_per_stage = math.ceil(m.num_layers / par.pp)
        self.moe_fraction = (m.num_moe_layers if m.moe else 0) / m.num_layers
        self.window_fraction = (
            sum(1 for x in m.layers if x.window_tokens) / m.num_layers if dep.engine.sliding_window_kv else 0.0
        )
        self.allreduce_latency = dep.engine.allreduce_latency_s
        self.mem_bw = g.mem_bw_bytes_per_s * k.mem_efficiency
        self.m_half = k.gemm_m_half
        self.hidden = m.hidden_size
        self.tp = par.tp
        self.pp = par.pp
        self.tp_link: LinkSpec = dep.tp_link
        self.pp_link: LinkSpec = dep.pp_link
        self.ep_link: LinkSpec = self.tp_link if par.ep <= max(self.tp_link.max_gpus, par.tp) else dep.pp_link
        self.layer_overhead = dep.engine.layer_overhead_s
        self.step_overhead = dep.engine.step_overhead_s
        self.sequence_overhead = dep.engine.sequence_overhead_s  # per sampled sequence a step (vLLM-CPU)
        self._init_gemms(dep)
        self._init_moe(dep)
        self._init_attention(dep)

    def _init_gemms(self, dep: Deployment) -> None:
        """Per-layer, per-GPU weight params of each GEMM group and the GEMMs' rates."""
        m, g, k, tp = dep.model, dep.gpu, dep.engine.kernels, dep.parallelism.tp
        native, dequant = gemm_dtype(dep.precision, g)
        self.gemm_dequant = k.dequant_overhead if dequant else 1.0
        self.gemm_peak = g.flops_for(native)
        self.gemm_max_eff = achievable_fraction(g, native, k.default_matmul_fraction) * k.gemm_efficiency
        attn_params = attention_params(m.hidden_size, m.attention)
        o_params = m.attention.num_heads * m.attention.v_head_dim * m.hidden_size
        self.qkv_params = (attn_params - o_params) / tp
        self.o_params = o_params / tp
        self.mlp_params = mlp_params(m.hidden_size, m.mlp) / tp
        self.w_bytes = dep.precision.bytes_per_param
        # bytes charged to time: weight-only kernels stream slower while dequantising
        share = k.weight_only_bandwidth_4bit if dep.precision.weight_bits <= 4 else k.weight_only_bandwidth
        self.w_time_bytes = self.w_bytes / (share if dequant else 1.0)
        self.lm_head_params = count_params(m).embedding / tp
        self.act_bytes_token = ACTIVATION_BYTES * (
            k.elementwise_passes * m.hidden_size + 3 * m.mlp.intermediate_size / tp
        )

    def _init_moe(self, dep: Deployment) -> None:
        m, par, k = dep.model, dep.parallelism, dep.engine.kernels
        moe = m.moe
        ep = par.ep if moe is not None else 1
        self.expert_params = mlp_params(m.hidden_size, moe.expert) / (1 if ep > 1 else par.tp) if moe else 0.0
        self.shared_params = mlp_params(m.hidden_size, moe.shared) / par.tp if moe and moe.shared else 0.0
        self.num_experts = moe.num_experts if moe else 0
        self.top_k = moe.top_k if moe else 0
        self.moe = MoeLayerCost(self.num_experts, self.top_k, par.tp, ep, par.ep_replicas)
        self.ep = ep > 1
        self.moe_gemm_eff = self.gemm_max_eff * k.moe_gemm_efficiency
        self.moe_mem_bw = self.mem_bw * k.moe_mem_efficiency
        self.moe_permute_bytes = k.moe_permute_passes * m.hidden_size * ACTIVATION_BYTES
        self.moe_layer_overhead = k.moe_layer_overhead_s if moe else 0.0

    def _init_attention(self, dep: Deployment) -> None:
        g, k, tp, attn = dep.gpu, dep.engine.kernels, dep.parallelism.tp, dep.model.attention
        # attention runs in the activations' dtype: FP32 when the model does (vLLM-CPU), else BF16
        native = gemm_dtype(dep.precision, g)[0]
        half = "bf16" if g.supports("bf16") else "fp16"
        self.attn_flops_per_s = g.flops_for("fp32" if native == "fp32" else half) * k.attention_efficiency
        self.attn_decode_bw = g.mem_bw_bytes_per_s * k.mem_efficiency * k.attention_decode_efficiency
        # pre-XQA decode kernels (2023) read each K/V head once per query head of its group
        self.kv_read_factor = 1.0 if k.gqa_kv_reuse or attn.kv_lora_rank else attn.num_heads / attn.num_kv_heads
        if attn.kv_lora_rank:
            # absorbed MLA decode works in the latent space: per pair 2*(2*lora + rope) per head
            self.attn_flops_per_pair = 2.0 * attn.num_heads / tp * (2 * attn.kv_lora_rank + attn.qk_rope_head_dim)
        else:
            self.attn_flops_per_pair = 2.0 * attn.num_heads / tp * (attn.head_dim + attn.v_head_dim)
        self.kv_bytes_token_layer = kv_bytes_per_token_layer(attn, dep.kv_dtype, tp)

    # -- operators ------------------------------------------------------------------------
    def _gemm(
        self, tokens: float, params: float, weight_bytes_per_param: float, time_bytes_per_param: float | None = None
    ) -> tuple[float, float, float]:
        flops = 2.0 * tokens * params
        act = tokens * 2.0 * self.hidden * ACTIVATION_BYTES
        num_bytes = params * weight_bytes_per_param + act
        time_bytes = params * (time_bytes_per_param or weight_bytes_per_param) + act
        eff = gemm_efficiency(tokens, self.gemm_max_eff, self.m_half)
        t_c = flops / (self.gemm_peak * eff) * self.gemm_dequant if tokens > 0 else 0.0
        return flops, num_bytes, max(t_c, time_bytes / self.mem_bw)

    def _moe(self, tokens: float) -> tuple[float, float, float, float]:
        """(FLOPs, bytes, expert GEMM time, routing and permutation time) of one MoE layer."""
        s = moe_shape(self.moe, tokens)
        flops = 2.0 * s.routed * self.expert_params
        act = s.routed * 2 * self.hidden * ACTIVATION_BYTES
        num_bytes = s.distinct * self.expert_params * self.w_bytes + act
        time_bytes = s.distinct * self.expert_params * self.w_time_bytes + act
        eff = gemm_efficiency(s.per_expert, self.moe_gemm_eff, self.m_half)
        t_c = flops / (self.gemm_peak * eff) * self.gemm_dequant if tokens > 0 else 0.0
        gemm = max(t_c, time_bytes / self.moe_mem_bw)
        route = s.permuted * self.moe_permute_bytes / self.mem_bw + self.moe_layer_overhead if tokens > 0 else 0.0
        return flops, num_bytes + s.permuted * self.moe_permute_bytes, gemm, route

    def _attention(self, shape: StepShape) -> tuple[float, float, float]:
        wf = self.window_fraction
        pairs = (1 - wf) * shape.attn_pairs_full + wf * (shape.attn_pairs_window if wf else 0.0)
        kv = (1 - wf) * shape.kv_read_full + wf * (shape.kv_read_window if wf else 0.0)
        flops = self.attn_flops_per_pair * pairs
        num_bytes = kv * self.kv_bytes_token_layer * self.kv_read_factor
        return flops, num_bytes, max(flops / self.attn_flops_per_s, num_bytes / self.attn_decode_bw)

    def _layer_ops(self, shape: StepShape) -> list[tuple[str, float, float, float, str]]:
        """(name, flops, bytes, time, kind) for one layer (MoE and dense mixed by share); the
        kind (gemm, attention, memory, communication) becomes a bound in :meth:`breakdown`."""
        M = float(shape.num_tokens)
        ops: list[tuple[str, float, float, float, str]] = []
        for name, params in (("qkv_proj", self.qkv_params), ("o_proj", self.o_params)):
            f, b, t = self._gemm(M, params, self.w_bytes, self.w_time_bytes)
            ops.append((name, f, b, t, "gemm"))
        f, b, t = self._attention(shape)
        ops.append(("attention", f, b, t, "attention"))
        mf = self.moe_fraction
        if mf < 1.0:
            f, b, t = self._gemm(M, self.mlp_params, self.w_bytes, self.w_time_bytes)
            ops.append(("mlp", f * (1 - mf), b * (1 - mf), t * (1 - mf), "gemm"))
        if mf > 0.0:
            f, b, t, route = self._moe(M)
            ops.append(("moe_experts", f * mf, b * mf, t * mf, "gemm"))
            ops.append(("moe_routing_permute", 0.0, 0.0, route * mf, "memory"))
            if self.shared_params:
                f, b, t = self._gemm(M, self.shared_params, self.w_bytes, self.w_time_bytes)
                ops.append(("shared_experts", f * mf, b * mf, t * mf, "gemm"))
        eb = M * self.act_bytes_token
        ops.append(("norms_rotary_elementwise", 0.0, eb, eb / self.mem_bw, "memory"))
        if self.tp > 1:
            msg = M * self.hidden * ACTIVATION_BYTES
            t = 2 * allreduce_time_s(msg, self.tp, self.tp_link, self.allreduce_latency)
            ops.append(("tp_allreduce", 0.0, 2 * msg, t, "communication"))
        if self.ep and mf > 0.0:
            msg = moe_shape(self.moe, M).dispatched * self.hidden * ACTIVATION_BYTES
            t = 2 * alltoall_time_s(msg, self.ep_link, self.allreduce_latency) * mf
            ops.append(("ep_alltoall", 0.0, 2 * msg * mf, t, "communication"))
        return ops

    def _bound(self, kind: str, flops: float, num_bytes: float, time_s: float) -> str:
        if kind == "attention":
            return "compute" if flops / self.attn_flops_per_s >= num_bytes / self.mem_bw else "memory"
        if kind != "gemm":
            return kind
        return self._gemm_bound(flops, time_s, self.gemm_peak)

    def _gemm_bound(self, flops: float, time_s: float, peak: float) -> str:
        return "compute" if time_s <= flops / (peak * self.gemm_max_eff) * 1.5 * self.gemm_dequant else "memory"

    # -- public ---------------------------------------------------------------------------
    def breakdown(self, shape: StepShape) -> list[OpTime]:
        """Every operator of one step, summed over all layers of all pipeline stages."""
        n = self.layers_per_stage * self.pp
        ops = [
            OpTime(name, f * n, b * n, t * n, self._bound(kind, f, b, t), n)
            for name, f, b, t, kind in self._layer_ops(shape)
        ]
        f, b, t = self._gemm(float(shape.num_sampled), self.lm_head_params, 2.0)
        ops.append(OpTime("lm_head_sampling", f, b, t, self._bound("gemm", f, b, t)))
        if self.pp > 1:
            link = self.pp_link
            msg = shape.num_tokens * self.hidden * ACTIVATION_BYTES
            per_hop = link.latency_s + msg / link.bw_bytes_per_s
            ops.append(
                OpTime(
                    "pp_send",
                    0.0,
                    msg * (self.pp - 1),
                    per_hop * (self.pp - 1),
                    "communication",
                    self.pp - 1,
                )
            )
        ops.append(
            OpTime(
                "engine_overhead",
                0.0,
                0.0,
                self.step_overhead + n * self.layer_overhead + shape.num_sampled * self.sequence_overhead,
                "overhead",
            )
        )
        return ops

    def time_s(self, shape: StepShape) -> float:
        """Latency of one step through every pipeline stage (seconds)."""
        layer = sum(op[3] for op in self._layer_ops(shape))
        n = self.layers_per_stage * self.pp
        _, _, head = self._gemm(float(shape.num_sampled), self.lm_head_params, 2.0)
        total = n * (layer + self.layer_overhead) + head + self.step_overhead
        total += shape.num_sampled * self.sequence_overhead
        if self.pp > 1:
            msg = shape.num_tokens * self.hidden * ACTIVATION_BYTES
            total += (self.pp - 1) * (self.pp_link.latency_s + msg / self.pp_link.bw_bytes_per_s)
        return total
