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
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from inferplan.bench.client import BenchConfig, send_request
from inferplan.bench.record import Prompt, RequestRecord
from inferplan.perf.sessions import TrafficShape
from inferplan.perf.workload import Arrivals

__all__ = ["Session", "SessionTraffic", "make_sessions", "run_sessions", "turn_prompt"]


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
