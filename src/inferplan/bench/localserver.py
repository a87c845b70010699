"""A small OpenAI-compatible streaming server on 127.0.0.1, for the client's self-check
(zero latency, its own send times stamped) and for fault tests: every fault a real server or
network can show a benchmark client, on demand.

It speaks just enough HTTP/1.1 (keep-alive, chunked transfer) for ``/v1/completions``,
``/v1/chat/completions`` (in the OpenAI stream formats, :mod:`inferplan.bench.openai_stream`),
``/tokenize``, ``/metrics``, ``/health``, ``/v1/models`` and ``/version``; behaviour per request comes from
``plan(request_number) -> Behaviour``, behaviour of ``/metrics`` and ``/tokenize`` from the
server's ``metrics`` and ``tokenize`` modes. Its ``/metrics`` also counts prefix-cache queries and
hits as vLLM does, over blocks of :data:`CACHE_BLOCK_WORDS` words (each request's prompt words, its
``cache_salt`` apart). ``python -m inferplan.bench.localserver`` runs
one on its own (it prints its URL), for other benchmark clients.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from inferplan import __version__
from inferplan.bench.openai_stream import StreamFormat

__all__ = ["CORRUPTIONS", "HTTP_FAULTS", "Batching", "Behaviour", "LocalServer", "main", "serve"]

#: payloads of the wrong shape: each replaces the second content chunk
CORRUPTIONS = {
    "not_json": b"data: {not json\n\n",
    "usage_text": b'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":"12"}}\n\n',
    "usage_float": b'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":7.5}}\n\n',
    "usage_nan": b'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":NaN}}\n\n',
    "choices_object": b'data: {"choices":{"text":"x"}}\n\n',
    "choices_strings": b'data: {"choices":["x"]}\n\n',
    "delta_string": b'data: {"choices":[{"index":0,"delta":"x"}]}\n\n',
    "content_number": b'data: {"choices":[{"index":0,"text":42}]}\n\n',
    "finish_number": b'data: {"choices":[{"index":0,"text":"x","finish_reason":7}]}\n\n',
    "finish_abort": b'data: {"choices":[{"index":0,"text":"x","finish_reason":"abort"}]}\n\n',
    "error_object": b'data: {"error":{"message":"overloaded","code":503}}\n\n',
    "json_list": b"data: [1, 2, 3]\n\n",
    "huge_int": b'data: {"choices":[],"usage":{"completion_tokens":' + b"9" * 5000 + b"}}\n\n",
    "deep_json": b"data: " + b"[" * 100_000 + b"]" * 100_000 + b"\n\n",
}
#: responses that break HTTP/1.1 itself, or pass the client's limits
HTTP_FAULTS = (
    "not_http",
    "huge_header",
    "bad_chunk_size",
    "huge_chunk_size",
    "chunk_no_crlf",
    "huge_chunk",
    "huge_line",
    "bad_content_length",
)


@dataclass(frozen=True, slots=True)
class Behaviour:
    """status (with ``retry_after_s`` as Retry-After); ttft_delay_s / token_delay_s: waits
    before the first and each next token; stall_s: wait after the headers; stall_after_first_s:
    wait after the first token; never_answer: read the request, send nothing; corrupt: a key
    of :data:`CORRUPTIONS`; http_fault: one of :data:`HTTP_FAULTS`; close_after: close the
    connection after this many tokens; role_chunk: the chat role chunk; usage: honour
    ``stream_options.include_usage``; max_tokens: tokens to send whatever was asked."""

    status: int = 200
    retry_after_s: int | None = None
    ttft_delay_s: float = 0.0
    token_delay_s: float = 0.0
    stall_s: float = 0.0
    stall_after_first_s: float = 0.0
    never_answer: bool = False
    corrupt: str | None = None
    http_fault: str | None = None
    close_after: int | None = None
    role_chunk: bool = True
    usage: bool = True
    max_tokens: int | None = None


CACHE_BLOCK_WORDS = 4
_MAX_CACHED_BLOCKS = 100_000
_SEEN = 256


def _prompt_words(request: dict[str, object]) -> list[str]:
    """A request's prompt as words: the completion prompt, or each chat message as 'role: content'."""
    messages = request.get("messages")
    if isinstance(messages, list):
        return " ".join(f"{m.get('role')}: {m.get('content')}" for m in messages if isinstance(m, dict)).split()
    return str(request.get("prompt") or "").split()


