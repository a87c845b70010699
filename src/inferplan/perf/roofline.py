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

from inferplan.sizing.memory import ACTIVATION_BYTES, kv_bytes_per_token_layer
from inferplan.specs.deployment import Deployment
from inferplan.specs.hardware import LinkSpec
from inferplan.specs.model import attention_params, count_params, mlp_params

__all__ = [
    "OpTime",
    "StepCostModel",
    "StepShape",
    "allreduce_time_s",
    "expected_distinct_experts",
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


def expected_distinct_experts(num_experts: int, top_k: int, num_tokens: float) -> float:
    """Experts touched by ``num_tokens`` tokens routed top-k uniformly: E * (1 - (1 - k/E)^B)."""
    if num_tokens <= 0:
        return 0.0
    return float(num_experts * (1.0 - (1.0 - top_k / num_experts) ** num_tokens))


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
        tp = par.tp
        self.layers_per_stage = math.ceil(m.num_layers / par.pp)
        n_moe = m.num_moe_layers if m.moe else 0
        self.moe_fraction = n_moe / m.num_layers
        self.window_fraction = (
            sum(1 for x in m.layers if x.window_tokens) / m.num_layers if dep.engine.sliding_window_kv else 0.0
        )
        self.allreduce_latency = dep.engine.allreduce_latency_s
        self.mem_bw = g.mem_bw_bytes_per_s * k.mem_efficiency
        # Weight-only formats and formats the GPU cannot multiply natively run BF16 MMAs.
        native = dep.precision.compute_dtype
        if not g.supports(native) or dep.precision.weight_only:
            native = "bf16" if g.supports("bf16") else "fp16"
        self.gemm_dequant = (
            k.dequant_overhead if dep.precision.weight_only or native != dep.precision.compute_dtype else 1.0
        )
        peak = g.flops_for(native)
        measured = g.measured_matmul_flops.get(native)
        achievable = measured / peak if measured else k.default_matmul_fraction
        self.gemm_max_eff = achievable * k.gemm_efficiency
        self.gemm_peak = peak
        # attention runs in the activations' dtype: FP32 when the model does (vLLM-CPU), else BF16
        self.attn_flops_per_s = g.flops_for("fp32" if native == "fp32" else "bf16") * k.attention_efficiency
        self.m_half = k.gemm_m_half
        q_bytes = dep.precision.bytes_per_param
        d = m.hidden_size
        attn = m.attention
        # Per-layer, per-GPU weight params of each GEMM group.
        attn_params = attention_params(d, attn)
        o_params = attn.num_heads * attn.v_head_dim * d
        self.qkv_params = (attn_params - o_params) / tp
        self.o_params = o_params / tp
        self.mlp_params = mlp_params(d, m.mlp) / tp
        self.w_bytes = q_bytes
        # bytes charged to time: weight-only kernels stream slower while dequantising
        self.w_time_bytes = q_bytes / (k.weight_only_bandwidth if dep.precision.weight_only else 1.0)
        moe = m.moe
        self.expert_params = mlp_params(d, moe.expert) / tp if moe else 0.0
        self.shared_params = mlp_params(d, moe.shared) / tp if moe and moe.shared else 0.0
        self.num_experts = moe.num_experts if moe else 0
        self.top_k = moe.top_k if moe else 0
        self.ep = par.ep and moe is not None
        # Attention core
        if attn.kv_lora_rank:
            # absorbed MLA decode works in the latent space: per pair 2*(2*lora + rope) per head
            self.attn_flops_per_pair = 2.0 * attn.num_heads / tp * (2 * attn.kv_lora_rank + attn.qk_rope_head_dim)
        else:
            self.attn_flops_per_pair = 2.0 * attn.num_heads / tp * (attn.head_dim + attn.v_head_dim)
        self.kv_bytes_token_layer = kv_bytes_per_token_layer(attn, dep.kv_dtype, tp)
        self.act_bytes_token = ACTIVATION_BYTES * (k.elementwise_passes * d + 3 * m.mlp.intermediate_size / tp)
        self.lm_head_params = count_params(m).embedding / tp
        self.hidden = d
        self.tp = tp
        self.pp = par.pp
        self.tp_link: LinkSpec = dep.tp_link
        self.pp_link: LinkSpec = dep.pp_link
        e = dep.engine
        self.layer_overhead, self.step_overhead, self.sequence_overhead = (
            e.layer_overhead_s,
            e.step_overhead_s,
            e.sequence_overhead_s,
        )

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

    def _moe(self, tokens: float) -> tuple[float, float, float]:
        distinct = expected_distinct_experts(self.num_experts, self.top_k, tokens)
        routed = tokens * self.top_k
        per_expert_tokens = routed / distinct if distinct else 0.0
        flops = 2.0 * routed * self.expert_params
        act = routed * 2 * self.hidden * ACTIVATION_BYTES
        num_bytes = distinct * self.expert_params * self.w_bytes + act
        time_bytes = distinct * self.expert_params * self.w_time_bytes + act
        eff = gemm_efficiency(per_expert_tokens, self.gemm_max_eff, self.m_half)
        t_c = flops / (self.gemm_peak * eff) * self.gemm_dequant if tokens > 0 else 0.0
        return flops, num_bytes, max(t_c, time_bytes / self.mem_bw)

    def _attention(self, shape: StepShape) -> tuple[float, float, float]:
        wf = self.window_fraction
        pairs = (1 - wf) * shape.attn_pairs_full + wf * (shape.attn_pairs_window if wf else 0.0)
        kv = (1 - wf) * shape.kv_read_full + wf * (shape.kv_read_window if wf else 0.0)
        flops = self.attn_flops_per_pair * pairs
        num_bytes = kv * self.kv_bytes_token_layer
        return flops, num_bytes, max(flops / self.attn_flops_per_s, num_bytes / self.mem_bw)

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
            f, b, t = self._moe(M)
            ops.append(("moe_experts", f * mf, b * mf, t * mf, "gemm"))
            if self.shared_params:
                f, b, t = self._gemm(M, self.shared_params, self.w_bytes, self.w_time_bytes)
                ops.append(("shared_experts", f * mf, b * mf, t * mf, "gemm"))
        eb = M * self.act_bytes_token
        ops.append(("norms_rotary_elementwise", 0.0, eb, eb / self.mem_bw, "memory"))
        if self.tp > 1:
            msg = M * self.hidden * ACTIVATION_BYTES
            t = 2 * allreduce_time_s(msg, self.tp, self.tp_link, self.allreduce_latency)
            ops.append(("tp_allreduce", 0.0, 2 * msg, t, "communication"))
        if self.ep:
            msg = M * self.top_k * self.hidden * ACTIVATION_BYTES * (self.tp - 1) / self.tp
            t = 2 * (self.tp_link.latency_s + msg / self.tp_link.bw_bytes_per_s) * mf
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
