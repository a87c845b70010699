"""The load generator: asyncio, one pooled HTTP client, open-loop arrivals or a fixed
concurrency, per-request records handed to a callback as they complete.

Definitions (as ``vllm bench serve`` where they agree):
* TTFT = time of the first chunk with non-empty content - the *scheduled* send time, so
  waiting for a concurrency slot or a late send counts; role-only chunks do not count.
* ITL = gaps between consecutive content chunks; E2E ends at the last content chunk;
  TPOT = (E2E - TTFT) / (output tokens - 1).
* Output tokens come from the server's ``usage``; without it, from the content chunks
  (flagged ``tokens_source = 'chunks'``).
* Outcomes: see :mod:`inferplan.bench.record`. Every request that was sent is handed to
  ``on_record`` exactly once, also when the run is cancelled while it is in flight.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from inferplan.bench.deadline import Deadline, Timeouts, bounded
from inferplan.bench.http import HttpError, PooledTransport, ProtocolError, Transport, read_all
from inferplan.bench.record import CANCELLED, Prompt, RequestRecord
from inferplan.bench.sse import DONE, MalformedStream, SseParser, parse_chunk
from inferplan.errors import InputError
from inferplan.perf.workload import Arrivals

__all__ = ["BenchConfig", "Prompt", "RequestRecord", "run_load", "schedule", "send_request", "server_root"]

ERROR_BODY_BYTES = 64 << 10


def server_root(url: str) -> str:
    """The server's root from a base URL given with or without ``/v1`` (and a trailing /)."""
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/")
    path = path.removesuffix("/v1")
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


@dataclass(frozen=True, slots=True)
class BenchConfig:
    url: str
    model: str
    arrivals: Arrivals
    endpoint: str = "completions"  # or "chat"
    timeouts: Timeouts = field(default_factory=Timeouts)
    duration_s: float | None = None
    seed: int = 0
    ignore_eos: bool = True
    max_concurrency: int | None = None
    headers: tuple[tuple[str, str], ...] = ()  # sent with every request, never stored

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(f"--url '{self.url}' must be http:// or https:// and a host, e.g. http://127.0.0.1:8000")
        if self.endpoint not in ("completions", "chat"):
            raise InputError("--endpoint must be completions or chat")

    @property
    def root(self) -> str:
        return server_root(self.url)

    def transport(self) -> PooledTransport:
        return PooledTransport(self.root, dict(self.headers))


def _body(cfg: BenchConfig, prompt: Prompt) -> tuple[str, dict[str, object]]:
    common: dict[str, object] = {
        "model": prompt.model or cfg.model,
        "max_tokens": prompt.max_tokens,
        "stream": True,
        "temperature": 0.0,
        "stream_options": {"include_usage": True},
    }
    if cfg.ignore_eos:
        common["ignore_eos"] = True
    if prompt.salt is not None:
        common["cache_salt"] = prompt.salt
    if cfg.endpoint == "chat":
        turns = prompt.messages or (("user", prompt.text),)
        return f"{cfg.root}/v1/chat/completions", {
            **common,
            "messages": [{"role": role, "content": content} for role, content in turns],
        }
    return f"{cfg.root}/v1/completions", {**common, "prompt": prompt.text}


class _StreamState:
    """What one response stream has shown so far."""

    __slots__ = ("deadline", "finished", "parser", "reply", "t0", "text_chunks", "usage_tokens")

    def __init__(self, t0: float, keep_reply: bool = False) -> None:
        self.t0 = t0  # the run's clock origin (perf_counter)
        self.reply: list[str] | None = [] if keep_reply else None
        self.parser = SseParser()
        self.finished = False
        self.text_chunks = 0
        self.usage_tokens: int | None = None
        self.deadline: Deadline | None = None

    def consume(self, rec: RequestRecord, raw: bytes, now: float) -> None:
        for payload in self.parser.feed(raw):
            self._payload(rec, payload, now)

    def end(self, rec: RequestRecord, now: float) -> None:
        for payload in self.parser.flush():
            self._payload(rec, payload, now)

    def _payload(self, rec: RequestRecord, payload: str, now: float) -> None:
        if payload.strip() == DONE:
            self.finished = True
            return
        chunk = parse_chunk(payload)
        if chunk.content:
            self.text_chunks += 1
            if self.reply is not None:
                self.reply.append(chunk.content)
            rec.chunk_times_s.append(now)
            if chunk.sent_s is not None:
                rec.server_times_s.append(chunk.sent_s - self.t0)
            if chunk.received_s is not None:
                rec.server_received_s = chunk.received_s - self.t0
        if chunk.completion_tokens is not None:
            self.usage_tokens = chunk.completion_tokens
        if chunk.prompt_tokens is not None:
            rec.input_tokens = chunk.prompt_tokens
        self.finished = self.finished or chunk.finish_reason is not None


async def _exchange(
    client: Transport, cfg: BenchConfig, rec: RequestRecord, prompt: Prompt, state: _StreamState
) -> None:
    t0 = state.t0
    url, body = _body(cfg, prompt)
    async with client.post(url, body, state.deadline) as resp:
        rec.http_status = resp.status
        if resp.status != 200:
            rec.error = f"http_{resp.status}"
            retry = resp.headers.get("retry-after")
            text = (await read_all(resp.body, ERROR_BODY_BYTES))[:200].decode("utf-8", errors="replace")
            rec.detail = (f"retry-after {retry[:20]}; " if retry else "") + text
            return
        async for raw in resp.body:
            state.consume(rec, raw, time.perf_counter() - t0)
        state.end(rec, time.perf_counter() - t0)


