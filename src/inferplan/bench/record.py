"""One benchmark request as measured: its prompt, its timings on the run's clock, its token
counts and its outcome.

Outcomes (``RequestRecord.error``; empty = succeeded). Every sent request ends in exactly one:

================================  ==========================================================
``""``                            succeeded: content, a finish reason or ``[DONE]``
``http_<code>``                   an HTTP status other than 200 (``Retry-After`` in the detail)
``empty``                         a 200 with no content
``early_end``                     the stream ended (or was cut) before a finish reason or [DONE]
``aborted``                       the server finished the stream with reason ``abort`` / ``error``
``malformed``                     an unreadable stream: bad SSE, not JSON, wrong JSON types
``protocol``                      malformed HTTP: status line, headers, chunk sizes, huge lines
``connection``                    refused, reset or closed before any content
``connect_timeout``               no connection within ``--connect-timeout``
``first_byte_timeout``            no response within ``--first-byte-timeout`` of sending
``idle_timeout``                  no bytes for ``--idle-timeout`` inside a response
``timeout``                       no complete response within ``--timeout``
``cancelled``                     in flight when the run was interrupted (partial timings kept)
================================  ==========================================================
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

__all__ = ["CANCELLED", "OUTCOMES", "Prompt", "RequestRecord", "split_outcomes"]

CANCELLED = "cancelled"
OUTCOMES = (
    "http_<code>",
    "empty",
    "early_end",
    "aborted",
    "malformed",
    "protocol",
    "connection",
    "connect_timeout",
    "first_byte_timeout",
    "idle_timeout",
    "timeout",
    CANCELLED,
)


@dataclass(frozen=True, slots=True)
class Prompt:
    """One request's prompt. Issue 13: ``messages`` (role, content) replaces the single user message
    of a chat request (a conversation so far), ``model`` the run's model (a LoRA adapter's name),
    ``salt`` is sent as vLLM's ``cache_salt`` (no other request can reuse its KV), and with
    ``keep_reply`` the streamed text is kept on the record (the next turn sends it back)."""

    text: str
    input_tokens: int
    max_tokens: int
    messages: tuple[tuple[str, str], ...] | None = None
    model: str | None = None
    salt: str | None = None
    keep_reply: bool = False


@dataclass(slots=True)
class RequestRecord:
    """Times are seconds on the run's clock (``perf_counter`` minus the run's start)."""

    index: int
    scheduled_s: float
    sent_s: float = float("nan")
    first_token_s: float = float("nan")
    end_s: float = float("nan")  # the response finished (or failed), after [DONE] / usage
    chunk_times_s: list[float] = field(default_factory=list)  # receipt of each content chunk
    input_tokens: int = 0
    output_tokens: int = 0
    tokens_source: str = "usage"
    http_status: int = 0
    error: str = ""
    detail: str = ""
    # only inferplan's own local server sends these: its clock is the same monotonic clock
    server_received_s: float = float("nan")  # when it read the request
    server_times_s: list[float] = field(default_factory=list)  # when it sent each content chunk
    reply: str = ""  # the streamed text, kept only when the prompt asks (a multi-turn session); never stored

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def cancelled(self) -> bool:
        return self.error == CANCELLED

    @property
    def ttft_s(self) -> float:
        return self.first_token_s - self.scheduled_s

    @property
    def last_token_s(self) -> float:
        """Receipt of the last content chunk (the end of E2E, as vLLM's and AIPerf's clients)."""
        return self.chunk_times_s[-1] if self.chunk_times_s else self.end_s

    @property
    def e2e_s(self) -> float:
        return self.last_token_s - self.scheduled_s

    @property
    def tpot_s(self) -> float:
        """(E2E - TTFT) / (output tokens - 1); NaN for one token or none."""
        if self.output_tokens <= 1 or not self.chunk_times_s:
            return float("nan")
        return (self.last_token_s - self.first_token_s) / (self.output_tokens - 1)

    def gaps_s(self) -> list[float]:
        """Inter-token latencies: the gaps between consecutive content chunks."""
        t = self.chunk_times_s
        return [b - a for a, b in itertools.pairwise(t)]


def split_outcomes(records: list[RequestRecord]) -> tuple[list[RequestRecord], list[RequestRecord], int]:
    """(succeeded, failed, cancelled count): every record in exactly one."""
    ok = [r for r in records if r.ok]
    failed = [r for r in records if not r.ok and not r.cancelled]
    return ok, failed, len(records) - len(ok) - len(failed)
