"""Iteration-level simulation of a vLLM-style engine: continuous batching, chunked prefill,
a paged KV cache with preemption (recompute) when it runs out.

Each iteration: every decoding sequence gets one token; the rest of the token budget goes
to prefill chunks (running ones first, then new arrivals in FCFS order, while sequences and
KV blocks last); the step is priced by :class:`~inferplan.perf.StepCostModel`.
Speculation (perf/speculative.py): decoding sequences verify k + 1 tokens, the drafter's time is
added, each is credited E tokens per step. ``Requests.cached_tokens`` arrive with their KV.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from inferplan.errors import InputError
from inferplan.perf.replica import Replica, SchedulerConfig
from inferplan.perf.roofline import StepShape
from inferplan.perf.speculative import decode_part
from inferplan.perf.workload import Requests

__all__ = ["SimResult", "simulate"]


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

    @property
    def repeats(self) -> np.ndarray:
        return self.step_repeat if self.step_repeat is not None else np.ones(len(self.step_s))


class _Sim:
    """Mutable state of one simulated engine; one method per scheduler phase."""

    def __init__(self, replica: Replica, cfg: SchedulerConfig, req: Requests, concurrency: int | None) -> None:
        self.cfg, self.eng = cfg, replica
        n = self.n = len(req)
        # the engine sees a request ``request_overhead_s`` after the client sends it (front end)
        self.front = replica.deployment.engine.request_overhead_s
        self.sent = req.arrival_s.astype(float).copy()
        self.inp, self.out = req.input_tokens.astype(np.int64), req.output_tokens.astype(np.int64)
        self.first, self.finish = np.full(n, np.nan), np.full(n, np.nan)
        self.concurrency = concurrency
        if concurrency is not None:  # closed loop: the first users send at once, the rest wait
            self.sent = np.where(np.arange(n) < concurrency, 0.0, np.inf)
        self.arrival = self.sent + self.front
        self.order = [int(i) for i in np.argsort(self.arrival, kind="stable")]
        self.released = min(concurrency, n) if concurrency is not None else n
        self.next_arrival = 0
        self.waiting: deque[int] = deque()
        self.generated = np.zeros(n, dtype=np.int64)
        self.target = self.inp.copy()  # tokens to prefill: the prompt, plus outputs after preemption
        self.prefilling: dict[int, int] = {}  # request -> tokens prefilled so far
        self.admitted_at: dict[int, int] = {}
        self.admit_counter = 0
        self.dec_ids = np.empty(0, dtype=np.int64)
        self.dec_ctx = np.empty(0, dtype=np.int64)
        self.now, self.done, self.preemptions = 0.0, 0, 0
        self.used = 0.0
        self.reserved = 0.0
        self.window = cfg.window if (cfg.window and cfg.window_fraction) else None
        self.steps: list[tuple[float, int, int, float, int, int]] = []
        self.k, self.per_step = replica.draft_tokens, replica.tokens_per_step  # speculative decoding
        self.credit = np.zeros(n)
        cached = req.cached_tokens if req.cached_tokens is not None else np.zeros(n)  # KV that arrives with it
        self.cached = np.asarray(cached, dtype=np.int64).copy()

    # -- bookkeeping ----------------------------------------------------------------------
    def record(self, dt: float, decode: int, seqs: int, repeat: int, emitted: int) -> None:
        self.steps.append((dt, decode, seqs, self.used / self.cfg.kv_blocks, repeat, emitted))

    def finished(self, rid: int) -> None:
        self.finish[rid] = self.now
        del self.admitted_at[rid]
        self.done += 1
        if self.concurrency is not None and self.released < self.n:
            nxt = self.order[self.released]  # closed loop: the next user sends now
            self.sent[nxt], self.arrival[nxt] = self.now, self.now + self.front
            self.released += 1

    def admit_arrivals(self) -> bool:
        """Queue arrived requests; jump the clock when idle. False when nothing is left."""
        order, arrival = self.order, self.arrival
        while self.next_arrival < len(order) and arrival[order[self.next_arrival]] <= self.now:
            self.waiting.append(order[self.next_arrival])
            self.next_arrival += 1
        if self.prefilling or self.dec_ids.size or self.waiting:
            return True
        if self.next_arrival >= len(order) or not np.isfinite(arrival[order[self.next_arrival]]):
            return False
        self.now = float(arrival[order[self.next_arrival]])
        return self.admit_arrivals()

    def kv_in_use(self) -> None:
        """Blocks this step's sequences need (and, under reserve_full, have been promised)."""
        cfg, ids = self.cfg, self.dec_ids
        self.used = cfg.blocks_total(self.dec_ctx + 1)
        self.used += sum(cfg.blocks_for(p) for p in self.prefilling.values())
        if cfg.reserve_full:
            self.reserved = cfg.blocks_total(self.inp[ids] + self.out[ids])
            self.reserved += sum(cfg.blocks_for(self.inp[r] + self.out[r]) for r in self.prefilling)

    def preempt_if_short(self) -> None:
        """Free the newest sequences (to be recomputed later) until this step's KV fits."""
        cfg = self.cfg
        while self.used > cfg.kv_blocks and (self.dec_ids.size or self.prefilling):
            victim = max(self.admitted_at, key=self.admitted_at.__getitem__)
            if victim in self.prefilling:
                self.used -= cfg.blocks_for(self.prefilling.pop(victim))
            else:
                pos = int(np.nonzero(self.dec_ids == victim)[0][0])
                self.used -= cfg.blocks_for(self.dec_ctx[pos] + 1)
                self.dec_ids, self.dec_ctx = (
                    np.delete(self.dec_ids, pos),
                    np.delete(self.dec_ctx, pos),
                )
            del self.admitted_at[victim]
            self.target[victim] = self.inp[victim] + self.generated[victim]
            self.cached[victim] = 0  # its KV is gone: recomputed here
            self.waiting.appendleft(victim)
            self.preemptions += 1

    # -- one iteration ----------------------------------------------------------------------
    def schedule_prefills(self) -> list[tuple[int, int, int]]:
        """(request, chunk tokens, tokens already prefilled) within this step's token budget:
        running prefills first, then waiting requests in FCFS order."""
        cfg = self.cfg
        budget = cfg.max_num_batched_tokens - int(self.dec_ids.size)
        chunks: list[tuple[int, int, int]] = []
        for rid, done_tokens in self.prefilling.items():
            if budget <= 0:
                break
            chunk = min(int(self.target[rid]) - done_tokens, budget)
            chunks.append((rid, chunk, done_tokens))
            budget -= chunk
        running = len(self.prefilling) + int(self.dec_ids.size)
        while self.waiting and budget > 0 and running < cfg.max_num_seqs:
            rid = self.waiting[0]
            start, chunk = self.admission(rid, budget)
            if (not cfg.chunked_prefill and chunk > budget and chunks) or not self.can_admit(rid, start + chunk):
                break
            self.waiting.popleft()
            self.used += cfg.blocks_for(start + chunk)
            self.prefilling[rid] = start
            self.admitted_at[rid] = self.admit_counter
            self.admit_counter += 1
            chunks.append((rid, chunk, start))
            budget -= chunk
            running += 1
        return chunks

    def admission(self, rid: int, budget: int) -> tuple[int, int]:
        """(tokens whose KV came with the request, first chunk): the last prompt token is computed here."""
        start = int(min(self.cached[rid], self.target[rid] - 1))
        need = int(self.target[rid]) - start
        return start, (min(need, budget) if self.cfg.chunked_prefill else need)

    def can_admit(self, rid: int, chunk: int) -> bool:
        cfg = self.cfg
        if self.used + cfg.blocks_for(chunk) > cfg.kv_blocks:
            return False
        if not cfg.reserve_full:
            return True
        promise = cfg.blocks_for(self.inp[rid] + self.out[rid])
        if self.reserved + promise > cfg.kv_blocks and (self.dec_ids.size or self.prefilling):
            return False
        self.reserved += promise
        return True

    def shape(self, chunks: list[tuple[int, int, int]]) -> StepShape:
        w = self.window
        tokens, sampled, pairs, pairs_w, kv_f, kv_w = decode_part(self.dec_ctx, w, self.k)
        finishing = 0
        for rid, c, p in chunks:
            pairs += c * (p + (c + 1) / 2.0)
            kv_f += p + c
            if w:
                pairs_w += c * min(p + (c + 1) / 2.0, w)
                kv_w += min(p + c, w)
            finishing += int(p + c >= self.target[rid])
        tokens += sum(c for _, c, _ in chunks)
        return StepShape(tokens, sampled + finishing, pairs, pairs_w, kv_f, kv_w)

    def advance_decode(self, steps: int) -> int:
        """Credit ``steps`` steps of tokens to every decoding sequence; returns the tokens emitted."""
        ids = self.dec_ids
        if not ids.size:
            return 0
        gained: int | np.ndarray = steps  # one token a step: the run length never passes an output's end
        if self.per_step != 1.0:
            owed = self.credit[ids] + steps * self.per_step
            whole = np.floor(owed + 1e-9)
            self.credit[ids] = owed - whole
            gained = np.minimum(whole.astype(np.int64), self.out[ids] - self.generated[ids])
        self.generated[ids] += gained
        self.dec_ctx = self.dec_ctx + gained
        ended = self.generated[ids] >= self.out[ids]
        if ended.any():
            for rid in ids[ended]:
                self.finished(int(rid))
            self.dec_ids, self.dec_ctx = ids[~ended], self.dec_ctx[~ended]
        return steps * int(ids.size) if isinstance(gained, int) else int(gained.sum())

    def advance_prefills(self, chunks: list[tuple[int, int, int]]) -> int:
        """Advance the prefill chunks; returns the first tokens they sampled."""
        new_ids: list[int] = []
        sampled = 0
        for rid, c, p in chunks:
            self.prefilling[rid] = p + c
            if p + c < self.target[rid]:
                continue
            del self.prefilling[rid]
            if self.generated[rid] == 0:
                self.first[rid] = self.now
            if self.generated[rid] < self.out[rid]:
                self.generated[rid] += 1  # the last prefill chunk samples a token
                sampled += 1
            if self.generated[rid] >= self.out[rid]:
                self.finished(rid)
            else:
                new_ids.append(rid)
        if new_ids:
            ids = np.array(new_ids, dtype=np.int64)
            self.dec_ids = np.concatenate([self.dec_ids, ids])
            self.dec_ctx = np.concatenate([self.dec_ctx, self.target[ids]])
        return sampled

    def decode_time_s(self, contexts: np.ndarray) -> float:  # speculation: verify and draft
        return self.eng.step_time_s(_decode_shape(contexts, self.window, self.k), self.eng.drafter_time_s(contexts))

    def fast_forward(self) -> bool:
        """Run several pure-decode steps at once when nothing else can change meanwhile."""
        if self.prefilling or not self.dec_ids.size:
            return False
        run = _decode_run_length(self)
        if run < 2:
            return False
        dt = self.decode_time_s(self.dec_ctx + (run - 1) * self.per_step / 2.0)
        self.now += run * dt
        n = int(self.dec_ids.size)
        self.record(dt, n, n, run, self.advance_decode(run))
        return True

    def iterate(self) -> None:
        self.kv_in_use()
        self.preempt_if_short()
        if self.fast_forward():
            return
        chunks = self.schedule_prefills()
        dt = self.eng.step_time_s(self.shape(chunks), self.eng.drafter_time_s(self.dec_ctx))
        self.now += dt
        n = int(self.dec_ids.size)
        emitted = self.advance_decode(1) + self.advance_prefills(chunks)
        self.record(dt, n, n + len(chunks), 1, emitted)

    def result(self) -> SimResult:
        cols = list(zip(*self.steps, strict=True)) if self.steps else [(), (), (), (), (), ()]
        steps, dec, seqs, kv, rep, emitted = (np.array(c) for c in cols)
        return SimResult(
            self.sent,
            self.first,
            self.finish,
            self.inp,
            self.out,
            steps,
            dec,
            seqs,
            kv,
            self.preemptions,
            rep,
            emitted,
        )


