"""The load generator: asyncio, one pooled HTTP client, open-loop arrivals or a fixed
concurrency, per-request records handed to a callback as they complete.

Definitions (as ``vllm bench serve`` where they agree):
* TTFT = time of the first chunk with non-empty content - the *scheduled* send time, so
  waiting for a concurrency slot or a late send counts; role-only chunks do not count.
* ITL = gaps between consecutive content chunks; TPOT = (E2E - TTFT) / (output tokens - 1).
* Output tokens come from the server's ``usage``; without it, from the content chunks
  (flagged ``tokens_source = 'chunks'``).
* Failures: HTTP status other than 200 (``http_<code>``), a 200 with no content (``empty``),
  a stream that ends without a finish reason or [DONE] (``early_end``), an unreadable
  stream (``malformed``), the per-request timeout (``timeout``), a refused or broken
  connection (``connection``).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from inferplan.bench.http import HttpError, PooledTransport, Transport
from inferplan.bench.sse import DONE, MalformedStream, SseParser, parse_chunk
from inferplan.errors import InputError
from inferplan.perf.workload import Arrivals

__all__ = ["BenchConfig", "Prompt", "RequestRecord", "run_load"]


@dataclass(frozen=True, slots=True)
class Prompt:
    text: str
    input_tokens: int
    max_tokens: int


@dataclass(slots=True)
class RequestRecord:
    index: int
    scheduled_s: float
    sent_s: float = float("nan")
    first_token_s: float = float("nan")
    end_s: float = float("nan")
    chunk_times_s: list[float] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    tokens_source: str = "usage"
    http_status: int = 0
    error: str = ""
    detail: str = ""
    server_ttft_s: float = float("nan")  # only inferplan's own local server reports these two:
    receive_delay_s: float = float("nan")  # its first-content send -> our receipt (same clock)

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def ttft_s(self) -> float:
        return self.first_token_s - self.scheduled_s

    @property
    def e2e_s(self) -> float:
        return self.end_s - self.scheduled_s


@dataclass(frozen=True, slots=True)
class BenchConfig:
    url: str
    model: str
    arrivals: Arrivals
    endpoint: str = "completions"  # or "chat"
    timeout_s: float = 120.0
    duration_s: float | None = None
    seed: int = 0
    ignore_eos: bool = True
    max_concurrency: int | None = None

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise InputError(f"--url '{self.url}' must start with http:// or https://")
        if self.endpoint not in ("completions", "chat"):
            raise InputError("--endpoint must be completions or chat")
        if not 0 < self.timeout_s <= 3600:
            raise InputError("--timeout must be between 0 and 3600 s")


def _body(cfg: BenchConfig, prompt: Prompt) -> tuple[str, dict[str, object]]:
    base = cfg.url.rstrip("/")
    common: dict[str, object] = {
        "model": cfg.model,
        "max_tokens": prompt.max_tokens,
        "stream": True,
        "temperature": 0.0,
        "stream_options": {"include_usage": True},
    }
    if cfg.ignore_eos:
        common["ignore_eos"] = True
    if cfg.endpoint == "chat":
        return f"{base}/v1/chat/completions", {**common, "messages": [{"role": "user", "content": prompt.text}]}
    return f"{base}/v1/completions", {**common, "prompt": prompt.text}


class _StreamState:
    """What one response stream has shown so far."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0  # the run's clock origin (perf_counter)
        self.parser = SseParser()
        self.finished = False
        self.text_chunks = 0

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
            rec.chunk_times_s.append(now)
            if chunk.server_times and self.text_chunks == 1:
                rec.server_ttft_s = chunk.server_times[1] - chunk.server_times[0]
                rec.receive_delay_s = time.perf_counter() - chunk.server_times[1]
        if chunk.completion_tokens is not None:
            rec.output_tokens = chunk.completion_tokens
        if chunk.prompt_tokens is not None:
            rec.input_tokens = chunk.prompt_tokens
        self.finished = self.finished or chunk.finish_reason is not None


