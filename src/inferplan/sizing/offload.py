"""CPU offload in memory (issue 13): how many GiB of weights each GPU must keep in host memory
for a request mix to fit (:func:`offload_to_fit`), and the blocks a host-memory KV tier holds
(:func:`cpu_kv_blocks`)."""

from __future__ import annotations

import math
from dataclasses import replace

from inferplan.sizing.capacity import MemoryPlan, plan_memory
from inferplan.specs.deployment import Deployment
from inferplan.specs.offload import Offload
from inferplan.units import GIB

__all__ = ["cpu_kv_blocks", "offload_to_fit", "with_offloaded_weights"]


def with_offloaded_weights(dep: Deployment, bytes_per_gpu: float) -> Deployment:
    """``dep`` with ``bytes_per_gpu`` of weights in host memory (its KV tier kept)."""
    f = dep.features
    kv = f.offload.kv_bytes if f.offload else 0.0
    offload = Offload(bytes_per_gpu, kv) if bytes_per_gpu or kv else None
    return dep.with_features(replace(f, offload=offload))


def offload_to_fit(dep: Deployment, context_tokens: int, concurrency: int) -> MemoryPlan | None:
    """The memory plan with the fewest whole GiB of weights offloaded per GPU (vLLM's
    ``--cpu-offload-gb``) at which ``concurrency`` sequences of ``context_tokens`` fit; None when
    they do not fit even with every weight in host memory."""
    plain = plan_memory(with_offloaded_weights(dep, 0.0))
    weights = plain.weights_bytes - plain.lora_bytes - plain.drafter_weights_bytes
    short = plain.sequence_bytes(context_tokens) * concurrency - plain.kv_cache_bytes
    gib = max(math.ceil(short / GIB), 1)
    while gib * GIB <= weights + GIB:
        plan = plan_memory(with_offloaded_weights(dep, min(gib * GIB, weights)))
        if plan.fits and plan.max_sequences(context_tokens) >= concurrency:
            return plan
        gib += 1
    return None


def cpu_kv_blocks(plan: MemoryPlan) -> int:
    """Blocks the host-memory KV tier holds: its bytes over the replica's GPUs, per GPU's block."""
    dep = plan.deployment
    per_gpu = dep.features.cpu_kv_bytes / max(dep.gpus_per_replica, 1)
    block = plan.kv_bytes_per_token * plan.block_size
    return int(per_gpu // block) if block > 0 else 0
