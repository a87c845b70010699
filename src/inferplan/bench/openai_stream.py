"""The OpenAI streaming formats, as inferplan's local server writes them.

``/v1/completions`` streams ``text_completion`` objects and ``/v1/chat/completions`` streams
``chat.completion.chunk`` objects, each with ``id``, ``object``, ``created``, ``model`` and
``choices`` (``index``, ``text`` or ``delta``, ``logprobs``, ``finish_reason``); a chat stream
opens with a role-only delta. With ``stream_options.include_usage`` every chunk carries
``"usage": null`` and a last chunk with empty ``choices`` carries the usage counts, then
``data: [DONE]``. As vLLM does, the finish reason rides on the last content chunk.
Two extra fields, which OpenAI clients ignore, let inferplan's self-check separate the
server's time from the client's: ``inferplan_sent_s`` on every content chunk and
``inferplan_received_s`` on the first (``time.perf_counter`` of the server process).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

__all__ = ["StreamFormat"]


@dataclass(frozen=True, slots=True)
class StreamFormat:
    """One response's framing: its id, model, kind and whether usage was asked for."""

    chat: bool
    model: str
    include_usage: bool
    request_id: str
    created: int

    @classmethod
    def for_request(cls, path: str, request: dict[str, object], number: int) -> StreamFormat:
        options = request.get("stream_options")
        usage = isinstance(options, dict) and options.get("include_usage") is True
        chat = path.endswith("chat/completions")
        prefix = "chatcmpl" if chat else "cmpl"
        return cls(chat, str(request.get("model") or "local"), usage, f"{prefix}-{number:08x}", int(time.time()))

    def _object(self, choices: list[dict[str, object]]) -> dict[str, object]:
        obj: dict[str, object] = {
            "id": self.request_id,
            "object": "chat.completion.chunk" if self.chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if self.include_usage:
            obj["usage"] = None
        return obj

    def role(self) -> dict[str, object]:
        """The chat stream's first chunk: the assistant role, no content."""
        choice = {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
        return self._object([choice])

    def content(self, text: str, finish_reason: str | None) -> dict[str, object]:
        choice: dict[str, object] = {"index": 0, "logprobs": None, "finish_reason": finish_reason}
        if self.chat:
            choice["delta"] = {"content": text}
        else:
            choice["text"] = text
        return self._object([choice])

    def usage(self, prompt_tokens: int, completion_tokens: int) -> dict[str, object]:
        obj = self._object([])
        obj["usage"] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        return obj

    @staticmethod
    def event(obj: dict[str, object]) -> bytes:
        return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"
