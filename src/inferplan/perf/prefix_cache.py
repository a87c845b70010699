"""A block-level prefix cache as vLLM V1 keeps one (``vllm/v1/core/block_pool.py``,
``kv_cache_manager.py``), with an optional host-memory tier (issue 13).

* Only full blocks are cached, named by their content and everything before it
  (:func:`~inferplan.perf.prompt_paths.block_keys`).
* A block in use by running requests is held once however many share it (reference counts).
  A finished or preempted request's blocks stay cached in the free pool, least recently used
  first (a request's blocks are freed tail first, so its tail goes before its head); a new
  allocation evicts from the front of that pool once the free blocks run out.
* A lookup finds the longest run of cached blocks from the start of a prompt, at most
  ``prompt - 1`` tokens (the last prompt token is always computed, for its logits).
* Host-memory tier (vLLM's native KV offloading): every block that leaves the GPU pool is kept in
  host memory, least recently used evicted first; a lookup continues past the GPU hit into it, and
  those blocks are copied back before the request is scheduled.
* Hit counts are kept as vLLM's ``vllm:prefix_cache_queries`` / ``_hits`` counters count them: the
  prompt tokens of each request when first scheduled, and the tokens found in GPU memory; hits in
  host memory are counted apart (``vllm:external_prefix_cache_hits``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["CacheStats", "PrefixCache"]


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Prompt tokens queried when requests were first scheduled, and those found cached."""

    queries: int
    hits: int
    host_hits: int
    evictions: int

    @property
    def hit_rate(self) -> float:
        """GPU hits / queries (vLLM's prefix-cache hit rate)."""
        return self.hits / self.queries if self.queries else 0.0

    @property
    def total_hit_rate(self) -> float:
        return (self.hits + self.host_hits) / self.queries if self.queries else 0.0


class PrefixCache:
    """Cached blocks by key: in use (reference counts) or free (LRU); ``host_blocks`` > 0 adds the
    host-memory tier."""

    def __init__(self, host_blocks: int = 0) -> None:
        self.refs: dict[int, int] = {}
        self.free: OrderedDict[int, None] = OrderedDict()
        self.host: OrderedDict[int, None] = OrderedDict()
        self.host_blocks = host_blocks
        self.duplicates = 0  # references beyond the first: blocks a per-sequence count holds twice
        self.queries = self.hits = self.host_hits = self.evictions = 0

    def lookup(self, keys: list[int]) -> tuple[int, int]:
        """(blocks cached in GPU memory, further blocks in host memory) from the start of ``keys``."""
        gpu = 0
        for key in keys:
            if key not in self.refs and key not in self.free:
                break
            gpu += 1
        host = 0
        for key in keys[gpu:]:
            if key not in self.host:
                break
            host += 1
        return gpu, host

    def shared(self, keys: list[int]) -> int:
        """How many of ``keys`` are in use by another request (they cost no new memory)."""
        return sum(1 for k in keys if k in self.refs)

    def acquire(self, keys: list[int]) -> None:
        """A request holds these blocks (cached ones leave the free pool; new ones are named)."""
        for key in keys:
            count = self.refs.get(key, 0)
            if count:
                self.duplicates += 1
            else:
                self.free.pop(key, None)
            self.refs[key] = count + 1

    def release(self, keys: list[int]) -> None:
        """A request lets these go: unshared ones join the free pool, tail first."""
        for key in reversed(keys):
            count = self.refs.get(key, 0)
            if count > 1:
                self.refs[key] = count - 1
                self.duplicates -= 1
            elif count == 1:
                del self.refs[key]
                self.free[key] = None

    def trim(self, free_capacity: float) -> None:
        """Evict free cached blocks, least recently used first, until at most ``free_capacity``
        remain (the KV blocks not in use); evicted blocks move to the host tier."""
        while self.free and len(self.free) > free_capacity:
            key, _ = self.free.popitem(last=False)
            self.evictions += 1
            self._to_host(key)

    def _to_host(self, key: int) -> None:
        if not self.host_blocks:
            return
        self.host[key] = None
        self.host.move_to_end(key)
        while len(self.host) > self.host_blocks:
            self.host.popitem(last=False)

    def load(self, keys: list[int]) -> None:
        """Blocks copied back from host memory join the GPU's free pool as most recently used."""
        for key in keys:
            self.host.move_to_end(key)
            if key not in self.refs:
                self.free[key] = None
                self.free.move_to_end(key)

    def count(self, prompt_tokens: int, hit_tokens: int, host_tokens: int) -> None:
        self.queries += prompt_tokens
        self.hits += hit_tokens
        self.host_hits += host_tokens

    def stats(self) -> CacheStats:
        return CacheStats(self.queries, self.hits, self.host_hits, self.evictions)
