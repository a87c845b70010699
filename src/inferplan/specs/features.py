"""The serving features a deployment runs with beyond its model and GPUs (issue 13): automatic
prefix caching, LoRA adapters and CPU offload. One value on :class:`~inferplan.specs.deployment.Deployment`
(``features``), so every layer gets them with the deployment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from inferplan.specs.lora import LoraSpec, parse_targets
from inferplan.specs.offload import Offload
from inferplan.units import GIB

__all__ = ["FEATURE_WORDS", "NO_FEATURES", "ServingFeatures", "resolve_features"]

#: The words (option names without dashes) that :func:`resolve_features` reads.
FEATURE_WORDS = (
    "prefix_caching",
    "lora_adapters",
    "lora_rank",
    "lora_targets",
    "max_loras",
    "max_lora_rank",
    "max_cpu_loras",
    "cpu_offload_gb",
    "kv_offload_gb",
)


@dataclass(frozen=True, slots=True)
class ServingFeatures:
    """``prefix_caching``: the engine reuses the KV of full blocks it has computed before (vLLM V1
    and SGLang: on by default); ``lora``: adapters served beside the base model; ``offload``:
    weights or KV cache in host memory."""

    prefix_caching: bool = True
    lora: LoraSpec | None = None
    offload: Offload | None = None

    @property
    def offloaded_weights_bytes(self) -> float:
        return self.offload.weights_bytes_per_gpu if self.offload else 0.0

    @property
    def cpu_kv_bytes(self) -> float:
        return self.offload.kv_bytes if self.offload else 0.0

    def label(self) -> str:
        parts = [] if self.prefix_caching else ["no prefix cache"]
        if self.lora:
            parts.append(self.lora.label())
        if self.offload:
            parts.append(self.offload.label())
        return ", ".join(parts)

    def key(self) -> tuple[object, ...]:
        return (
            self.prefix_caching,
            self.lora.key() if self.lora else None,
            self.offload.key() if self.offload else None,
        )


NO_FEATURES = ServingFeatures()


def resolve_features(words: Mapping[str, Any]) -> ServingFeatures:
    """The features as people give them (``FEATURE_WORDS``; a missing or None word is its default):
    ``lora_adapters`` > 0 serves adapters, ``cpu_offload_gb`` / ``kv_offload_gb`` GiB offload."""
    adapters = words.get("lora_adapters") or 0
    lora = None
    if adapters:
        lora = LoraSpec(
            adapters,
            words.get("lora_rank") or 16,
            parse_targets(words.get("lora_targets") or "all"),
            words.get("max_loras"),
            words.get("max_cpu_loras"),
            words.get("max_lora_rank"),
        )
    offload = Offload((words.get("cpu_offload_gb") or 0.0) * GIB, (words.get("kv_offload_gb") or 0.0) * GIB)
    caching = words.get("prefix_caching")
    return ServingFeatures(True if caching is None else bool(caching), lora, offload or None)