async def _exchange(
    client: Transport, cfg: BenchConfig, rec: RequestRecord, prompt: Prompt, state: _StreamState
) -> None:
    t0 = state.t0
    url, body = _body(cfg, prompt)
    async with client.post(url, body) as resp:
        rec.http_status = resp.status
        if resp.status != 200:
            rec.error = f"http_{resp.status}"
            rec.detail = b"".join([b async for b in resp.body])[:200].decode("utf-8", errors="replace")
            return
        async for raw in resp.body:
            state.consume(rec, raw, time.perf_counter() - t0)
        state.end(rec, time.perf_counter() - t0)


def _classify(rec: RequestRecord, state: _StreamState) -> None:
    """Turn a 200 response into success or an 'empty' / 'early_end' failure."""
    if rec.chunk_times_s:
        rec.first_token_s = rec.chunk_times_s[0]
    if not rec.output_tokens:
        rec.output_tokens, rec.tokens_source = state.text_chunks, "chunks"
    if not state.text_chunks:
        rec.error, rec.detail = "empty", "HTTP 200 but no content"
    elif not state.finished:
        rec.error, rec.detail = "early_end", "the stream closed before a finish reason or [DONE]"


async def _one(client: Transport, cfg: BenchConfig, rec: RequestRecord, prompt: Prompt, t0: float) -> None:
    rec.input_tokens = prompt.input_tokens
    rec.sent_s = time.perf_counter() - t0
    state = _StreamState(t0)
    try:
        async with asyncio.timeout(cfg.timeout_s):
            await _exchange(client, cfg, rec, prompt, state)
    except TimeoutError:
        rec.error, rec.detail = "timeout", f"no complete response within {cfg.timeout_s:g} s"
    except MalformedStream as exc:
        rec.error, rec.detail = "malformed", str(exc)
    except (HttpError, OSError, asyncio.IncompleteReadError) as exc:
        if state.text_chunks:  # the server cut a stream that had started
            rec.error, rec.detail = "early_end", f"connection closed after {state.text_chunks} chunk(s)"
        else:
            rec.error, rec.detail = "connection", f"{type(exc).__name__}: {exc}"[:200]
    finally:
        rec.end_s = time.perf_counter() - t0
    if not rec.error:
        _classify(rec, state)


async def run_load(
    cfg: BenchConfig,
    prompts: list[Prompt],
    on_record: Callable[[RequestRecord], None],
    transport: Transport | None = None,
) -> list[RequestRecord]:
    """Send every prompt (bounded by ``cfg.duration_s``); each finished record goes to
    ``on_record`` at once, so an interrupted run keeps everything already measured."""
    n = len(prompts)
    arr = cfg.arrivals
    schedule = arr.times(random.Random(cfg.seed), n) if arr.kind in ("poisson", "gamma") else [0.0] * n
    slots = arr.concurrency if arr.kind == "concurrency" else (cfg.max_concurrency or n)
    records = [RequestRecord(i, float(schedule[i])) for i in range(n)]
    sem = asyncio.Semaphore(max(slots, 1))
    client = transport or PooledTransport(cfg.url)
    try:
        t0 = time.perf_counter()
        deadline = cfg.duration_s

        async def fire(rec: RequestRecord) -> None:
            delay = rec.scheduled_s - (time.perf_counter() - t0)
            if delay > 0:
                await asyncio.sleep(delay)
            if deadline is not None and time.perf_counter() - t0 > deadline:
                return
            async with sem:  # a capped open loop: time waiting for a slot counts in TTFT
                await _one(client, cfg, rec, prompts[rec.index], t0)
            on_record(rec)

        if arr.kind == "concurrency":
            queue = iter(records)

            async def worker() -> None:
                for rec in queue:
                    if deadline is not None and time.perf_counter() - t0 > deadline:
                        return
                    rec.scheduled_s = time.perf_counter() - t0
                    await _one(client, cfg, rec, prompts[rec.index], t0)
                    on_record(rec)

            await asyncio.gather(*(worker() for _ in range(min(slots, n))))
        else:
            await asyncio.gather(*(fire(r) for r in records))
    finally:
        await client.aclose()
    return [r for r in records if not math.isnan(r.sent_s)]  # the ones actually sent
