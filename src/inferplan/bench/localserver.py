"""A small OpenAI-compatible streaming server on 127.0.0.1, for the client's self-check
(zero latency) and for fault tests (errors, stalls, malformed or cut streams).

It speaks just enough HTTP/1.1 (keep-alive, chunked transfer) for ``/v1/completions``,
``/v1/chat/completions``, ``/metrics`` and ``/health``; behaviour per request comes from
``plan(request_number) -> Behaviour``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

__all__ = ["Behaviour", "LocalServer", "serve"]


@dataclass(frozen=True, slots=True)
class Behaviour:
    """status: HTTP status; ttft_delay_s / token_delay_s: waits before the first and each
    next token; stall_s: wait after the headers before anything else; malformed: send a
    broken payload; close_after: close the connection after this many tokens; role_chunk:
    send a role-only first chunk (as transformers serve does); usage: final usage chunk."""

    status: int = 200
    ttft_delay_s: float = 0.0
    token_delay_s: float = 0.0
    stall_s: float = 0.0
    malformed: bool = False
    close_after: int | None = None
    role_chunk: bool = True
    usage: bool = True
    max_tokens: int | None = None


class LocalServer:
    def __init__(self, plan: Callable[[int], Behaviour]) -> None:
        self.plan = plan
        self.requests = 0
        self.running = 0
        self.server: asyncio.Server | None = None
        self.port = 0
        self.handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        for task in list(self.handlers):
            task.cancel()
        for task in list(self.handlers):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.server is not None:
            self.server.close()
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
            text = (
                f"vllm:num_requests_running {self.running}\nvllm:num_requests_waiting 0\n"
                f"vllm:kv_cache_usage_perc {min(self.running / 100, 1.0)}\n"
            )
            return await _plain(writer, 200, text.encode())
        if method != "POST" or path not in ("/v1/completions", "/v1/chat/completions"):
            return await _plain(writer, 404, b'{"error": "not found"}')
        received = time.perf_counter()
        self.requests += 1
        b = self.plan(self.requests)
        if b.status != 200:
            return await _plain(writer, b.status, b'{"error": {"message": "injected"}}')
        request = json.loads(body or b"{}")
        tokens = int(b.max_tokens if b.max_tokens is not None else request.get("max_tokens") or 16)
        chat = path.endswith("chat/completions")
        self.running += 1
        try:
            return await self._stream(writer, b, tokens, chat, received)
        finally:
            self.running -= 1

    async def _stream(
        self, writer: asyncio.StreamWriter, b: Behaviour, tokens: int, chat: bool, received: float
    ) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        await writer.drain()
        if b.stall_s:
            await asyncio.sleep(b.stall_s)
        async for payload in _payloads(b, tokens, chat, received):
            if payload is None:
                writer.close()  # cut the stream mid-way
                return False
            data = payload.encode()
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True


async def _payloads(b: Behaviour, tokens: int, chat: bool, received: float) -> AsyncIterator[str | None]:
    def event(obj: dict[str, object]) -> str:
        return f"data: {json.dumps(obj)}\n\n"

    def piece(text: str, finish: str | None) -> dict[str, object]:
        choice: dict[str, object] = {"index": 0, "finish_reason": finish}
        choice["delta" if chat else "text"] = {"content": text} if chat else text
        return {"id": "x", "object": "chunk", "choices": [choice]}

    if chat and b.role_chunk:
        yield event({"id": "x", "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]})
    if b.ttft_delay_s:
        await asyncio.sleep(b.ttft_delay_s)
    for i in range(tokens):
        if b.close_after is not None and i >= b.close_after:
            yield None
            return
        if b.malformed and i == 1:
            yield "data: {not json\n\n"
            continue
        if i and b.token_delay_s:
            await asyncio.sleep(b.token_delay_s)
        obj = piece(f"t{i} ", "length" if i == tokens - 1 else None)
        if i == 0:  # lets the self-check subtract the server's own time from TTFT
            obj["inferplan_server_times"] = [received, time.perf_counter()]
        yield event(obj)
    if b.usage:
        yield event({"id": "x", "choices": [], "usage": {"prompt_tokens": 8, "completion_tokens": tokens}})
    yield "data: [DONE]\n\n"


async def _plain(writer: asyncio.StreamWriter, status: int, body: bytes) -> bool:
    reason = {200: "OK", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}.get(status, "X")
    writer.write(f"HTTP/1.1 {status} {reason}\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()
    return True


@contextlib.asynccontextmanager
async def serve(plan: Callable[[int], Behaviour]) -> AsyncIterator[LocalServer]:
    server = LocalServer(plan)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
