"""How many pure-decode steps the simulator may run at once (its fast path): until a sequence
finishes, a waiting request becomes admissible, the next request arrives, or the KV cache could run
short. Decode step time is linear in context (weights fixed, KV reads grow), so a run is priced
exactly at its midpoint context."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from inferplan.perf.replica import SchedulerConfig

if TYPE_CHECKING:
    from inferplan.perf.simulator import _Sim

__all__ = ["decode_run_length", "steps_until_kv_full"]


def _head_fits(sim: _Sim, n: int) -> bool:
    """Whether the request the scheduler would admit next fits now."""
    cfg = sim.cfg
    pick = sim.fx.pick(sim.waiting) if sim.fx is not None else 0
    if pick is None:
        return False
    head = sim.waiting[pick]
    start, chunk = sim.admission(head, cfg.max_num_batched_tokens - n, peek=True)
    fits = chunk > 0 and sim.used + cfg.blocks_for(start + chunk) <= cfg.kv_blocks
    if cfg.reserve_full:
        fits = fits and sim.reserved + cfg.blocks_for(sim.inp[head] + sim.out[head]) <= cfg.kv_blocks
    return fits


def decode_run_length(sim: _Sim) -> int:
    """Pure-decode steps that can run before anything else can change (0: schedule normally)."""
    cfg, ids = sim.cfg, sim.dec_ids
    left = sim.out[ids] - sim.generated[ids]  # steps until the first finishes: floor(credit + s E) >= left
    owed = left if sim.per_step == 1.0 else np.ceil((left - sim.credit[ids]) / sim.per_step - 1e-9)
    steps = max(int(owed.min()), 1)
    n = int(ids.size)
    if not cfg.reserve_full:
        shared = sim.fx.duplicates() if sim.fx is not None else 0  # cached blocks several sequences share
        room = replace(cfg, kv_blocks=cfg.kv_blocks + shared) if shared else cfg
        steps = steps_until_kv_full(room, sim.dec_ctx, steps, sim.used + shared, sim.per_step)
    full = n >= cfg.max_num_seqs
    if sim.waiting and not full and _head_fits(sim, n):
        return 0
    nxt = sim.next_arrival_s()
    if not sim.waiting and not full and math.isfinite(nxt):
        gap = nxt - sim.now
        dt = sim.decode_time_s(sim.dec_ctx + steps * sim.per_step) if steps else 0.0
        steps = min(steps, int(gap // dt)) if dt > 0 else steps
    return steps


def steps_until_kv_full(
    cfg: SchedulerConfig, dec_ctx: np.ndarray, limit: int, used_now: float, per_step: float = 1.0
) -> int:
    """Largest k <= limit such that every decoding sequence still has KV for step k (each step
    adds up to ``ceil(per_step)`` tokens: speculation credits E tokens per step)."""

    def fits(k: int) -> bool:
        return cfg.blocks_total(dec_ctx + math.ceil(k * per_step)) <= cfg.kv_blocks

    # cheap sufficient test first: each sequence gains at most ceil(k / block) + 1 blocks
    if used_now + dec_ctx.size * (math.ceil(limit * per_step) // cfg.block_size + 1) <= cfg.kv_blocks:
        return limit
    if fits(limit):
        return limit
    low, high = 0, limit
    while low < high:
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    return low
