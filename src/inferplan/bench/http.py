"""A lean HTTP/1.1 client for streaming POSTs, on asyncio streams.

Why not a general client: at hundreds of concurrent streams, httpx/httpcore spend time
scanning every pooled connection on every event (quadratic in the concurrency); the
self-check measured ~9 ms of client CPU per request at 64 streams. Here each request takes
an idle keep-alive connection in O(1), reads with a 1 MiB buffer, and decodes chunked
transfer encoding itself. :class:`Transport` is the seam tests replace.

Every byte from the server is untrusted: a status line, header block, chunk-size line or
chunk that breaks HTTP/1.1 or passes the limits below raises :class:`ProtocolError`; every
wait is bounded by a :class:`~inferplan.bench.deadline.Deadline` when the caller gives one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from inferplan.bench.deadline import Deadline

__all__ = ["HttpError", "PooledTransport", "ProtocolError", "Response", "Transport"]

READ_BUFFER_BYTES = 1 << 20
MAX_HEAD_BYTES = 64 << 10  # status line and headers together
MAX_HEADERS = 100
MAX_CHUNK_BYTES = 16 << 20  # one chunk of chunked transfer encoding
MAX_CHUNK_LINE_BYTES = 1024  # a chunk-size line with its extensions
MAX_BODY_BYTES = 8 << 20  # a whole non-streamed body (errors, /tokenize, /metrics)


class HttpError(Exception):
    """Connection refused, reset or closed."""


class ProtocolError(HttpError):
    """Bytes that are not HTTP/1.1, or that pass a limit."""


@dataclass(slots=True)
class Response:
    status: int
    body: AsyncIterator[bytes]
    headers: dict[str, str] = field(default_factory=dict)


class Transport(Protocol):
    def post(
        self, url: str, body: dict[str, object], deadline: Deadline | None = None
    ) -> contextlib.AbstractAsyncContextManager[Response]: ...

    async def get(self, url: str, deadline: Deadline | None = None) -> tuple[int, bytes]: ...

    async def aclose(self) -> None: ...


class _Conn:
    __slots__ = ("reader", "reused", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.reused = False


def _checked_headers(headers: Mapping[str, str]) -> bytes:
    out = []
    for name, value in headers.items():
        if not name or any(c in name for c in ":\r\n ") or any(c in value for c in "\r\n"):
            raise ValueError(f"header {name!r}: a name without ':' or spaces and a value on one line")
        out.append(f"{name}: {value}\r\n")
    return "".join(out).encode("latin-1")


class PooledTransport:
    """Keep-alive connections to one origin; no cap below what the caller runs at once.
    ``headers`` (an API key, extra headers) go with every request and nowhere else."""

    def __init__(self, base_url: str, headers: Mapping[str, str] | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HttpError(f"not an http(s) URL: {base_url}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.idle: list[_Conn] = []
        self._extra = _checked_headers(headers or {})

    async def _connect(self, deadline: Deadline | None, fresh: bool = False) -> _Conn:
        if self.idle and not fresh:
            conn = self.idle.pop()
            conn.reused = True
            return conn
        if deadline is not None:
            deadline.enter("connect")
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self.ssl, limit=READ_BUFFER_BYTES)
        except OSError as exc:
            raise HttpError(f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}") from exc
        return _Conn(reader, writer)

    def _request(self, method: str, url: str, payload: bytes) -> bytes:
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = (
            f"{method} {target} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n"
            "content-type: application/json\r\naccept: text/event-stream\r\n"
            f"content-length: {len(payload)}\r\n"
        )
        return head.encode() + self._extra + b"\r\n" + payload

    async def _exchange(
        self, method: str, url: str, payload: bytes, deadline: Deadline | None
    ) -> tuple[_Conn, int, dict[str, str]]:
        """Send and read the response head; a kept-alive connection the server has closed
        meanwhile is replaced once by a fresh one (nothing had been answered on it)."""
        request = self._request(method, url, payload)
        for attempt in range(2):
            conn = await self._connect(deadline, fresh=attempt > 0)
            try:
                conn.writer.write(request)
                await conn.writer.drain()
                if deadline is not None:
                    deadline.enter("first_byte")
                status, headers = await _read_head(conn.reader)
                return conn, status, headers
            except (OSError, asyncio.IncompleteReadError) as exc:
                conn.writer.close()
                stale = conn.reused and (isinstance(exc, OSError) or not exc.partial)
                if attempt or not stale:
                    raise HttpError(f"{type(exc).__name__}: {exc}") from exc
            except BaseException:
                conn.writer.close()
                raise
        raise HttpError("the server closed the connection twice before answering")

    @contextlib.asynccontextmanager
    async def post(
        self, url: str, body: dict[str, object], deadline: Deadline | None = None
    ) -> AsyncIterator[Response]:
        conn, status, headers = await self._exchange("POST", url, json.dumps(body).encode(), deadline)
        state = {"complete": False}
        reusable = False
        try:
            yield Response(status, _body(conn.reader, headers, state, deadline), headers)
            reusable = state["complete"] and headers.get("connection", "").lower() != "close"
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise HttpError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            if reusable:
                conn.reused = False
                self.idle.append(conn)
            else:
                conn.writer.close()

    async def get(self, url: str, deadline: Deadline | None = None) -> tuple[int, bytes]:
        conn, status, headers = await self._exchange("GET", url, b"", deadline)
        try:
            return status, await read_all(_body(conn.reader, headers, {"complete": False}, deadline))
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise HttpError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            conn.writer.close()

    async def aclose(self) -> None:
        for conn in self.idle:
            conn.writer.close()
        self.idle.clear()


async def read_all(body: AsyncIterator[bytes], limit: int = MAX_BODY_BYTES) -> bytes:
    """A whole body, refused past ``limit`` bytes."""
    pieces, size = [], 0
    async for piece in body:
        size += len(piece)
        if size > limit:
            raise ProtocolError(f"a response body over {limit >> 20} MiB")
        pieces.append(piece)
    return b"".join(pieces)


class _ChunkDecoder:
    """Chunked transfer encoding decoded from whatever bytes have arrived: one socket read
    yields every complete chunk in it (one await per read, not two per chunk)."""

    def __init__(self) -> None:
        self.buffer = b""
        self.done = False

    def feed(self, raw: bytes) -> bytes:
        self.buffer += raw
        out = []
        while not self.done:
            cut = self.buffer.find(b"\r\n", 0, MAX_CHUNK_LINE_BYTES + 2)
            if cut < 0:
                if len(self.buffer) > MAX_CHUNK_LINE_BYTES:
                    raise ProtocolError(f"a chunk-size line over {MAX_CHUNK_LINE_BYTES} bytes")
                break
            size = _chunk_size(self.buffer[:cut])
            if size == 0:
                self._trailer(cut)
                break
            end = cut + 2 + size
            if len(self.buffer) < end + 2:
                break
            if self.buffer[end : end + 2] != b"\r\n":
                raise ProtocolError(f"a chunk of {size} bytes not followed by CRLF")
            out.append(self.buffer[cut + 2 : end])
            self.buffer = self.buffer[end + 2 :]
        return b"".join(out)

    def _trailer(self, cut: int) -> None:
        """After the last chunk: an empty line, or trailer fields and then one."""
        if self.buffer[cut + 2 : cut + 4] == b"\r\n":
            self.done, self.buffer = True, self.buffer[cut + 4 :]
            return
        end = self.buffer.find(b"\r\n\r\n", cut)
        if end >= 0:
            self.done, self.buffer = True, self.buffer[end + 4 :]
        elif len(self.buffer) > MAX_HEAD_BYTES:
            raise ProtocolError(f"chunked trailer fields over {MAX_HEAD_BYTES >> 10} KiB")


def _chunk_size(line: bytes) -> int:
    text = line.split(b";", 1)[0].strip()
    if not text or len(text) > 8 or any(c not in b"0123456789abcdefABCDEF" for c in text):
        raise ProtocolError(f"invalid chunk size {line[:40]!r}")
    size = int(text, 16)
    if size > MAX_CHUNK_BYTES:
        raise ProtocolError(f"a chunk of {size:,} bytes, over the {MAX_CHUNK_BYTES >> 20} MiB limit")
    return size


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """Status and headers; informational (1xx) responses are skipped."""
    for _ in range(5):
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError as exc:
            raise ProtocolError(f"response headers over {READ_BUFFER_BYTES >> 20} MiB") from exc
        if len(raw) > MAX_HEAD_BYTES:
            raise ProtocolError(f"response headers over {MAX_HEAD_BYTES >> 10} KiB")
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not (parts[1].isdigit() and len(parts[1]) == 3):
            raise ProtocolError(f"not an HTTP/1.x response: {lines[0][:60]!r}")
        status = int(parts[1])
        if status >= 200:
            fields = [x for x in lines[1:] if x]
            if len(fields) > MAX_HEADERS or any(":" not in x for x in fields):
                raise ProtocolError(f"more than {MAX_HEADERS} header fields, or one without ':'")
            return status, {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in fields)}
    raise ProtocolError("more than four informational (1xx) responses")


def _content_length(headers: dict[str, str]) -> int:
    text = headers["content-length"]
    if not text.isdigit() or len(text) > 15:
        raise ProtocolError(f"invalid content-length {text[:30]!r}")
    return int(text)


async def _read(reader: asyncio.StreamReader, n: int, deadline: Deadline | None) -> bytes:
    if deadline is not None:
        deadline.enter("idle")
    return await reader.read(n)


async def _body(
    reader: asyncio.StreamReader, headers: dict[str, str], state: dict[str, bool], deadline: Deadline | None
) -> AsyncIterator[bytes]:
    """The body as it arrives: dechunked, length-delimited, or until the peer closes."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        decoder = _ChunkDecoder()
        while not decoder.done:
            raw = await _read(reader, READ_BUFFER_BYTES, deadline)
            if not raw:
                raise asyncio.IncompleteReadError(b"", None)
            data = decoder.feed(raw)
            if data:
                yield data
        state["complete"] = not decoder.buffer  # bytes after the body: never reuse
    elif "content-length" in headers:
        remaining = _content_length(headers)
        while remaining > 0:
            data = await _read(reader, min(remaining, READ_BUFFER_BYTES), deadline)
            if not data:
                raise asyncio.IncompleteReadError(b"", remaining)
            remaining -= len(data)
            yield data
        state["complete"] = True
    else:
        while data := await _read(reader, READ_BUFFER_BYTES, deadline):
            yield data
