"""Traffic with structure (issue 13): multi-turn conversations, shared system prompts and requests
spread over LoRA adapters (:class:`TrafficShape`), and the requests it makes (:func:`shaped_requests`).

* A session is ``turns`` requests; turn ``k`` is sent ``think_time_s`` after turn ``k - 1`` finished,
  and its prompt is the conversation so far (every earlier message and reply) plus a new message:
  ``prompt_k = L + sum_{j<k} (m_j + r_j) + m_k`` for messages ``m``, replies ``r`` and a shared
  system prompt of ``L`` tokens.
* ``shared_prefixes`` distinct system prompts of ``shared_prefix_tokens`` tokens; each session (or
  request) opens with one of them, drawn uniformly.
* ``adapters``: each session (or request) asks for one of that many LoRA adapters, drawn uniformly.

A request rate counts requests (turns): sessions start at ``rate / turns`` per second. A closed
loop of ``C`` users runs ``C`` sessions at a time, each user starting a new one when theirs ends.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

from inferplan.errors import InputError
from inferplan.limits import MAX_INPUT_TOKENS
from inferplan.perf.prompt_paths import RequestLinks, Segments

__all__ = ["MAX_TURNS", "ShapedArrays", "TrafficShape", "shaped_requests"]

MAX_TURNS = 1000
MAX_SHARED_PREFIXES = 100_000
MAX_THINK_S = 86_400.0


@dataclass(frozen=True, slots=True)
class TrafficShape:
    """Multi-turn sessions, shared system prompts and LoRA adapters (see the module's text)."""

    turns: int = 1
    think_time_s: float = 0.0
    shared_prefixes: int = 0
    shared_prefix_tokens: int = 0
    adapters: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.turns <= MAX_TURNS:
            raise InputError(f"--multi-turn must be between 1 and {MAX_TURNS} turns per session, got {self.turns}")
        if not 0.0 <= self.think_time_s <= MAX_THINK_S:
            raise InputError(f"--think-time must be between 0 and {MAX_THINK_S:,.0f} s, got {self.think_time_s:g}")
        if not 0 <= self.shared_prefixes <= MAX_SHARED_PREFIXES:
            raise InputError(f"--shared-prefix count must be between 0 and {MAX_SHARED_PREFIXES:,}")
        if not 0 <= self.shared_prefix_tokens <= MAX_INPUT_TOKENS:
            raise InputError(f"--shared-prefix tokens must be between 0 and {MAX_INPUT_TOKENS:,}")
        if bool(self.shared_prefixes) != bool(self.shared_prefix_tokens):
            raise InputError("--shared-prefix needs both a count and a length, e.g. 4x2000")
        if self.adapters < 0:
            raise InputError("--lora-adapters must be 0 or more")

    @property
    def sessions(self) -> bool:
        return self.turns > 1

    @property
    def shares_tokens(self) -> bool:
        """Whether requests share prompt tokens (so a prefix cache can hit)."""
        return self.turns > 1 or self.shared_prefixes > 0

    @property
    def prefix(self) -> int:
        return self.shared_prefix_tokens if self.shared_prefixes else 0

    def prompt_tokens(self, message: float, reply: float, turn: int) -> float:
        """Prompt of turn ``turn`` (1-based) for mean message and reply lengths."""
        return self.prefix + (turn - 1) * (message + reply) + message

    def mean_prompt_tokens(self, message: float, reply: float) -> float:
        """Mean prompt over a session's turns: ``L + (T - 1)/2 (m + r) + m``."""
        return self.prefix + (self.turns - 1) / 2.0 * (message + reply) + message

    def cached_tokens(self, message: float, reply: float, block_size: int) -> float:
        """Mean prompt tokens a large enough prefix cache holds (full blocks; the last prompt token is
        always computed): turn 1 the shared prompt, turn ``k`` the conversation before it, whose last
        reply token was sampled but never computed."""
        total = 0.0
        for k in range(1, self.turns + 1):
            prompt = self.prompt_tokens(message, reply, k)
            known = self.prefix if k == 1 else self.prompt_tokens(message, reply, k - 1) + reply - 1
            total += min(math.floor(known / block_size), math.floor((prompt - 1) / block_size)) * block_size
        return max(total / self.turns, 0.0)

    def describe(self) -> str:
        parts = []
        if self.turns > 1:
            parts.append(f"sessions of {self.turns} turns, {self.think_time_s:g} s between turns")
        if self.shared_prefixes:
            parts.append(f"{self.shared_prefixes} shared system prompt(s) of {self.shared_prefix_tokens:,} tokens")
        if self.adapters:
            parts.append(f"requests spread over {self.adapters} LoRA adapter(s)")
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class ShapedArrays:
    """The requests of shaped traffic, as arrays (:class:`~inferplan.perf.workload.Requests` fields)."""

    arrival_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    links: RequestLinks | None
    adapter: np.ndarray | None


def shaped_requests(
    shape: TrafficShape, starts_s: np.ndarray, messages: tuple[np.ndarray, np.ndarray], rng: random.Random
) -> ShapedArrays:
    """Requests of ``len(starts_s)`` sessions starting at ``starts_s`` (``inf``: released by a closed
    loop); ``messages``: (message, reply) tokens of every turn, session after session."""
    sessions = len(starts_s)
    msg, reply = messages
    prefix_of = [rng.randrange(shape.shared_prefixes) for _ in range(sessions)] if shape.shared_prefixes else None
    adapter_of = [rng.randrange(shape.adapters) for _ in range(sessions)] if shape.adapters else None
    n = sessions * shape.turns
    arrival, inputs = np.full(n, np.inf), np.zeros(n, dtype=np.int64)
    follows, segs = np.full(n, -1, dtype=np.int64), []
    next_id = shape.shared_prefixes + 1  # ids 1..N name the shared prompts
    for s in range(sessions):
        history: Segments = ((prefix_of[s] + 1, shape.prefix),) if prefix_of is not None else ()
        arrival[s * shape.turns] = starts_s[s]
        for k in range(shape.turns):
            i = s * shape.turns + k
            prompt = (*history, (next_id, int(msg[i])))
            inputs[i] = sum(t for _, t in prompt)
            history = (*prompt, (next_id + 1, int(reply[i])))
            segs.append(history)
            next_id += 2
            if k:
                follows[i] = i - 1
    session = np.repeat(np.arange(sessions), shape.turns)
    think = np.where(follows >= 0, shape.think_time_s, 0.0)
    links = RequestLinks(tuple(segs), follows, think, session) if shape.shares_tokens else None
    adapter = np.repeat(np.array(adapter_of, dtype=np.int64), shape.turns) if adapter_of is not None else None
    return ShapedArrays(arrival, inputs, reply.astype(np.int64), links, adapter)
