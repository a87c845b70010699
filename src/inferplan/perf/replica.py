"""One model replica as the simulator and the steady-state model see it: its memory plan
(which fixes the KV capacity), its step cost model and its scheduler limits.

Pipeline stages run as ``pp`` interleaved virtual engines sharing the KV cache:
:attr:`Replica.virtual_engine` is the scheduler of one of them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from inferplan.perf.lora import LoraCost
from inferplan.perf.offload import weight_stream_s
from inferplan.perf.roofline import StepCostModel, StepShape
from inferplan.perf.speculative import SpeculativeCost, decode_shape
from inferplan.sizing.capacity import MemoryPlan, plan_memory
from inferplan.specs.deployment import Deployment
from inferplan.specs.environment import EnvironmentProfile

__all__ = ["Replica", "SchedulerConfig", "build_replica"]


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    """Engine limits. ``kv_blocks``: capacity in blocks of ``block_size`` tokens for all
    layers; sliding-window layers (``window_fraction`` of them) hold at most the window."""

    max_num_seqs: int
    max_num_batched_tokens: int
    kv_blocks: float
    block_size: int = 16
    chunked_prefill: bool = True
    window: int | None = None
    window_fraction: float = 0.0
    reserve_full: bool = False  # admit only when prompt + all outputs fit (TRT-LLM no-evict)

    def blocks_for(self, context: int | np.integer) -> float:
        """Blocks one sequence of ``context`` tokens holds (fractional with window layers)."""
        return self._blocks_scalar(int(context))

    def blocks_total(self, contexts: np.ndarray) -> float:
        """Blocks held by sequences of these contexts, together."""
        full = np.ceil(contexts / self.block_size)
        if not self.window or not self.window_fraction:
            return float(full.sum())
        capped = np.ceil(np.minimum(contexts, self.window + self.block_size) / self.block_size)
        return float((1 - self.window_fraction) * full.sum() + self.window_fraction * capped.sum())

    def _blocks_scalar(self, context: int) -> float:
        full = float(-(-context // self.block_size))
        if not self.window or not self.window_fraction:
            return full
        capped = float(-(-min(context, self.window + self.block_size) // self.block_size))
        return (1 - self.window_fraction) * full + self.window_fraction * capped

    @property
    def kv_tokens(self) -> float:
        return self.kv_blocks * self.block_size


@dataclass(frozen=True, slots=True)
class Replica:
    """Everything needed to price steps and simulate serving for one replica."""

    deployment: Deployment
    cost: StepCostModel
    memory: MemoryPlan
    scheduler: SchedulerConfig
    speculation: SpeculativeCost | None = None  # issue 14: the drafter and E tokens per step
    lora: LoraCost | None = None  # issue 13: adapters' extra GEMMs and loads
    stream_s: float = 0.0  # issue 13: offloaded weights read over the host link, every step

    @property
    def environment(self) -> EnvironmentProfile:
        return self.deployment.environment

    @property
    def overhead_s(self) -> float:
        """The engine's CPU-side time per step (scheduling, launches): the part a
        hypervisor slows down."""
        c = self.cost
        return c.step_overhead + c.layers_per_stage * c.pp * c.layer_overhead

    def step_time_s(self, shape: StepShape, drafter_s: float = 0.0, adapters: float | None = None) -> float:
        """One step's latency in this deployment's environment (``drafter_s``: the speculative
        drafter's GPU time inside the step; issue 13: LoRA's extra kernels for ``adapters`` distinct
        adapters, by default as many as the step's sequences draw, and offloaded weights' reads)."""
        extra = self.stream_s
        if self.lora is not None:
            used = self.lora.expected_adapters(shape.num_sampled) if adapters is None else adapters
            extra += self.lora.step_time_s(shape.num_tokens, used)
        return self.environment.step_time_s(self.cost.time_s(shape) + drafter_s + extra, self.overhead_s)

    @property
    def tokens_per_step(self) -> float:
        """Tokens a decoding sequence emits per step: E with speculation, else 1."""
        return self.speculation.tokens_per_step if self.speculation else 1.0

    @property
    def draft_tokens(self) -> int:
        """Draft tokens each decoding sequence verifies per step (0 without speculation)."""
        return self.speculation.k if self.speculation else 0

    def drafter_time_s(self, contexts: np.ndarray) -> float:
        """The drafter's GPU time for decoding sequences of these contexts (0 without speculation)."""
        return self.speculation.drafter_time_s(contexts) if self.speculation else 0.0

    def decode_step_time_s(self, contexts: np.ndarray) -> float:
        """One step of decoding sequences only: verification of k + 1 tokens each and drafting
        with speculation, one token each without."""
        shape = decode_shape(contexts, self.scheduler.window, self.draft_tokens)
        return self.step_time_s(shape, self.drafter_time_s(contexts))

    @property
    def num_virtual_engines(self) -> int:
        """Interleaved pipeline stages behave as ``pp`` engines sharing the KV cache."""
        return self.deployment.parallelism.pp

    @property
    def virtual_engine(self) -> SchedulerConfig:
        """The scheduler limits of one virtual engine (KV and sequences split over ``pp``)."""
        pp = self.num_virtual_engines
        if pp == 1:
            return self.scheduler
        s = self.scheduler
        return replace(s, kv_blocks=s.kv_blocks / pp, max_num_seqs=max(s.max_num_seqs // pp, 1))


def build_replica(dep: Deployment) -> Replica:
    """The memory plan, step cost model and scheduler limits of one replica of ``dep``."""
    engine, model = dep.engine, dep.model
    memory = plan_memory(dep)
    windows = [x.window_tokens for x in model.layers if x.window_tokens and engine.sliding_window_kv]
    sched = SchedulerConfig(
        max_num_seqs=engine.max_num_seqs,
        max_num_batched_tokens=engine.max_num_batched_tokens,
        kv_blocks=float(memory.num_blocks),
        block_size=engine.block_size,
        chunked_prefill=engine.chunked_prefill,
        window=min(windows) if windows else None,
        window_fraction=len(windows) / model.num_layers,
        reserve_full=engine.reserve_full_kv,
    )
    speculation = SpeculativeCost(dep) if dep.speculation else None
    cost = StepCostModel(dep)
    lora = LoraCost(dep, cost) if dep.features.lora else None
    return Replica(dep, cost, memory, sched, speculation, lora, weight_stream_s(dep, memory.offloaded_weights_bytes))
