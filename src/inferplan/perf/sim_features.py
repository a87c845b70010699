"""The simulator's hooks for issue 13's serving features, kept apart from its scheduler loop:

* the prefix cache (perf/prefix_cache.py): each admitted request looks up its prompt's full
  blocks, computes only the rest, holds its blocks (shared ones once) and leaves them cached when
  it finishes or is preempted; blocks found only in host memory are copied back first (the
  request waits out the copy, then queues again);
* LoRA adapters: at most ``max_loras`` distinct adapters run at once (a request whose adapter
  would exceed that is passed over for later ones, as vLLM's scheduler does, looking at most
  :data:`MAX_SCAN` requests deep), an adapter not in a GPU slot is loaded in the step that
  admits its request, and every step pays the adapters' kernels (perf/lora.py).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from inferplan.perf.offload import kv_load_s
from inferplan.perf.prefix_cache import PrefixCache
from inferplan.perf.prompt_paths import block_keys
from inferplan.perf.replica import Replica, SchedulerConfig
from inferplan.perf.sim_result import FeatureStats
from inferplan.perf.workload import Requests
from inferplan.sizing.offload import cpu_kv_blocks

__all__ = ["MAX_SCAN", "SimFeatures", "computed_tokens"]

#: Waiting requests the LoRA check looks through for one it may admit.
MAX_SCAN = 256


class SimFeatures:
    """Prefix-cache and adapter state of one simulated engine."""

    def __init__(self, replica: Replica, cfg: SchedulerConfig, req: Requests) -> None:
        self.replica, self.block = replica, cfg.block_size
        links = req.links
        caching = links is not None and replica.deployment.features.prefix_caching and not cfg.window
        self.segments = links.segments if links is not None and caching else None
        host = cpu_kv_blocks(replica.memory) if caching else 0
        self.cache = PrefixCache(host) if caching else None
        self.keys: dict[int, list[int]] = {}
        self.held: dict[int, int] = {}
        self.host_loaded: dict[int, int] = {}
        self.hits = np.zeros(len(req), dtype=np.int64)
        self.counted = np.zeros(len(req), dtype=bool)
        self.block_bytes = replica.memory.kv_bytes_per_token * cfg.block_size
        self.adapter = req.adapter if replica.lora is not None else None
        self.running: dict[int, int] = {}
        self.slots: OrderedDict[int, None] = OrderedDict()
        self.in_host: OrderedDict[int, None] = OrderedDict()
        self.pending_s = 0.0
        self.loads = self.disk_loads = self.host_kv_loads = 0

    @staticmethod
    def wanted(replica: Replica, req: Requests) -> bool:
        return (req.links is not None and replica.deployment.features.prefix_caching) or (
            req.adapter is not None and replica.lora is not None
        )

    # -- prefix cache ---------------------------------------------------------------------
    def _keys(self, rid: int, blocks: int) -> list[int]:
        assert self.segments is not None
        have = self.keys.get(rid)
        if have is None or len(have) < blocks:
            have = block_keys(self.segments[rid], blocks, self.block)
            self.keys[rid] = have
        return have[:blocks]

    def lookup(self, rid: int, target: int) -> tuple[int, float]:
        """(tokens of ``rid``'s first ``target`` found cached, seconds before it may run: a copy back
        from host memory, 0 when none is needed)."""
        if self.cache is None:
            return 0, 0.0
        keys = self._keys(rid, (target - 1) // self.block)
        gpu, host = self.cache.lookup(keys)
        if host:
            self.cache.load(keys[gpu : gpu + host])
            self.host_loaded[rid] = self.host_loaded.get(rid, 0) + host
            self.host_kv_loads += 1
            return (gpu + host) * self.block, kv_load_s(self.replica.deployment, host, self.block_bytes)
        return gpu * self.block, 0.0

    def peek(self, rid: int, target: int) -> int:
        """Tokens of ``rid``'s first ``target`` cached in GPU memory (no copy started, nothing counted)."""
        if self.cache is None:
            return 0
        return self.cache.lookup(self._keys(rid, (target - 1) // self.block))[0] * self.block

    def shared_blocks(self, rid: int, hit_tokens: int) -> int:
        """Blocks of the hit that running requests already hold (no new memory)."""
        if self.cache is None or not hit_tokens:
            return 0
        return self.cache.shared(self._keys(rid, hit_tokens // self.block))

    def hold(self, rid: int, tokens: int) -> None:
        """``rid`` holds its first ``tokens // block`` full blocks (newly named ones become cacheable)."""
        if self.cache is None:
            return
        blocks = tokens // self.block
        have = self.held.get(rid, 0)
        if blocks > have:
            self.cache.acquire(self._keys(rid, blocks)[have:])
            self.held[rid] = blocks

    def count(self, rid: int, prompt: int, hit_tokens: int) -> None:
        """Counts a request's lookup the first time it is scheduled (vLLM leaves preempted ones out)."""
        if self.cache is None or self.counted[rid]:
            return
        self.counted[rid] = True
        host = self.host_loaded.pop(rid, 0) * self.block
        self.hits[rid] = hit_tokens
        self.cache.count(prompt, max(hit_tokens - host, 0), min(host, hit_tokens))

    def let_go(self, rid: int, computed_tokens: int, done: bool) -> None:
        """``rid`` finished (``done``) or was preempted with ``computed_tokens`` of KV."""
        if self.cache is not None:
            self.hold(rid, computed_tokens)
            self.cache.release(self._keys(rid, self.held.pop(rid, 0)))
            if done:
                self.keys.pop(rid, None)
        self._adapter_off(rid)

    def duplicates(self) -> int:
        return self.cache.duplicates if self.cache is not None else 0

    def trim(self, free_blocks: float) -> None:
        if self.cache is not None:
            self.cache.trim(free_blocks)

    # -- LoRA ------------------------------------------------------------------------------
    def pick(self, waiting: Sequence[int]) -> int | None:
        """The first waiting request (within :data:`MAX_SCAN`) whose adapter may run now."""
        if self.adapter is None:
            return 0
        lora = self.replica.lora
        assert lora is not None
        full = len(self.running) >= lora.lora.slots
        for k in range(min(len(waiting), MAX_SCAN)):
            a = int(self.adapter[waiting[k]])
            if a < 0 or not full or a in self.running:
                return k
        return None

    def adapter_on(self, rid: int) -> None:
        if self.adapter is None or (a := int(self.adapter[rid])) < 0:
            return
        self.running[a] = self.running.get(a, 0) + 1
        if a in self.slots:
            self.slots.move_to_end(a)
            return
        lora = self.replica.lora
        assert lora is not None
        in_host = a in self.in_host
        self.pending_s += lora.load_s(in_host)
        self.loads += 1
        self.disk_loads += not in_host
        self.in_host[a] = None
        self.in_host.move_to_end(a)
        while len(self.in_host) > lora.lora.cpu_slots:
            self.in_host.popitem(last=False)
        self.slots[a] = None
        while len(self.slots) > lora.lora.slots:
            idle = next((s for s in self.slots if s not in self.running), None)
            if idle is None:
                break
            del self.slots[idle]

    def _adapter_off(self, rid: int) -> None:
        if self.adapter is None or (a := int(self.adapter[rid])) < 0:
            return
        left = self.running.get(a, 0) - 1
        if left > 0:
            self.running[a] = left
        else:
            self.running.pop(a, None)

    def adapters(self) -> float | None:
        """Distinct adapters running now (None: no adapters in this simulation)."""
        return float(len(self.running)) if self.adapter is not None else None

    def step_extra_s(self) -> float:
        """Adapter loads made for this step (and forgotten: each is paid once)."""
        extra, self.pending_s = self.pending_s, 0.0
        return extra

    def stats(self) -> FeatureStats:
        cache = self.cache.stats() if self.cache is not None else None
        return FeatureStats(cache, self.loads, self.disk_loads, self.host_kv_loads)


def computed_tokens(inp: int, generated: int) -> int:
    """Tokens whose KV a sequence holds: its prompt and every output token but the last sampled."""
    return max(inp + generated - 1, 0) if generated else inp
