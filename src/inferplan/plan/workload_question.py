"""The part of a plan question that describes the workload as it is (issue 13): lengths from a
dataset, multi-turn sessions and shared system prompts, prefix caching, LoRA adapters and CPU
offload (:class:`WorkloadQuestion`, the ``workload`` field of
:class:`~inferplan.plan.question.PlanQuestion`), and what the demand becomes with it (:class:`Traffic`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from inferplan.limits import MAX_INPUT_TOKENS
from inferplan.perf.datasets import TOKENS_PER_WORD, LengthSample
from inferplan.perf.sessions import MAX_TURNS, TrafficShape
from inferplan.specs.lora import LORA_RANKS, MAX_ADAPTERS, MAX_LORAS

__all__ = ["NO_TRAFFIC", "WORKLOAD_OPTION_NAMES", "Traffic", "WorkloadQuestion"]

#: The CLI option of each field, named in refusals.
WORKLOAD_OPTION_NAMES = {
    "dataset": "--dataset",
    "tokens_per_word": "--tokens-per-word",
    "turns": "--multi-turn",
    "think_time_s": "--think-time",
    "shared_prefixes": "--shared-prefix",
    "shared_prefix_tokens": "--shared-prefix",
    "prefix_caching": "--prefix-caching",
    "lora_adapters": "--lora-adapters",
    "lora_rank": "--lora-rank",
    "lora_targets": "--lora-targets",
    "max_loras": "--max-loras",
    "max_lora_rank": "--max-lora-rank",
    "max_cpu_loras": "--max-cpu-loras",
    "kv_offload_gb": "--kv-offload-gb",
    "cpu_offload": "--offload",
}


class WorkloadQuestion(BaseModel):
    """Sessions, shared prompts, adapters and offload (every field's default: none of them)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    dataset: str | None = Field(None, min_length=1, max_length=4096, description="A dataset file (command line only).")
    tokens_per_word: float = Field(
        TOKENS_PER_WORD, ge=0.1, le=10, description="Token estimate for text without counts."
    )
    turns: int = Field(1, ge=1, le=MAX_TURNS, description="Requests per session (multi-turn chat).")
    think_time_s: float = Field(0.0, ge=0, le=86_400, description="Seconds between a reply and the next turn.")
    shared_prefixes: int = Field(0, ge=0, le=100_000, description="Distinct shared system prompts.")
    shared_prefix_tokens: int = Field(0, ge=0, le=MAX_INPUT_TOKENS, description="Tokens of each shared prompt.")
    prefix_caching: bool = Field(True, description="The engine's automatic prefix cache.")
    lora_adapters: int = Field(0, ge=0, le=MAX_ADAPTERS, description="LoRA adapters requests spread over.")
    lora_rank: int = Field(16, ge=1, le=LORA_RANKS[-1])
    lora_targets: str = Field("all", max_length=200, pattern=r"^[a-z_,\s]+$")
    max_loras: int | None = Field(None, ge=1, le=MAX_LORAS, description="Adapters in one batch (GPU slots).")
    max_lora_rank: int | None = Field(None, ge=1, le=LORA_RANKS[-1])
    max_cpu_loras: int | None = Field(None, ge=1, le=MAX_ADAPTERS)
    kv_offload_gb: float | None = Field(None, ge=0, le=65_536, description="Host-memory KV tier per replica, GiB.")
    cpu_offload: bool = Field(False, description="Also consider keeping weights in host memory (fewer GPUs).")

    def shape(self) -> TrafficShape | None:
        shape = TrafficShape(
            self.turns, self.think_time_s, self.shared_prefixes, self.shared_prefix_tokens, self.lora_adapters
        )
        return shape if shape != TrafficShape() else None

    def feature_words(self) -> dict[str, Any]:
        """What :func:`~inferplan.specs.features.resolve_features` reads."""
        return {
            "prefix_caching": self.prefix_caching,
            "lora_adapters": self.lora_adapters,
            "lora_rank": self.lora_rank,
            "lora_targets": self.lora_targets,
            "max_loras": self.max_loras,
            "max_lora_rank": self.max_lora_rank,
            "max_cpu_loras": self.max_cpu_loras,
            "kv_offload_gb": self.kv_offload_gb,
        }


@dataclass(frozen=True, slots=True)
class Traffic:
    """The demand's structure: sessions and shared prompts (``shape``), and a dataset's joint lengths
    (``lengths``: the demand's isl and osl are then its means)."""

    shape: TrafficShape | None = None
    lengths: LengthSample | None = None

    def prompt_tokens(self, isl: int, osl: int) -> int:
        """Mean prompt a request sends (a session's turns carry the conversation so far)."""
        return round(self.shape.mean_prompt_tokens(isl, osl)) if self.shape else isl

    def context_tokens(self, isl: int, osl: int) -> int:
        """The longest context a request reaches: a session's last turn with its reply."""
        if self.shape is None:
            return isl + osl
        return math.ceil(self.shape.prompt_tokens(isl, osl, self.shape.turns) + osl)

    def cached_tokens(self, isl: int, osl: int, block_size: int) -> int:
        """Mean prompt tokens a large enough prefix cache holds."""
        if self.shape is None:
            return 0
        return round(self.shape.cached_tokens(isl, osl, block_size))


NO_TRAFFIC = Traffic()
