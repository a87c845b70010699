"""Iteration-level simulation of a vLLM-style engine: continuous batching, chunked prefill,
a paged KV cache with preemption (recompute) when it runs out.

Each iteration: every decoding sequence gets one token; the rest of the token budget goes
to prefill chunks (running ones first, then new arrivals in FCFS order, while sequences and
KV blocks last); the step is priced by :class:`~inferplan.perf.StepCostModel`.
Speculation (perf/speculative.py): decoding sequences verify k + 1 tokens, the drafter's time is
added, each is credited E tokens per step. ``Requests.cached_tokens`` arrive with their KV. Issue 13
(perf/sim_features.py): the prefix cache sets the tokens a request finds cached, LoRA adapters limit
which requests may run together and add to each step; a conversation's next turn arrives a think
time after its previous one finished.
"""

from __future__ import annotations

import heapq
import math
from collections import deque

import numpy as np

from inferplan.errors import InputError
from inferplan.perf.decode_runs import decode_run_length
from inferplan.perf.replica import Replica, SchedulerConfig
from inferplan.perf.roofline import StepShape
from inferplan.perf.sim_features import SimFeatures, computed_tokens
from inferplan.perf.sim_result import SimResult, merge_results
from inferplan.perf.speculative import decode_part
from inferplan.perf.workload import Requests

__all__ = ["SimResult", "simulate"]


