"""Serving engines as the performance model sees them, and every tunable parameter.

All efficiency and overhead factors live here, as named, documented fields. Defaults were
fitted on the development set (``benchmarks/fit_perf.py`` over ../shared/data/throughput.csv);
only physically meaningful quantities are fitted, never per-row corrections:

* kernel efficiencies (fraction of peak FLOP/s and of HBM bandwidth a kernel reaches),
* fixed per-step and per-layer overheads of each engine (scheduling, kernel launches).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from inferplan.errors import InputError
from inferplan.specs.names import resolve_engine_name
from inferplan.units import GIB

__all__ = ["ENGINES", "EngineProfile", "KernelParams", "get_engine", "resolve_engine"]


@dataclass(frozen=True, slots=True)
class KernelParams:
    """How close kernels get to the hardware's peaks.

    gemm_efficiency: fraction of the GPU's measured achievable matmul rate (or, where none is
        catalogued, of ``default_matmul_fraction`` x dense peak) that a model's GEMMs reach
        inside an engine (real shapes, fused epilogues, other kernels interleaved).
    default_matmul_fraction: achievable / peak when no measurement exists (0.80 on H100
        BF16, 0.87 on A100 BF16, 0.71 on H100 FP8 in gpus.csv).
    gemm_m_half: tokens (GEMM M) at which a GEMM reaches half its large-M efficiency;
        efficiency(M) = max * M / (M + m_half). Tensor-core tiles are 64-128 rows.
    mem_efficiency: fraction of HBM bandwidth a streaming kernel (weights, KV) sustains.
    attention_efficiency: fraction of dense peak a FlashAttention-style prefill kernel reaches.
    dequant_overhead: extra compute time factor of weight-only INT8/INT4 GEMMs (dequantise in
        registers before the BF16 MMA) once they are compute-bound.
    weight_only_bandwidth: fraction of ``mem_efficiency`` that an 8-bit weight-only GEMV reaches
        while it dequantises in registers: gpt-fast reports 1069 / 1397 GB/s (INT8 / BF16,
        Llama-2-7B), 1098 / 1323 (Llama-2-70B) and 1031 / 1411 (Llama-3.1-8B) on one A100: 0.77.
    weight_only_bandwidth_4bit: the same for 4-bit weights (their unpacking costs more): 862 /
        1397 GB/s (INT4 / BF16, Llama-2-7B, gpt-fast): 0.62. Both read from the measurements, not fitted.
    elementwise_passes: hidden-size vectors read+written per token per layer by norms,
        rotary embedding, residual adds and activation functions (memory-bound).
    attention_decode_efficiency: the bandwidth attention reaches while it reads the paged KV
        cache (small scattered blocks, a softmax per block), relative to ``mem_efficiency``.
    gqa_kv_reuse: decode attention reads each K/V head once for its whole query-head group
        (XQA / FlashDecoding kernels); False for 2023 kernels that read it once per query head.
    moe_gemm_efficiency: grouped expert GEMMs' compute efficiency relative to dense GEMMs
        (many small GEMMs, rows padded to the tile, load imbalance between experts).
    moe_mem_efficiency: grouped expert GEMMs' weight-streaming efficiency relative to
        ``mem_efficiency`` (a memory-bound fused-MoE kernel stays about 1.45x off a streaming read:
        NVIDIA/Megatron-LM PR #6454).
    moe_permute_passes: hidden-size vectors read or written per routed token copy by top-k,
        sorting, the gather into expert order and the weighted scatter back (not TP-sharded).
    moe_layer_overhead_s: fixed GPU time per MoE layer of its routing kernels at small sizes.
    """

    gemm_efficiency: float = 0.78
    default_matmul_fraction: float = 0.8
    gemm_m_half: float = 35.6
    mem_efficiency: float = 0.82
    attention_efficiency: float = 0.75
    dequant_overhead: float = 1.3
    weight_only_bandwidth: float = 0.77
    weight_only_bandwidth_4bit: float = 0.62
    elementwise_passes: float = 10.0
    attention_decode_efficiency: float = 0.951
    gqa_kv_reuse: bool = True
    moe_gemm_efficiency: float = 0.592
    moe_mem_efficiency: float = 1.0
    moe_permute_passes: float = 5.62
    moe_layer_overhead_s: float = 12.2e-6


@dataclass(frozen=True, slots=True)
class EngineProfile:
    """One serving engine's fixed costs and scheduling defaults.

    step_overhead_s: CPU time per engine iteration not hidden behind GPU work (scheduling,
        sampling, detokenisation, Python), paid once per step.
    layer_overhead_s: launch cost per transformer layer per step (about ten kernels; small
        with CUDA graphs).
    sequence_overhead_s: CPU time per sequence sampled in a step (sampling, stop checks,
        output processing in the engine loop); 0 where the data never separated it from
        ``step_overhead_s`` (GPU engines), fitted by ``calibrate`` on vLLM-CPU.
    allreduce_latency_s: fixed cost of one small all-reduce in this engine's collective
        implementation (custom one-shot kernels in TensorRT-LLM/vLLM, NCCL through
        torch.distributed in gpt-fast); added to the link's bandwidth term.
    sliding_window_kv: whether the KV cache drops tokens outside a layer's window.
    memory_mode: 'vllm' (KV = total x utilisation - everything else), 'trtllm'
        (KV = kv_free_fraction x memory left after weights and activations) or 'sglang'
        (KV = memory left after weights - total x (1 - mem_fraction_static)) or 'vllm-cpu'
        (KV = ``kv_cache_space_gib`` when set, vLLM-CPU's VLLM_CPU_KVCACHE_SPACE, else the
        'vllm' rule on the socket's memory).
    mem_fraction_static: SGLang's (weights + KV pool) / GPU memory; None: SGLang's default
        formula for the GPU and parallelism (:func:`inferplan.specs.engine_defaults.sglang_defaults`).
    kv_cache_space_gib: whole GiB of KV cache per rank (VLLM_CPU_KVCACHE_SPACE, read with
        int()); None: vLLM-CPU sizes it itself (node memory x utilisation - resident memory).
    gpu_memory_utilization: share of visible memory the engine may use (vLLM's flag).
    block_size: tokens per paged KV block.
    non_torch_bytes: measured CUDA context + communication buffers per GPU (None: the
        memory model's estimate).
    reserve_full_kv: admit a request only when its prompt and all its output tokens fit
        (TensorRT-LLM's GUARANTEED_NO_EVICT); otherwise admit greedily and preempt (vLLM).
    request_overhead_s: latency of the serving front end before a request reaches the engine
        (tokenisation, an ensemble's scheduling, the HTTP/gRPC stream): in TTFT, not on the GPU.
    """

    name: str
    step_overhead_s: float
    layer_overhead_s: float
    sequence_overhead_s: float = 0.0
    allreduce_latency_s: float = 10e-6
    sliding_window_kv: bool = True
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    chunked_prefill: bool = True
    memory_mode: str = "vllm"
    gpu_memory_utilization: float = 0.9
    kv_free_fraction: float = 0.9
    reserve_full_kv: bool = False
    block_size: int = 16
    non_torch_bytes: float | None = None
    mem_fraction_static: float | None = None
    request_overhead_s: float = 0.0
    kv_cache_space_gib: int | None = None
    kernels: KernelParams = field(default_factory=KernelParams)
    description: str = ""

    def __post_init__(self) -> None:
        if not 0.05 <= self.gpu_memory_utilization <= 1.0:
            raise InputError(f"gpu_memory_utilization must be in [0.05, 1.0], got {self.gpu_memory_utilization}")
        if self.block_size not in (1, 8, 16, 32, 64, 128, 256):
            raise InputError(f"block_size must be a power of two up to 256, got {self.block_size}")
        if not 1 <= self.max_num_batched_tokens <= 10_000_000:
            raise InputError("max_num_batched_tokens must be between 1 and 10,000,000")
        if not 1 <= self.max_num_seqs <= 100_000:
            raise InputError("max_num_seqs must be between 1 and 100,000")
        if self.mem_fraction_static is not None and not 0.05 <= self.mem_fraction_static <= 1.0:
            raise InputError(f"mem_fraction_static must be in [0.05, 1.0], got {self.mem_fraction_static}")
        if self.non_torch_bytes is not None and not 0 <= self.non_torch_bytes < 1e13:
            raise InputError("non-torch memory must be between 0 and 10 TB")
        if self.kv_cache_space_gib is not None and not 1 <= self.kv_cache_space_gib <= 100_000:
            raise InputError("the KV cache space must be between 1 and 100,000 GiB (VLLM_CPU_KVCACHE_SPACE)")

    def with_kernels(self, **changes: float) -> EngineProfile:
        fields: dict[str, Any] = dict(changes)
        return replace(self, kernels=replace(self.kernels, **fields))


ENGINES: dict[str, EngineProfile] = {
    e.name: e
    for e in (
        EngineProfile(
            "vllm",
            step_overhead_s=2.0e-3,
            layer_overhead_s=15e-6,
            description="vLLM V1 with CUDA graphs and chunked prefill (defaults of 'vllm serve')",
        ),
        EngineProfile(
            "sglang",
            step_overhead_s=1.5e-3,
            layer_overhead_s=15e-6,
            memory_mode="sglang",
            block_size=1,
            max_num_seqs=4096,
            description="SGLang with CUDA graphs and chunked prefill; KV pool from mem_fraction_static "
            "(its own default formula unless set), one token per page",
        ),
        EngineProfile(
            "trtllm",
            step_overhead_s=0.27e-3,
            layer_overhead_s=6.7e-6,
            max_num_seqs=2048,
            allreduce_latency_s=8e-6,
            sliding_window_kv=False,
            chunked_prefill=False,
            max_num_batched_tokens=8192,
            memory_mode="trtllm",
            kv_free_fraction=0.95,
            reserve_full_kv=True,
            description="TensorRT-LLM in-flight batching (trtllm-bench / C++ executor)",
        ),
        EngineProfile(
            "triton-trtllm",
            step_overhead_s=3.26e-3,
            layer_overhead_s=12.2e-6,
            max_num_seqs=2048,
            chunked_prefill=False,
            allreduce_latency_s=31.7e-6,
            request_overhead_s=2.0e-3,
            sliding_window_kv=False,
            memory_mode="trtllm",
            kv_free_fraction=0.9,
            reserve_full_kv=True,
            description="Triton Inference Server with the TensorRT-LLM backend (engines built with trtllm-build's "
            "defaults, max_batch_size 2048 and max_num_tokens 8192: TensorRT-LLM performance tuning guide)",
        ),
        EngineProfile(
            "vllm-v0",
            step_overhead_s=8.0e-3,
            layer_overhead_s=15e-6,
            max_num_batched_tokens=2048,
            description="vLLM before 0.8 (V0 engine): its v0.5.3 profile of Llama-3-8B on one H100 spent 62% of "
            "a step off the GPU (HTTP server 33%, scheduling 29%; the vLLM v0.6.0 blog, 2024-09-05): 1.63x a "
            "~5 ms GPU step, 8 ms (not fitted)",
        ),
        EngineProfile(
            "trtllm-pytorch",
            step_overhead_s=1.71e-3,
            layer_overhead_s=10.7e-6,
            max_num_seqs=4096,
            allreduce_latency_s=50e-6,
            sliding_window_kv=False,
            chunked_prefill=False,
            max_num_batched_tokens=8192,
            memory_mode="trtllm",
            kv_free_fraction=0.95,
            reserve_full_kv=True,
            description="TensorRT-LLM 1.0 and later, PyTorch backend (trtllm-bench / trtllm-serve): CUDA graphs, "
            "overlap scheduler, guaranteed-no-evict",
        ),
        EngineProfile(
            "trtllm-static",
            step_overhead_s=2.38e-3,
            layer_overhead_s=34.8e-6,
            max_num_seqs=2048,
            allreduce_latency_s=13.5e-6,
            sliding_window_kv=False,
            chunked_prefill=False,
            memory_mode="trtllm",
            kv_free_fraction=0.9,
            reserve_full_kv=True,
            kernels=KernelParams(gqa_kv_reuse=False),
            description="TensorRT-LLM before 0.10 (gptSessionBenchmark, static batching, 2023 kernels: the Hopper "
            "XQA kernels that read each K/V head once per GQA group came with 0.10, its release notes)",
        ),
        EngineProfile(
            "llama.cpp",
            step_overhead_s=1.0e-3,
            layer_overhead_s=15e-6,
            max_num_seqs=4,
            max_num_batched_tokens=2048,
            chunked_prefill=True,
            gpu_memory_utilization=0.95,
            description="llama.cpp's llama-server on CUDA (4 slots, logical batch 2048); not fitted: no "
            "llama.cpp rows in the development set",
        ),
        EngineProfile(
            "vllm-cpu",
            step_overhead_s=5e-3,
            layer_overhead_s=100e-6,
            allreduce_latency_s=50e-6,
            max_num_seqs=128,
            max_num_batched_tokens=2048,
            memory_mode="vllm-cpu",
            gpu_memory_utilization=0.92,
            block_size=128,
            non_torch_bytes=1.0 * GIB,
            kernels=KernelParams(
                mem_efficiency=0.5, attention_efficiency=0.3, default_matmul_fraction=0.7, gemm_m_half=4.0
            ),
            description="vLLM's CPU backend (vllm-cpu 0.32, OpenAI server): block 128, 128 sequences and 2048 "
            "batched tokens per rank, KV cache = VLLM_CPU_KVCACHE_SPACE GiB (else 92% of the NUMA node's memory "
            "less resident memory); a priori overheads of an eager Python step, CPU efficiencies from published "
            "CPU decode rates (achieved/theoretical DRAM bandwidth 0.25-0.75); CPU GEMM microkernels block 4-8 "
            "rows of M in registers (not 64-128-row tensor-core tiles), so half efficiency near M = 4",
        ),
        EngineProfile(
            "gpt-fast",
            step_overhead_s=0.073e-3,
            layer_overhead_s=5.2e-6,
            max_num_seqs=1,
            allreduce_latency_s=22.8e-6,
            kernels=KernelParams(mem_efficiency=0.70),
            chunked_prefill=False,
            description="gpt-fast: torch.compile'd decode loop with CUDA graphs, batch 1 (its HBM "
            "efficiency 0.70 is what it reports on an A100 capped at 330 W)",
        ),
    )
}


def resolve_engine(name: str, version: str = "") -> tuple[EngineProfile, str]:
    """The engine profile for a name as people write it ('vLLM', 'TensorRT-LLM (PyTorch
    backend)', 'Triton + TensorRT-LLM', 'NIM', 'llama.cpp') and an optional version, with the
    resolver's note when it assumed something (:func:`inferplan.specs.names.resolve_engine_name`)."""
    key = name.strip().lower()
    if key in ENGINES and not version:
        return ENGINES[key], ""
    found = resolve_engine_name(name, version)
    return ENGINES[found.key], found.note


def get_engine(name: str, version: str = "") -> EngineProfile:
    """An engine profile by name (and version); see :func:`resolve_engine`."""
    return resolve_engine(name, version)[0]
