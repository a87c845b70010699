"""Server-sent events of OpenAI-compatible streaming responses, parsed incrementally.

Bytes arrive in arbitrary pieces; :class:`SseParser` yields complete ``data:`` payloads.
:func:`parse_chunk` reads one payload: its text content (empty for role-only or usage-only
chunks), its usage counts and its finish reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = ["Chunk", "MalformedStream", "SseParser", "parse_chunk"]

DONE = "[DONE]"


class MalformedStream(Exception):
    """A payload that is not the JSON an OpenAI-compatible server sends."""


@dataclass(frozen=True, slots=True)
class Chunk:
    content: str
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None
    server_times: tuple[float, float] | None = None  # inferplan's local server: (received, sent)


class SseParser:
    """Feed bytes; get back the ``data`` payload of every complete event."""

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []

    def feed(self, raw: bytes) -> list[str]:
        self._buffer += raw
        out: list[str] = []
        while True:
            cut = self._buffer.find(b"\n")
            if cut < 0:
                return out
            line = self._buffer[:cut].rstrip(b"\r").decode("utf-8", errors="replace")
            self._buffer = self._buffer[cut + 1 :]
            if not line:
                if self._data:
                    out.append("\n".join(self._data))
                    self._data = []
            elif line.startswith("data:"):
                self._data.append(line[5:].lstrip(" "))
            # comments (':') and other fields (event:, id:, retry:) carry nothing we need

    def flush(self) -> list[str]:
        """Payloads left when the stream ends without a final blank line."""
        out = self.feed(b"\n\n")
        self._buffer = b""
        return out


def parse_chunk(payload: str) -> Chunk:
    """One streamed JSON payload of /v1/completions or /v1/chat/completions."""
    try:
        obj = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise MalformedStream(f"not JSON: {payload[:60]!r}") from exc
    if not isinstance(obj, dict):
        raise MalformedStream("payload is not a JSON object")
    if "error" in obj:
        raise MalformedStream(f"server error in stream: {str(obj['error'])[:80]}")
    content, finish = "", None
    choices = obj.get("choices") or []
    if choices and isinstance(choices[0], dict):
        choice = choices[0]
        delta = choice.get("delta")
        content = str(delta.get("content") or "") if isinstance(delta, dict) else str(choice.get("text") or "")
        finish = choice.get("finish_reason")
    usage = obj.get("usage") or {}
    stamps = obj.get("inferplan_server_times")
    return Chunk(
        content,
        usage.get("prompt_tokens") if isinstance(usage, dict) else None,
        usage.get("completion_tokens") if isinstance(usage, dict) else None,
        finish,
        (float(stamps[0]), float(stamps[1])) if isinstance(stamps, list) and len(stamps) == 2 else None,
    )