class _Sim:
    """Mutable state of one simulated engine; one method per scheduler phase."""

    def __init__(self, replica: Replica, cfg: SchedulerConfig, req: Requests, concurrency: int | None) -> None:
        self.cfg, self.eng = cfg, replica
        n = self.n = len(req)
        self.arrival = req.arrival_s.astype(float).copy()
        self.inp, self.out = req.input_tokens.astype(np.int64), req.output_tokens.astype(np.int64)
        self.first, self.finish = np.full(n, np.nan), np.full(n, np.nan)
        self.concurrency = concurrency
        links = req.links  # issue 13: a turn arrives when its predecessor finished, plus think time
        self.successor = links.successors() if links is not None else None
        self.think = links.think_s if links is not None else None
        self.starts = [i for i in range(n) if links is None or links.follows[i] < 0]  # users' queue
        if links is not None:
            self.arrival[links.follows >= 0] = np.inf
        if concurrency is not None:
            self.arrival[:] = np.inf
            self.arrival[self.starts[:concurrency]] = 0.0
        self.released = min(concurrency, len(self.starts)) if concurrency is not None else n
        self.pending = [(float(t), i) for i, t in enumerate(self.arrival) if np.isfinite(t)]
        heapq.heapify(self.pending)
        self.fx = SimFeatures(replica, cfg, req) if SimFeatures.wanted(replica, req) else None
        self.waiting: deque[int] = deque()
        self.generated = np.zeros(n, dtype=np.int64)
        self.target = self.inp.copy()  # tokens to prefill: the prompt, plus outputs after preemption
        self.prefilling: dict[int, int] = {}  # request -> tokens prefilled so far
        self.admitted_at: dict[int, int] = {}
        self.admit_counter = 0
        self.dec_ids = np.empty(0, dtype=np.int64)
        self.dec_ctx = np.empty(0, dtype=np.int64)
        self.now = 0.0
        self.done = 0
        self.preemptions = 0
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

    def arrive(self, rid: int, at: float) -> None:
        self.arrival[rid] = at
        heapq.heappush(self.pending, (at, rid))

    def finished(self, rid: int) -> None:
        self.finish[rid] = self.now
        del self.admitted_at[rid]
        self.done += 1
        if self.fx is not None:
            self.fx.let_go(rid, computed_tokens(int(self.inp[rid]), int(self.generated[rid])), done=True)
        nxt = int(self.successor[rid]) if self.successor is not None else -1
        if nxt >= 0 and self.think is not None:
            self.arrive(nxt, self.now + float(self.think[nxt]))  # the conversation's next turn
        elif self.concurrency is not None and self.released < len(self.starts):
            self.arrive(self.starts[self.released], self.now)  # closed loop: the next user arrives
            self.released += 1

    def next_arrival_s(self) -> float:
        return self.pending[0][0] if self.pending else math.inf

    def admit_arrivals(self) -> bool:
        """Queue arrived requests; jump the clock when idle. False when nothing is left."""
        while self.pending and self.pending[0][0] <= self.now:
            self.waiting.append(heapq.heappop(self.pending)[1])
        if self.prefilling or self.dec_ids.size or self.waiting:
            return True
        if not self.pending:
            return False
        self.now = self.pending[0][0]
        return self.admit_arrivals()

    def kv_in_use(self) -> None:
        """Blocks this step's sequences need (and, under reserve_full, have been promised)."""
        cfg, ids = self.cfg, self.dec_ids
        self.used = cfg.blocks_total(self.dec_ctx + 1)
        self.used += sum(cfg.blocks_for(p) for p in self.prefilling.values())
        if self.fx is not None:  # shared cached blocks are held once; the rest of the pool keeps the cache
            self.used -= self.fx.duplicates()
            self.fx.trim(cfg.kv_blocks - self.used)
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
            if self.fx is not None:
                self.fx.let_go(victim, computed_tokens(int(self.inp[victim]), int(self.generated[victim])), done=False)
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
            pick = self.fx.pick(self.waiting) if self.fx is not None else 0
            if pick is None:
                break
            rid = self.waiting[pick]
            if self.fx is not None and not self.look_up(rid, pick):
                continue
            start, chunk = self.admission(rid, budget)
            shared = self.fx.shared_blocks(rid, start) if self.fx is not None else 0
            if (not cfg.chunked_prefill and chunk > budget and chunks) or not self.can_admit(
                rid, start + chunk, shared
            ):
                break
            del self.waiting[pick]
            self.used += cfg.blocks_for(start + chunk) - shared
            if self.fx is not None:
                self.fx.count(rid, int(self.inp[rid]), start)
                self.fx.hold(rid, start + chunk)
                self.fx.adapter_on(rid)
            self.prefilling[rid] = start
            self.admitted_at[rid] = self.admit_counter
            self.admit_counter += 1
            chunks.append((rid, chunk, start))
            budget -= chunk
            running += 1
        return chunks

    def look_up(self, rid: int, pick: int) -> bool:
        """Issue 13: the tokens ``rid`` finds in the prefix cache; False when it must first wait for
        blocks copied back from host memory (it queues again once they are)."""
        assert self.fx is not None
        hit, wait_s = self.fx.lookup(rid, int(self.target[rid]))
        self.cached[rid] = hit
        if wait_s > 0:
            del self.waiting[pick]
            heapq.heappush(self.pending, (self.now + wait_s, rid))
            return False
        return True

    def admission(self, rid: int, budget: int, peek: bool = False) -> tuple[int, int]:
        """(tokens whose KV came with the request or is cached, first chunk): the last prompt token is
        computed here. ``peek``: as the prefix cache stands now, nothing looked up."""
        cached = (
            max(self.cached[rid], self.fx.peek(rid, int(self.target[rid]))) if peek and self.fx else self.cached[rid]
        )
        start = int(min(cached, self.target[rid] - 1))
        need = int(self.target[rid]) - start
        return start, (min(need, budget) if self.cfg.chunked_prefill else need)

    def can_admit(self, rid: int, chunk: int, shared: int = 0) -> bool:
        cfg = self.cfg
        if self.used + cfg.blocks_for(chunk) - shared > cfg.kv_blocks:
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
            if self.fx is not None:
                self.fx.hold(rid, int(self.target[rid]))
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
        shape = StepShape(*decode_part(contexts, self.window, self.k))
        adapters = self.fx.adapters() if self.fx is not None else None
        return self.eng.step_time_s(shape, self.eng.drafter_time_s(contexts), adapters)

    def fast_forward(self) -> bool:
        """Run several pure-decode steps at once when nothing else can change meanwhile."""
        if self.prefilling or not self.dec_ids.size:
            return False
        run = decode_run_length(self)
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
        fx = self.fx
        adapters = fx.adapters() if fx is not None else None
        dt = self.eng.step_time_s(self.shape(chunks), self.eng.drafter_time_s(self.dec_ctx), adapters)
        dt += fx.step_extra_s() if fx is not None else 0.0  # adapters loaded for this step
        self.now += dt
        n = int(self.dec_ids.size)
        emitted = self.advance_decode(1) + self.advance_prefills(chunks)
        self.record(dt, n, n + len(chunks), 1, emitted)

    def result(self) -> SimResult:
        cols = list(zip(*self.steps, strict=True)) if self.steps else [(), (), (), (), (), ()]
        steps, dec, seqs, kv, rep, emitted = (np.array(c) for c in cols)
        return SimResult(
            self.arrival,
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
            self.fx.stats() if self.fx is not None else None,
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
        sub, where = req.share(r, engines)
        if len(sub) == 0:
            continue
        share = None if concurrency is None else max(math.ceil(concurrency / engines), 1)
        parts.append(_simulate_engine(replica, cfg, sub, share, max(max_steps // engines, 1)))
        index.append(where)
    return merge_results(parts, np.concatenate(index))
