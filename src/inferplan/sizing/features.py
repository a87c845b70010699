"""What the serving features (issue 13) change in GPU memory: LoRA adapter slots are added to the
weights, weights offloaded to host memory leave it (:func:`feature_memory`, the hook
:func:`~inferplan.sizing.capacity.plan_memory` calls)."""

from __future__ import annotations

from dataclasses import dataclass

from inferplan.sizing.lora import slot_bytes_per_gpu
from inferplan.specs.deployment import Deployment

__all__ = ["FeatureMemory", "feature_memory"]


@dataclass(frozen=True, slots=True)
class FeatureMemory:
    """Per GPU: the LoRA slots' bytes and the weight bytes kept in host memory."""

    lora_bytes: float = 0.0
    offloaded_bytes: float = 0.0


def feature_memory(dep: Deployment, weights_bytes: float) -> FeatureMemory:
    """LoRA slots (``sizing/lora.py``) and the offloaded weights: vLLM offloads parameters until
    ``--cpu-offload-gb`` is reached, so at most the weights themselves."""
    f = dep.features
    lora = slot_bytes_per_gpu(dep.model, f.lora, dep.parallelism) if f.lora else 0.0
    return FeatureMemory(lora, min(f.offloaded_weights_bytes, weights_bytes))
