"""Server-sent events of OpenAI-compatible streaming responses, parsed incrementally and
trusted in nothing.

Bytes arrive in arbitrary pieces; :class:`SseParser` yields complete ``data:`` payloads (an
event over :data:`MAX_EVENT_BYTES` is refused). :func:`parse_chunk` reads one payload: its
text content (empty for role-only or usage-only chunks), usage counts and finish reason,
each checked for the type the OpenAI stream format gives it (``choices`` a list of objects,
content a string, usage counts non-negative integers, the finish reason a string or null);
anything else raises :class:`MalformedStream`, and an ``error`` object or a finish reason of
``abort`` / ``error`` raises :class:`StreamAborted`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["DONE", "MAX_EVENT_BYTES", "Chunk", "MalformedStream", "SseParser", "StreamAborted", "parse_chunk"]

DONE = "[DONE]"
MAX_EVENT_BYTES = 4 << 20
MAX_TOKEN_COUNT = 10**9
ABORT_REASONS = frozenset({"abort", "error"})


class MalformedStream(Exception):
    """A payload that is not the JSON an OpenAI-compatible server sends."""

    kind = "malformed"


class StreamAborted(MalformedStream):
    """The server reported an error inside the stream, or finished it with reason abort."""

    kind = "aborted"


@dataclass(frozen=True, slots=True)
class Chunk:
    content: str
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None
    sent_s: float | None = None  # inferplan's local server: when it sent this chunk
    received_s: float | None = None  # ... and when it had read the request (first chunk only)


class SseParser:
    """Feed bytes; get back the ``data`` payload of every complete event."""

    def __init__(self) -> None:
        self._rest = b""
        self._data: list[str] = []
        self._size = 0

    def feed(self, raw: bytes) -> list[str]:
        if self._rest:
            raw = self._rest + raw
        lines = raw.split(b"\n")
        self._rest = lines.pop()
        if len(self._rest) > MAX_EVENT_BYTES:
            raise MalformedStream(f"an SSE line over {MAX_EVENT_BYTES >> 20} MiB")
        out: list[str] = []
        for raw_line in lines:
            line = raw_line[:-1] if raw_line.endswith(b"\r") else raw_line
            if not line:
                if self._data:
                    out.append("\n".join(self._data))
                    self._data, self._size = [], 0
            elif line.startswith(b"data:"):
                value = line[6:] if line.startswith(b"data: ") else line[5:]
                self._size += len(value)
                if self._size > MAX_EVENT_BYTES:
                    raise MalformedStream(f"an SSE event over {MAX_EVENT_BYTES >> 20} MiB")
                self._data.append(value.decode("utf-8", errors="replace"))
            # comments (':') and other fields (event:, id:, retry:) carry nothing we need
        return out

    def flush(self) -> list[str]:
        """Payloads left when the stream ends without a final blank line."""
        out = self.feed(b"\n\n")
        self._rest = b""
        return out


def _count(usage: dict[str, Any], key: str) -> int | None:
    value = usage.get(key)
    if value is None:
        return None
    if type(value) is not int or not 0 <= value <= MAX_TOKEN_COUNT:
        raise MalformedStream(f"usage.{key} is {str(value)[:30]!r}, not a whole number of tokens")
    return value


def _stamp(value: object) -> float | None:
    return float(value) if type(value) is float and math.isfinite(value) else None


def _choice(obj: dict[str, Any]) -> tuple[str, str | None]:
    """(content, finish reason) of the first choice."""
    choices = obj.get("choices")
    if choices is None or choices == []:
        return "", None
    if not isinstance(choices, list) or not isinstance(choices[0], dict):
        raise MalformedStream(f"'choices' is {type(choices).__name__}, not a list of objects")
    choice = choices[0]
    delta = choice.get("delta")
    if delta is not None and not isinstance(delta, dict):
        raise MalformedStream(f"'delta' is {type(delta).__name__}, not an object")
    content = ""
    for key, field in (("delta", "content"), ("delta", "reasoning_content"), ("delta", "reasoning"), (None, "text")):
        holder = delta if key else choice
        value = holder.get(field) if holder is not None else None
        if value is not None and not isinstance(value, str):
            raise MalformedStream(f"'{field}' is {type(value).__name__}, not a string")
        content = content or value or ""
    finish = choice.get("finish_reason")
    if finish is not None and not isinstance(finish, str):
        raise MalformedStream(f"finish_reason is {str(finish)[:30]!r}, not a string")
    if finish in ABORT_REASONS:
        raise StreamAborted(f"the server finished the stream with reason '{finish}'")
    return content, finish or None


def parse_chunk(payload: str) -> Chunk:
    """One streamed JSON payload of /v1/completions or /v1/chat/completions."""
    try:
        obj = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise MalformedStream(f"not JSON: {payload[:60]!r}") from exc
    if not isinstance(obj, dict):
        raise MalformedStream(f"a payload that is a JSON {type(obj).__name__}, not an object")
    if obj.get("error") is not None:
        raise StreamAborted(f"server error in stream: {str(obj['error'])[:120]}")
    content, finish = _choice(obj)
    usage = obj.get("usage")
    if usage is not None and not isinstance(usage, dict):
        raise MalformedStream(f"'usage' is {type(usage).__name__}, not an object")
    usage = usage or {}
    return Chunk(
        content,
        _count(usage, "prompt_tokens"),
        _count(usage, "completion_tokens"),
        finish,
        _stamp(obj.get("inferplan_sent_s")),
        _stamp(obj.get("inferplan_received_s")),
    )