class _WordCache:
    """A prefix cache of full word blocks, keyed by everything up to the block's end (and the salt)."""

    def __init__(self) -> None:
        self.blocks: set[int] = set()
        self.queries = 0
        self.hits = 0

    def lookup_and_store(self, words: list[str], salt: object) -> None:
        keys = [
            hash((str(salt), *words[: (i + 1) * CACHE_BLOCK_WORDS])) for i in range(len(words) // CACHE_BLOCK_WORDS)
        ]
        cached = 0
        for i, key in enumerate(keys):
            if key not in self.blocks or (i + 1) * CACHE_BLOCK_WORDS > len(words) - 1:
                break
            cached += 1
        self.queries += len(words)
        self.hits += cached * CACHE_BLOCK_WORDS
        if len(self.blocks) + len(keys) > _MAX_CACHED_BLOCKS:
            self.blocks.clear()
        self.blocks.update(keys)


@dataclass(frozen=True, slots=True)
class Batching:
    """A continuous-batching server in miniature, for sweeps that must find a knee: at most
    ``max_running`` streams decode at once (the rest wait, first come first served); each
    token, the first included, takes one step of ``step_s + step_per_running_s x running``
    after the one before, on top of the request's own :class:`Behaviour` delays."""

    max_running: int = 8
    step_s: float = 0.01
    step_per_running_s: float = 0.002

    def step_time_s(self, running: int) -> float:
        """One step with ``running`` streams in the batch."""
        return self.step_s + self.step_per_running_s * running

    def capacity_per_s(self, output_tokens: int) -> float:
        """Requests per second at saturation (Little's law): ``max_running`` streams, each
        ``output_tokens`` steps of a full batch."""
        return self.max_running / (output_tokens * self.step_time_s(self.max_running))


_INFO = {  # who this server is, as vLLM answers it
    "/v1/models": b'{"object": "list", "data": [{"id": "local", "object": "model", "owned_by": "inferplan"}]}',
    "/version": json.dumps({"version": __version__}).encode(),
}
_HEAD_200 = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
_FOREVER_S = 3600.0


class LocalServer:
    """``metrics``: 'ok', 'hang' (never answers) or 'none' (404); ``tokenize``: 'none' (404),
    'ok' (counts words) or 'hang'; ``batching``: a server whose speed depends on its load."""

    def __init__(
        self,
        plan: Callable[[int], Behaviour],
        metrics: str = "ok",
        tokenize: str = "none",
        batching: Batching | None = None,
    ) -> None:
        self.plan, self.metrics, self.tokenize, self.batching = plan, metrics, tokenize, batching
        self._slots = asyncio.Semaphore(batching.max_running) if batching else None
        self.requests = 0
        self.running = 0
        self.server: asyncio.Server | None = None
        self.port = 0
        self.handlers: set[asyncio.Task[None]] = set()
        self.last_request: tuple[str, dict[str, str]] = ("", {})  # the last /v1/ request's, for tests
        self.seen: collections.deque[dict[str, object]] = collections.deque(maxlen=_SEEN)  # bodies, for tests
        self.cache = _WordCache()

    async def start(self, port: int = 0) -> None:
        self.server = await asyncio.start_server(self._connection, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.handlers):
            task.cancel()
        for task in list(self.handlers):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2.0)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.handlers.add(task)
            task.add_done_callback(self.handlers.discard)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if path.startswith("/v1/"):
                    self.last_request = (path, headers)
                if not await self._handle(method, path, body, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _handle(self, method: str, path: str, body: bytes, writer: asyncio.StreamWriter) -> bool:
        if path == "/health":
            return await _plain(writer, 200, b"ok")
        if path == "/metrics":
            return await self._metrics(writer)
        if path == "/tokenize":
            return await self._tokenize(body, writer)
        if method == "GET" and path in _INFO:
            return await _plain(writer, 200, _INFO[path])
        if method != "POST" or path not in ("/v1/completions", "/v1/chat/completions"):
            return await _plain(writer, 404, b'{"error": "not found"}')
        received = time.perf_counter()
        self.requests += 1
        b = self.plan(self.requests)
        if b.never_answer:
            await asyncio.sleep(_FOREVER_S)
        if b.status != 200:
            extra = f"retry-after: {b.retry_after_s}\r\n" if b.retry_after_s is not None else ""
            return await _plain(writer, b.status, b'{"error": {"message": "injected\x1b[2J\n"}}', extra)
        request = json.loads(body or b"{}")
        self.seen.append(request)
        self.cache.lookup_and_store(_prompt_words(request), request.get("cache_salt"))
        tokens = int(b.max_tokens if b.max_tokens is not None else request.get("max_tokens") or 16)
        fmt = StreamFormat.for_request(path, request, self.requests)
        prompt_tokens = len(str(request.get("prompt") or request.get("messages") or "").split())
        async with self._slots or contextlib.nullcontext():
            self.running += 1
            try:
                return await self._stream(writer, b, (fmt, tokens, prompt_tokens), received)
            finally:
                self.running -= 1

    def _pace(self, b: Behaviour) -> Callable[[int], float]:
        """The wait before token ``i``."""
        batching = self.batching

        def pace(i: int) -> float:
            own = b.ttft_delay_s if i == 0 else b.token_delay_s
            return own + (batching.step_time_s(self.running) if batching else 0.0)

        return pace

    async def _metrics(self, writer: asyncio.StreamWriter) -> bool:
        if self.metrics == "hang":
            await asyncio.sleep(_FOREVER_S)
        if self.metrics == "none":
            return await _plain(writer, 404, b"not found")
        text = (
            f"vllm:num_requests_running {self.running}\nvllm:num_requests_waiting 0\n"
            f"vllm:kv_cache_usage_perc {min(self.running / 100, 1.0)}\n"
            f"vllm:prefix_cache_queries_total {self.cache.queries}\nvllm:prefix_cache_hits_total {self.cache.hits}\n"
        )
        return await _plain(writer, 200, text.encode())

    async def _tokenize(self, body: bytes, writer: asyncio.StreamWriter) -> bool:
        if self.tokenize == "hang":
            await asyncio.sleep(_FOREVER_S)
        if self.tokenize != "ok":
            return await _plain(writer, 404, b'{"detail": "Not Found"}')
        words = str(json.loads(body or b"{}").get("prompt") or "").split()
        return await _plain(writer, 200, json.dumps({"count": len(words), "tokens": list(range(len(words)))}).encode())

    async def _stream(
        self, writer: asyncio.StreamWriter, b: Behaviour, shape: tuple[StreamFormat, int, int], received: float
    ) -> bool:
        if b.http_fault is not None:
            await _http_fault(writer, b.http_fault)
            return False
        writer.write(_HEAD_200)
        if b.stall_s:
            await writer.drain()
            await asyncio.sleep(b.stall_s)
        async for event in _events(b, shape, received, self._pace(b)):
            if event is None:
                writer.close()  # cut the stream mid-way
                return False
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True


async def _events(
    b: Behaviour, shape: tuple[StreamFormat, int, int], received: float, pace: Callable[[int], float]
) -> AsyncIterator[bytes | None]:
    fmt, tokens, prompt_tokens = shape
    if fmt.chat and b.role_chunk:
        yield fmt.event(fmt.role())
    if wait := pace(0):
        await asyncio.sleep(wait)
    for i in range(tokens):
        if b.close_after is not None and i >= b.close_after:
            yield None
            return
        if i == 1 and b.corrupt is not None:
            yield CORRUPTIONS[b.corrupt]
        if i and (wait := pace(i)):
            await asyncio.sleep(wait)
        if i == 1 and b.stall_after_first_s:
            await asyncio.sleep(b.stall_after_first_s)
        obj = fmt.content(f"t{i} ", "length" if i == tokens - 1 else None)
        if i == 0:
            obj["inferplan_received_s"] = received
        obj["inferplan_sent_s"] = time.perf_counter()
        yield fmt.event(obj)
    if b.usage and fmt.include_usage:
        yield fmt.event(fmt.usage(prompt_tokens, tokens))
    yield b"data: [DONE]\n\n"


async def _http_fault(writer: asyncio.StreamWriter, fault: str) -> None:
    first = b'data: {"choices":[{"index":0,"text":"t0 "}]}\n\n'
    chunk = b"%x\r\n%s\r\n" % (len(first), first)
    sse = b"content-type: text/event-stream\r\n"
    raw = {
        "not_http": b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        "huge_header": b"HTTP/1.1 200 OK\r\nx-filler: " + b"a" * (2 << 20) + b"\r\n\r\n",
        "bad_chunk_size": _HEAD_200 + chunk + b"zz\r\nhello\r\n",
        "huge_chunk_size": _HEAD_200 + chunk + b"7fffffffff\r\nhello",
        "chunk_no_crlf": _HEAD_200 + b"%x\r\n%sXX" % (len(first), first),
        "huge_chunk": _HEAD_200 + chunk + b"%x\r\n" % (20 << 20) + b"data: " + b"x" * (20 << 20),
        "huge_line": _HEAD_200 + chunk + b"".join(b"%x\r\n%s\r\n" % (1 << 20, b"y" * (1 << 20)) for _ in range(6)),
        "bad_content_length": b"HTTP/1.1 200 OK\r\n" + sse + b"content-length: 12abc\r\n\r\n" + first,
    }[fault]
    writer.write(raw)
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    await asyncio.sleep(0.05)
    writer.close()


async def _plain(writer: asyncio.StreamWriter, status: int, body: bytes, extra: str = "") -> bool:
    reason = {200: "OK", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}.get(status, "X")
    head = f"HTTP/1.1 {status} {reason}\r\ncontent-length: {len(body)}\r\n{extra}\r\n"
    writer.write(head.encode() + body)
    await writer.drain()
    return True


@contextlib.asynccontextmanager
async def serve(
    plan: Callable[[int], Behaviour], metrics: str = "ok", tokenize: str = "none"
) -> AsyncIterator[LocalServer]:
    server = LocalServer(plan, metrics, tokenize)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    """Serve until killed: ``--port`` (0: any free one), ``--token-delay`` and ``--ttft-delay``
    seconds, and with ``--max-running N`` a :class:`Batching` server (``--step``, ``--step-per-running``)."""
    from inferplan.bench.loop import run

    parser = argparse.ArgumentParser(description="inferplan's local OpenAI-compatible streaming server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token-delay", type=float, default=0.0)
    parser.add_argument("--ttft-delay", type=float, default=0.0)
    parser.add_argument("--max-running", type=int, default=0, help="batching: streams decoding at once (0: no limit)")
    parser.add_argument("--step", type=float, default=0.01, help="batching: seconds per step")
    parser.add_argument("--step-per-running", type=float, default=0.002, help="batching: seconds per stream per step")
    args = parser.parse_args(argv)
    batching = Batching(args.max_running, args.step, args.step_per_running) if args.max_running > 0 else None

    async def forever() -> None:
        behaviour = Behaviour(ttft_delay_s=args.ttft_delay, token_delay_s=args.token_delay)
        server = LocalServer(lambda _: behaviour, tokenize="ok", batching=batching)
        await server.start(args.port)
        sys.stdout.write(f"{server.url}\n")
        sys.stdout.flush()
        await asyncio.Event().wait()

    run(forever())


if __name__ == "__main__":
    main()
