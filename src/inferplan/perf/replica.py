"""Assemble a :class:`~inferplan.perf.Deployment` and its scheduler limits from user choices:
the memory plan fixes the KV capacity, the engine profile the batching limits, the GPU's
links the communication costs. Shared by ``predict``, ``validate``, ``plan`` and the web UI."""

from __future__ import annotations

from dataclasses import dataclass

from inferplan.perf.roofline import Deployment, StepCostModel
from inferplan.perf.simulator import SchedulerConfig
from inferplan.sizing.capacity import MemoryPlan, plan_memory
from inferplan.sizing.memory import EngineMemoryConfig, Parallelism
from inferplan.specs.engines import EngineProfile
from inferplan.specs.environment import EnvironmentProfile
from inferplan.specs.hardware import GpuSpec, LinkSpec, get_link, mig_slice
from inferplan.specs.model import ModelSpec
from inferplan.specs.precision import KvDtype, Precision

__all__ = ["Built", "build", "tp_link_for"]


def tp_link_for(gpu: GpuSpec, tp: int) -> LinkSpec:
    """NVLink/XGMI when the GPU has it and the TP group fits in its domain, else PCIe."""
    if gpu.scale_up:
        link = get_link(gpu.scale_up)
        if tp <= min(link.max_gpus, gpu.max_scale_up_gpus):
            return link
    return get_link(gpu.pcie if gpu.pcie.startswith("pcie") else "pcie5")


@dataclass(frozen=True, slots=True)
class Built:
    deployment: Deployment
    cost: StepCostModel
    memory: MemoryPlan
    scheduler: SchedulerConfig


def build(
    model: ModelSpec,
    gpu: GpuSpec,
    precision: Precision,
    kv_dtype: KvDtype,
    par: Parallelism,
    engine: EngineProfile,
    *,
    env: EnvironmentProfile | None = None,
    tp_link: LinkSpec | None = None,
    pp_link: LinkSpec | None = None,
    max_num_seqs: int | None = None,
    max_num_batched_tokens: int | None = None,
) -> Built:
    """Everything needed to price steps and simulate serving for one replica."""
    if env is not None and env.mig_profile:
        gpu = mig_slice(gpu, env.mig_profile)
    seqs = max_num_seqs or engine.max_num_seqs
    tokens = max_num_batched_tokens or engine.max_num_batched_tokens
    mem_cfg = EngineMemoryConfig(
        gpu_memory_utilization=engine.gpu_memory_utilization,
        max_num_batched_tokens=tokens,
        max_num_seqs=min(seqs, 100_000),
    )
    memory = plan_memory(model, gpu, precision, kv_dtype, par, mem_cfg)
    if engine.memory_mode == "trtllm":
        # TensorRT-LLM: KV = kv_free_fraction x (free memory after weights and activations).
        free = memory.visible_bytes - memory.weights_bytes - memory.activation_bytes - memory.non_torch_bytes
        kv_bytes = max(free, 0.0) * engine.kv_free_fraction
        blocks = int(kv_bytes // (memory.kv_bytes_per_token * mem_cfg.block_size))
    else:
        blocks = memory.num_blocks
    link = tp_link or tp_link_for(gpu, par.tp)
    dep = Deployment(model, gpu, precision, kv_dtype, par, engine, link, pp_link or link)
    windows = [x.window_tokens for x in model.layers if x.window_tokens and engine.sliding_window_kv]
    window = min(windows) if windows else None
    sched = SchedulerConfig(
        max_num_seqs=seqs,
        max_num_batched_tokens=max(tokens, 1),
        kv_blocks=float(blocks),
        block_size=mem_cfg.block_size,
        chunked_prefill=engine.chunked_prefill,
        window=window,
        window_fraction=len(windows) / model.num_layers,
        reserve_full=engine.reserve_full_kv,
    )
    return Built(dep, StepCostModel(dep), memory, sched)
