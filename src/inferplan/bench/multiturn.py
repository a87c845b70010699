"""Traffic with structure against a real server (issue 13): multi-turn sessions, shared system prompts
and requests spread over LoRA adapters, the same shapes the simulator models (perf/sessions.py).

* A session's turn ``k`` sends the conversation so far: on the chat endpoint the messages (a
  shared system prompt first, then each earlier message and the reply the server streamed), on the
  completions endpoint the same as one text. Turn ``k + 1`` is sent ``think_time_s`` after turn
  ``k`` finished; a failed turn ends its session.
* Each session opens with one of the shared prompts and asks for one of the adapters (the request's
  ``model``), both drawn uniformly with the run's seed.
* ``isolate_cache``: every request carries its own vLLM ``cache_salt``, so no request can reuse
  another's KV (the same server measured without prefix caching).
* A closed loop of ``C`` users runs ``C`` sessions at a time; a request rate ``R`` starts sessions
  at ``R / turns`` per second. Record ``s x turns + k`` is session ``s``'s turn ``k``.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from inferplan.bench.client import BenchConfig, send_request
from inferplan.bench.record import Prompt, RequestRecord
from inferplan.errors import ConfigError
from inferplan.perf.prompt_paths import RequestLinks, Segments
from inferplan.perf.sessions import MAX_TURNS, TrafficShape
from inferplan.perf.workload import Arrivals, Requests

__all__ = ["Session", "SessionTraffic", "make_sessions", "recorded_sessions", "run_sessions", "turn_prompt"]


@dataclass(frozen=True, slots=True)
class SessionTraffic:
    """The shape, the shared prompts' texts and token counts, the adapters' names."""

    shape: TrafficShape
    prefixes: tuple[str, ...] = ()
    prefix_tokens: tuple[int, ...] = ()
    models: tuple[str, ...] = ()
    isolate_cache: bool = False

    def stored(self, sessions: list[Session]) -> dict[str, object]:
        """What the run keeps: enough to replay its requests through the simulator."""
        s = self.shape
        return {
            "turns": s.turns,
            "think_time_s": s.think_time_s,
            "shared_prefixes": s.shared_prefixes,
            "shared_prefix_tokens": s.shared_prefix_tokens,
            "prefix_tokens_counted": list(self.prefix_tokens),
            "prefix_of_session": [x.prefix for x in sessions],
            "adapters": list(self.models),
            "adapter_of_session": [x.model for x in sessions],
            "isolate_cache": self.isolate_cache,
            "order": "request index = session x turns + turn",
        }


@dataclass(frozen=True, slots=True)
class Session:
    index: int
    prefix: int  # -1: none
    model: str | None  # an adapter's name (None: the run's model)
    messages: tuple[Prompt, ...]  # each turn's new message and its output length


def make_sessions(traffic: SessionTraffic, messages: list[Prompt], seed: int) -> list[Session]:
    """Sessions of ``turns`` messages each, in order, with their shared prompt and adapter drawn."""
    rng = random.Random(seed + 3)
    turns = traffic.shape.turns
    out = []
    for s in range(len(messages) // turns):
        prefix = rng.randrange(len(traffic.prefixes)) if traffic.prefixes else -1
        model = rng.choice(traffic.models) if traffic.models else None
        out.append(Session(s, prefix, model, tuple(messages[s * turns : (s + 1) * turns])))
    return out


def turn_prompt(traffic: SessionTraffic, session: Session, history: list[tuple[str, str]], chat: bool) -> Prompt:
    """Turn ``len(history)`` of ``session``: the conversation so far (``history``: earlier messages and
    the replies streamed back) and the new message."""
    msg = session.messages[len(history)]
    prefix = traffic.prefixes[session.prefix] if session.prefix >= 0 else ""
    salt = uuid.uuid4().hex if traffic.isolate_cache else None
    keep = traffic.shape.turns > 1
    earlier = sum(p.input_tokens + p.max_tokens for p in session.messages[: len(history)])
    tokens = (traffic.prefix_tokens[session.prefix] if prefix else 0) + earlier + msg.input_tokens
    if chat:
        turns: list[tuple[str, str]] = [("system", prefix)] if prefix else []
        for said, reply in history:
            turns += [("user", said), ("assistant", reply)]
        turns.append(("user", msg.text))
        return Prompt(msg.text, tokens, msg.max_tokens, tuple(turns), session.model, salt, keep)
    text = prefix
    for said, reply in history:
        text = (f"{text} " if text else "") + said + reply
    text = (f"{text} " if text else "") + msg.text
    return Prompt(text, tokens, msg.max_tokens, None, session.model, salt, keep)


async def run_sessions(
    cfg: BenchConfig,
    traffic: SessionTraffic,
    sessions: list[Session],
    on_record: Callable[[RequestRecord], None],
) -> list[RequestRecord]:
    """Run every session (bounded by ``cfg.duration_s``); each finished record goes to ``on_record``."""
    turns, think = traffic.shape.turns, traffic.shape.think_time_s
    arr = cfg.arrivals
    client = cfg.transport()
    sent: list[RequestRecord] = []
    sem = asyncio.Semaphore(max(cfg.max_concurrency or len(sessions) * turns, 1))
    t0 = time.perf_counter()

    def expired() -> bool:
        return cfg.duration_s is not None and time.perf_counter() - t0 > cfg.duration_s

    async def one_session(s: Session) -> None:
        history: list[tuple[str, str]] = []
        for _ in range(turns):
            if expired():
                return
            rec = RequestRecord(s.index * turns + len(history), time.perf_counter() - t0)
            prompt = turn_prompt(traffic, s, history, cfg.endpoint == "chat")
            async with sem:
                sent.append(rec)
                try:
                    await send_request(client, cfg, rec, prompt, t0)
                finally:
                    on_record(rec)  # also when cancelled in flight
            if not rec.ok:
                return  # the conversation cannot go on without its reply
            history.append((prompt.messages[-1][1] if prompt.messages else s.messages[len(history)].text, rec.reply))
            if len(history) < turns and think > 0:
                await asyncio.sleep(think)

    async def user(queue: Iterator[Session]) -> None:
        for s in queue:
            await one_session(s)

    async def timed(s: Session, start_s: float) -> None:
        delay = start_s - (time.perf_counter() - t0)
        if delay > 0:
            await asyncio.sleep(delay)
        await one_session(s)

    try:
        if arr.kind == "concurrency":
            queue = iter(sessions)
            await asyncio.gather(*(user(queue) for _ in range(min(arr.concurrency, len(sessions)))))
        else:
            rate = Arrivals(arr.kind, rate_per_s=arr.rate_per_s / turns, cv=arr.cv)
            starts = rate.times(random.Random(cfg.seed), len(sessions))
            await asyncio.gather(*(timed(s, float(t)) for s, t in zip(sessions, starts, strict=True)))
    finally:
        await client.aclose()
    return sent


def _ints(stored: Mapping[str, Any], key: str) -> list[int]:
    raw = stored.get(key) or []
    if not isinstance(raw, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in raw):
        raise ConfigError(f"the run's stored traffic has no readable {key}: it cannot be replayed as sessions")
    return raw


def recorded_sessions(records: list[RequestRecord], stored: Mapping[str, Any]) -> Requests:
    """The requests a multi-turn run sent, as the simulator replays them: each session's first turn
    at the time it was sent, each later turn released by the one before it plus the think time,
    every prompt made of the segments it shares (the session's system prompt, the earlier
    messages and replies) so that a prefix cache hits what the server's could. ``records``: the
    run's successful requests (record ``s x turns + k`` is session ``s``'s turn ``k``);
    ``stored``: what :meth:`SessionTraffic.stored` kept. A request's new message is its prompt
    less the conversation before it (the chat template's tokens fall in it)."""
    turns, think = stored.get("turns"), stored.get("think_time_s")
    if (
        not isinstance(turns, int)
        or not 1 <= turns <= MAX_TURNS
        or not isinstance(think, int | float)
        or not 0 <= think < math.inf
    ):
        raise ConfigError("the run's stored traffic has no readable turns or think time: it cannot be replayed")
    prefix_of, prefix_tokens = _ints(stored, "prefix_of_session"), _ints(stored, "prefix_tokens_counted")
    names = [x for x in stored.get("adapters") or [] if isinstance(x, str)]
    raw_chosen = stored.get("adapter_of_session")
    chosen: list[Any] = raw_chosen if isinstance(raw_chosen, list) else []
    isolate = bool(stored.get("isolate_cache"))
    ok = sorted(records, key=lambda r: r.index)
    if not ok:
        raise ConfigError("the run has no successful request to replay")
    by_index = {r.index: i for i, r in enumerate(ok)}
    start = min(r.scheduled_s for r in ok)
    n = len(ok)
    arrival, inputs = np.full(n, np.inf), np.zeros(n, dtype=np.int64)
    follows, session = np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=np.int64)
    adapter = np.full(n, -1, dtype=np.int64)
    segs: list[Segments] = []
    next_id = len(prefix_tokens) + 1  # ids 1..N name the shared prompts
    for i, r in enumerate(ok):
        s, k = divmod(r.index, turns)
        session[i] = s
        before = by_index.get(r.index - 1) if k else None
        p = prefix_of[s] if s < len(prefix_of) else -1
        if before is not None:
            follows[i] = before
        else:
            arrival[i] = r.scheduled_s - start
        if isolate:  # its own cache salt: it shares no tokens with anything
            prompt: Segments = ((next_id, max(r.input_tokens, 1)),)
        else:
            shared = ((p + 1, prefix_tokens[p]),) if 0 <= p < len(prefix_tokens) else ()
            history = segs[before] if before is not None else shared
            known = sum(t for _, t in history)
            prompt = (*history, (next_id, max(r.input_tokens - known, 1)))
        inputs[i] = sum(t for _, t in prompt)
        segs.append((*prompt, (next_id + 1, max(r.output_tokens, 1))))
        next_id += 2
        if s < len(chosen) and isinstance(chosen[s], str) and chosen[s] in names:
            adapter[i] = names.index(chosen[s])
    think_s = np.where(follows >= 0, float(think), 0.0)
    outputs = np.array([max(r.output_tokens, 1) for r in ok], dtype=np.int64)
    links = RequestLinks(tuple(segs), follows, think_s, session)
    return Requests(arrival, inputs, outputs, None, links, adapter if (adapter >= 0).any() else None)