def _simulate_engine(
    replica: Replica, cfg: SchedulerConfig, req: Requests, concurrency: int | None, max_steps: int
) -> SimResult:
    """Run every request through one engine to completion (or until ``max_steps``)."""
    if cfg.kv_blocks < cfg.blocks_for(1) or cfg.max_num_seqs < 1:
        raise InputError("the KV cache cannot hold a single token; the deployment does not fit")
    sim = _Sim(replica, cfg, req, concurrency)
    for _ in range(max_steps):
        if sim.done >= sim.n or not sim.admit_arrivals():
            break
        sim.iterate()
    return sim.result()


def _decode_run_length(sim: _Sim) -> int:
    """How many pure-decode steps can run before anything else can change: a sequence
    finishes, a waiting request becomes admissible, or the KV cache could run short.
    Decode step time is linear in context (weights fixed, KV reads grow), so the run is
    priced exactly at its midpoint context."""
    cfg, ids = sim.cfg, sim.dec_ids
    left = sim.out[ids] - sim.generated[ids]  # steps until the first finishes: floor(credit + s E) >= left
    owed = left if sim.per_step == 1.0 else np.ceil((left - sim.credit[ids]) / sim.per_step - 1e-9)
    steps = max(int(owed.min()), 1)
    n = int(ids.size)
    if not cfg.reserve_full:
        steps = _steps_until_kv_full(cfg, sim.dec_ctx, steps, sim.used, sim.per_step)
    full = n >= cfg.max_num_seqs
    if sim.waiting and not full:
        head = sim.waiting[0]
        start, chunk = sim.admission(head, cfg.max_num_batched_tokens - n)
        fits = chunk > 0 and sim.used + cfg.blocks_for(start + chunk) <= cfg.kv_blocks
        if cfg.reserve_full:
            fits = fits and sim.reserved + cfg.blocks_for(sim.inp[head] + sim.out[head]) <= cfg.kv_blocks
        if fits:
            return 0
    if not sim.waiting and not full and sim.next_arrival < len(sim.order):
        gap = float(sim.arrival[sim.order[sim.next_arrival]]) - sim.now
        if not np.isfinite(gap):
            return steps
        dt = sim.decode_time_s(sim.dec_ctx + steps * sim.per_step) if steps else 0.0
        steps = min(steps, int(gap // dt)) if dt > 0 else steps
    return steps


def _steps_until_kv_full(
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


def _decode_shape(contexts: np.ndarray, window: int | None, k: int = 0) -> StepShape:
    return StepShape(*decode_part(contexts, window, k))


def simulate(
    replica: Replica,
    req: Requests,
    *,
    replicas: int = 1,
    concurrency: int | None = None,
    max_steps: int = 5_000_000,
) -> SimResult:
    """Serve ``req`` on ``replicas`` copies of ``replica``, each running its pipeline stages as
    interleaved virtual engines. Requests go round-robin to the engines; ``max_steps`` is
    shared among them.

    With ``concurrency`` (closed loop) the first ``concurrency`` requests start at t=0 and
    each completion releases the next request at that moment.
    """
    engines = max(replicas, 1) * replica.num_virtual_engines
    cfg = replica.virtual_engine
    if engines == 1:
        return _simulate_engine(replica, cfg, req, concurrency, max_steps)
    parts, index = [], []
    for r in range(engines):
        sub = req.every(r, engines)
        if len(sub) == 0:
            continue
        share = None if concurrency is None else max(math.ceil(concurrency / engines), 1)
        parts.append(_simulate_engine(replica, cfg, sub, share, max(max_steps // engines, 1)))
        index.append(np.arange(len(req))[r::engines])
    return _merge(parts, np.concatenate(index))


def _merge(parts: list[SimResult], index: np.ndarray) -> SimResult:
    """One result from the engines' parts: per-request arrays back in the requests' order
    (``index``: each part's requests, concatenated), per-step records one after another."""
    cat = np.concatenate

    def ordered(arrays: list[np.ndarray]) -> np.ndarray:
        merged = cat(arrays)
        out = np.empty_like(merged)
        out[index] = merged
        return out

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
    )