def _finish(rec: RequestRecord, state: _StreamState) -> None:
    """Token counts and first-token time from what arrived; a 200 that showed no content or
    no end becomes an 'empty' / 'early_end' failure."""
    if rec.chunk_times_s:
        rec.first_token_s = rec.chunk_times_s[0]
    if state.reply is not None:
        rec.reply = "".join(state.reply)
    if state.usage_tokens is not None:
        rec.output_tokens = state.usage_tokens
    else:
        rec.output_tokens, rec.tokens_source = state.text_chunks, "chunks"
    if rec.error:
        return
    if not state.text_chunks:
        rec.error, rec.detail = "empty", "HTTP 200 but no content"
    elif not state.finished:
        rec.error, rec.detail = "early_end", "the stream closed before a finish reason or [DONE]"


def _broken(rec: RequestRecord, state: _StreamState, exc: BaseException) -> None:
    if state.text_chunks:  # the server cut a stream that had started
        rec.error, rec.detail = "early_end", f"connection closed after {state.text_chunks} chunk(s)"
    else:
        rec.error, rec.detail = "connection", f"{type(exc).__name__}: {exc}"[:200]


async def _one(client: Transport, cfg: BenchConfig, rec: RequestRecord, prompt: Prompt, t0: float) -> None:
    rec.input_tokens = prompt.input_tokens
    state = _StreamState(t0, prompt.keep_reply)
    rec.sent_s = time.perf_counter() - t0
    try:
        async with bounded(cfg.timeouts) as state.deadline:
            await _exchange(client, cfg, rec, prompt, state)
    except TimeoutError:
        rec.error, rec.detail = state.deadline.outcome() if state.deadline else ("timeout", "")
    except MalformedStream as exc:
        rec.error, rec.detail = exc.kind, str(exc)[:200]
    except ProtocolError as exc:
        rec.error, rec.detail = "protocol", str(exc)[:200]
    except (HttpError, OSError, asyncio.IncompleteReadError) as exc:
        _broken(rec, state, exc)
    except asyncio.CancelledError:
        rec.error, rec.detail = CANCELLED, f"the run was interrupted after {state.text_chunks} chunk(s)"
        raise
    except Exception as exc:  # any other surprise in the server's bytes fails this request only
        rec.error, rec.detail = "malformed", f"{type(exc).__name__}: {exc}"[:200]
    finally:
        rec.end_s = time.perf_counter() - t0
        _finish(rec, state)
        if rec.detail and not rec.detail.isprintable():  # server bytes never reach a terminal raw
            rec.detail = "".join(c if c.isprintable() else " " for c in rec.detail)


async def send_request(client: Transport, cfg: BenchConfig, rec: RequestRecord, prompt: Prompt, t0: float) -> None:
    """Send one request and fill ``rec`` (times on the clock started at ``t0``); never raises but for
    cancellation, which leaves ``rec`` marked cancelled."""
    await _one(client, cfg, rec, prompt, t0)


def schedule(cfg: BenchConfig, n: int) -> list[RequestRecord]:
    """``n`` requests, numbered from 0, at the times ``cfg``'s arrivals give (0 for a fixed
    concurrency, whose requests are stamped when a stream takes them)."""
    arr = cfg.arrivals
    times = arr.times(random.Random(cfg.seed), n) if arr.kind in ("poisson", "gamma") else [0.0] * n
    return [RequestRecord(i, float(times[i])) for i in range(n)]


async def run_load(
    cfg: BenchConfig,
    prompts: list[Prompt],
    on_record: Callable[[RequestRecord], None],
    transport: Transport | None = None,
    records: list[RequestRecord] | None = None,
) -> list[RequestRecord]:
    """Send every prompt (bounded by ``cfg.duration_s``); each finished record goes to
    ``on_record`` at once, so an interrupted run keeps everything already measured.
    ``records``: the requests already scheduled, one per prompt in order (a worker's share of
    a schedule split over several, :mod:`inferplan.bench.distributed`); default :func:`schedule`."""
    n = len(prompts)
    arr = cfg.arrivals
    slots = arr.concurrency if arr.kind == "concurrency" else (cfg.max_concurrency or n)
    records = schedule(cfg, n) if records is None else records
    if len(records) != n:
        raise InputError(f"{len(records)} scheduled requests for {n} prompts")
    sem = asyncio.Semaphore(max(slots, 1))
    client = transport or cfg.transport()
    t0 = time.perf_counter()
    deadline = cfg.duration_s

    def expired() -> bool:
        return deadline is not None and time.perf_counter() - t0 > deadline

    async def send(rec: RequestRecord, prompt: Prompt) -> None:
        try:
            await _one(client, cfg, rec, prompt, t0)
        finally:
            on_record(rec)  # also when cancelled in flight

    async def fire(rec: RequestRecord, prompt: Prompt) -> None:
        delay = rec.scheduled_s - (time.perf_counter() - t0)
        if delay > 0:
            await asyncio.sleep(delay)
        if expired():
            return
        async with sem:  # a capped open loop: time waiting for a slot counts in TTFT
            await send(rec, prompt)

    queue = zip(records, prompts, strict=True)

    async def worker() -> None:
        for rec, prompt in queue:
            if expired():
                return
            rec.scheduled_s = time.perf_counter() - t0
            await send(rec, prompt)

    try:
        if arr.kind == "concurrency":
            await asyncio.gather(*(worker() for _ in range(min(slots, n))))
        else:
            await asyncio.gather(*(fire(r, p) for r, p in zip(records, prompts, strict=True)))
    finally:
        await client.aclose()
    return [r for r in records if not math.isnan(r.sent_s)]  # the ones actually sent
