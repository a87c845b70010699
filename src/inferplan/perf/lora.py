"""LoRA adapters in time (issue 13): the extra GEMMs of every step, and loading an adapter into a slot.

Every wrapped linear slice (sizing/lora.py) runs a shrink ``x A`` and an expand ``(x A) B`` for the
step's ``T`` tokens at the slots' rank ``r`` (vLLM's punica kernels pad every adapter to
``--max-lora-rank``):

* FLOPs ``2 T r (d_in + d_out)``; bytes ``a r (d_in + d_out) x 2`` (the weights of the ``a``
  distinct adapters in the step) ``+ T (d_in + 2 r + 2 d_out) x 2`` (the input read again, the
  rank-``r`` intermediate written and read, the output read and written); time on the roofline;
* launches: a shrink and an expand kernel for each of qkv, o, gate_up and down, 8 per layer, where
  the engine's per-layer overhead prices about ten (``EngineProfile.layer_overhead_s``).

An adapter that is not in a GPU slot is copied in from host memory (bytes per GPU / the host link's
copy rate, specs/offload.py), or first read from a local disk when host memory does not hold it
either; vLLM loads it before the step that needs it runs. Not checked against GPU measurements (the
ground-truth data has no LoRA rows): an estimate from the operators' sizes.
"""

from __future__ import annotations

import math

from inferplan.perf.roofline import StepCostModel, expected_distinct_experts, gemm_efficiency
from inferplan.sizing.lora import LORA_BYTES, adapter_bytes, adapter_bytes_per_gpu, lora_modules
from inferplan.specs.deployment import Deployment
from inferplan.specs.offload import LOCAL_DISK_READ_BYTES_PER_S, host_copy_bytes_per_s

__all__ = ["LORA_KERNEL_SHARE", "LoraCost"]

#: LoRA kernels per layer (8) over the kernels the engine's per-layer overhead prices (about 10).
LORA_KERNEL_SHARE = 0.8


class LoraCost:
    """Prices LoRA's share of steps of one deployment (``dep.features.lora`` must be set)."""

    def __init__(self, dep: Deployment, cost: StepCostModel) -> None:
        lora = dep.features.lora
        assert lora is not None
        self.lora, self.cost = lora, cost
        model, tp = dep.model, dep.parallelism.tp
        self.rank = lora.slot_rank
        self.layers = model.num_layers
        top_k = model.moe.top_k if model.moe else 1
        self.experts = model.moe.num_experts if model.moe else 1
        width = in_out = io_bytes = expert_width = 0.0
        for m in lora_modules(model):
            d_in, d_out = m.per_gpu(tp)
            share = m.layers / model.num_layers
            if m.copies > 1:  # per expert: each token runs its top-k experts' adapters
                in_out += top_k * share * (d_in + d_out)
                io_bytes += top_k * share * (d_in + 2 * self.rank + 2 * d_out)
                expert_width += share * (d_in + d_out)
            else:
                in_out += share * (d_in + d_out)
                io_bytes += share * (d_in + 2 * self.rank + 2 * d_out)
                width += share * (d_in + d_out)
        self.width, self.in_out, self.io_bytes, self.expert_width = width, in_out, io_bytes, expert_width
        self.top_k = top_k
        self.adapter_gpu_bytes = adapter_bytes_per_gpu(model, lora, dep.parallelism)
        self.adapter_file_bytes = adapter_bytes(model, lora)
        self.copy_bytes_per_s = host_copy_bytes_per_s(dep.gpu)

    def step_time_s(self, tokens: float, adapters: float) -> float:
        """LoRA's extra time in one step of ``tokens`` tokens using ``adapters`` distinct adapters."""
        if tokens <= 0 or adapters <= 0:
            return 0.0
        c, r = self.cost, self.rank
        experts = expected_distinct_experts(self.experts, self.top_k, tokens) if self.expert_width else 0.0
        flops = 2.0 * tokens * r * self.in_out * self.layers
        weights = adapters * r * (self.width + experts * self.expert_width) * LORA_BYTES
        num_bytes = (weights + tokens * self.io_bytes * LORA_BYTES) * self.layers
        compute = flops / (c.gemm_peak * gemm_efficiency(tokens, c.gemm_max_eff, c.m_half))
        launches = self.layers * LORA_KERNEL_SHARE * c.layer_overhead
        return max(compute, num_bytes / c.mem_bw) + launches

    def load_s(self, in_host_memory: bool) -> float:
        """Loading one adapter into a GPU slot (from host memory, or from a local disk first)."""
        copy = self.adapter_gpu_bytes / self.copy_bytes_per_s
        return copy if in_host_memory else copy + self.adapter_file_bytes / LOCAL_DISK_READ_BYTES_PER_S

    def expected_adapters(self, sequences: float) -> float:
        """Distinct adapters among ``sequences`` requests spread uniformly over the adapters, at most
        the slots: ``N (1 - (1 - 1/N)^b)``."""
        n = self.lora.adapters
        if sequences <= 0:
            return 0.0
        return float(min(n * (1.0 - (1.0 - 1.0 / n) ** sequences), float(self.lora.slots), math.ceil(sequences)))
