"""What a simulation returns (:class:`SimResult`), the counts of issue 13's serving features
(:class:`FeatureStats`), and one result from several engines' (:func:`merge_results`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inferplan.perf.prefix_cache import CacheStats

__all__ = ["FeatureStats", "SimResult", "merge_results"]


@dataclass(frozen=True, slots=True)
class FeatureStats:
    """The prefix cache's counts (None: requests shared no tokens, or caching was off), adapters
    loaded into GPU slots (from host memory, and from disk first), KV loads from host memory."""

    cache: CacheStats | None = None
    lora_loads: int = 0
    lora_loads_from_disk: int = 0
    host_kv_loads: int = 0

    def plus(self, other: FeatureStats) -> FeatureStats:
        cache = self.cache or other.cache
        if self.cache and other.cache:
            a, b = self.cache, other.cache
            cache = CacheStats(
                a.queries + b.queries, a.hits + b.hits, a.host_hits + b.host_hits, a.evictions + b.evictions
            )
        return FeatureStats(
            cache,
            self.lora_loads + other.lora_loads,
            self.lora_loads_from_disk + other.lora_loads_from_disk,
            self.host_kv_loads + other.host_kv_loads,
        )


@dataclass(frozen=True, slots=True)
class SimResult:
    """Per-request times (seconds; NaN when unfinished) and per-step records."""

    arrival_s: np.ndarray
    first_token_s: np.ndarray
    finish_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    step_s: np.ndarray
    step_decode_tokens: np.ndarray
    step_num_seqs: np.ndarray
    step_kv_fraction: np.ndarray
    num_preemptions: int
    step_repeat: np.ndarray | None = None  # how many identical steps each record stands for
    step_output_tokens: np.ndarray | None = None  # tokens emitted during each record (all its repeats)
    features: FeatureStats | None = None  # issue 13: prefix cache, adapters, host KV

    @property
    def repeats(self) -> np.ndarray:
        return self.step_repeat if self.step_repeat is not None else np.ones(len(self.step_s))


def merge_results(parts: list[SimResult], index: np.ndarray) -> SimResult:
    """One result from the engines' parts: per-request arrays back in the requests' order
    (``index``: each part's requests, concatenated), per-step records one after another."""
    cat = np.concatenate

    def ordered(arrays: list[np.ndarray]) -> np.ndarray:
        merged = cat(arrays)
        out = np.empty_like(merged)
        out[index] = merged
        return out

    stats = [p.features for p in parts if p.features is not None]
    features = stats[0] if stats else None
    for more in stats[1:]:
        features = features.plus(more) if features else more
    return SimResult(
        ordered([p.arrival_s for p in parts]),
        ordered([p.first_token_s for p in parts]),
        ordered([p.finish_s for p in parts]),
        ordered([p.input_tokens for p in parts]),
        ordered([p.output_tokens for p in parts]),
        cat([p.step_s for p in parts]),
        cat([p.step_decode_tokens for p in parts]),
        cat([p.step_num_seqs for p in parts]),
        cat([p.step_kv_fraction for p in parts]),
        sum(p.num_preemptions for p in parts),
        cat([p.repeats for p in parts]),
        cat([p.step_output_tokens for p in parts if p.step_output_tokens is not None]),
        features,
    )
