"""Prompts for a benchmark: synthetic ones of (where the server can count) exact token
length, or a dataset file (JSON lines with ``prompt`` and optional ``max_tokens``)."""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from inferplan.bench.deadline import Deadline, Timeouts, bounded
from inferplan.bench.http import HttpError, Transport, read_all
from inferplan.bench.record import Prompt
from inferplan.errors import ConfigError

__all__ = ["PROMPT_WORDS", "TokenCounter", "count_tokens", "load_dataset", "synthetic_prompts"]

PROBE_TIMEOUT_S = 30.0
MAX_PROMPT_TOKENS = 10_000_000
MAX_DATASET_BYTES = 1 << 30
PROMPT_WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "seven",
    "wizards",
    "quietly",
    "judge",
    "boxing",
    "matches",
    "near",
    "old",
    "stone",
    "bridges",
    "under",
    "silver",
    "moons",
]


async def count_tokens(counter: TokenCounter, text: str) -> int | None:
    """The server's token count of ``text`` via vLLM/SGLang's ``/tokenize``; None if absent,
    unreadable or not answered within the counter's limits."""
    url = f"{counter.base_url.rstrip('/')}/tokenize"
    deadline: Deadline | None = None
    try:
        async with (
            bounded(counter.timeouts) as deadline,
            counter.transport.post(url, {"model": counter.model, "prompt": text}, deadline) as resp,
        ):
            body = await read_all(resp.body)
            if resp.status != 200:
                return None
    except (HttpError, OSError, TimeoutError, asyncio.IncompleteReadError):
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    count = data.get("count") if isinstance(data, dict) else None
    return count if type(count) is int and 0 < count <= MAX_PROMPT_TOKENS else None


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(PROMPT_WORDS) for _ in range(max(words, 1)))


@dataclass(slots=True)
class TokenCounter:
    """A server that counts tokens (vLLM's and SGLang's ``/tokenize``) for ``model``; after
    one failure (no endpoint, a timeout) it stops asking."""

    transport: Transport
    base_url: str
    model: str
    timeouts: Timeouts = field(default_factory=lambda: Timeouts(PROBE_TIMEOUT_S))
    gave_up: bool = False

    async def count(self, text: str) -> int | None:
        if self.gave_up:
            return None
        counted = await count_tokens(self, text)
        self.gave_up = counted is None
        return counted


async def synthetic_prompts(
    n: int, lengths: tuple[int, int], seed: int, counter: TokenCounter | None = None
) -> tuple[list[Prompt], bool]:
    """``n`` prompts of about ``isl`` tokens (each with a random prefix so prefix caching does
    not flatter the server). Exact when the server counts tokens: the words-per-token ratio is
    measured on a probe and each prompt is trimmed against the server's count. Returns the
    prompts and whether their lengths are exact."""
    isl, osl = lengths
    rng = random.Random(seed)
    ratio, exact = 1.0, False
    if counter is not None:
        probe = _text(rng, 400)
        counted = await counter.count(probe)
        if counted:
            ratio, exact = 400 / counted, True
    out = []
    for _ in range(n):
        words = max(round(isl * ratio), 1)
        text = _text(rng, words)
        if exact and counter is not None:
            for _ in range(3):
                counted = await counter.count(text)
                if counted is None or counted == isl:
                    break
                words = max(words + round((isl - counted) * ratio) or (1 if counted < isl else -1), 1)
                text = _text(rng, words)
        out.append(Prompt(text, isl, osl))
    return out, exact


def _dataset_prompt(path: Path, number: int, line: str, default_max_tokens: int) -> Prompt:
    try:
        row = json.loads(line)
    except (ValueError, RecursionError):
        row = None
    if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
        raise ConfigError(f"{path}, line {number}: need a JSON object with a 'prompt' string")
    prompt = row["prompt"]
    counts = {}
    for key, default in (("input_tokens", max(len(prompt.split()), 1)), ("max_tokens", default_max_tokens)):
        value = row.get(key)
        if value is None:
            value = default
        if type(value) is not int or not 1 <= value <= MAX_PROMPT_TOKENS:
            raise ConfigError(f"{path}, line {number}: '{key}' must be a whole number from 1 to {MAX_PROMPT_TOKENS:,}")
        counts[key] = value
    return Prompt(prompt, counts["input_tokens"], counts["max_tokens"])


def load_dataset(path: Path, default_max_tokens: int, limit: int) -> list[Prompt]:
    """JSON lines: {"prompt": "...", "max_tokens": 128, "input_tokens": 512 (optional)}."""
    try:
        if path.stat().st_size > MAX_DATASET_BYTES:
            raise ConfigError(f"dataset {path} is over {MAX_DATASET_BYTES >> 30} GiB; split it")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read dataset {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"dataset {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc
    prompts = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            prompts.append(_dataset_prompt(path, number, line, default_max_tokens))
        if len(prompts) >= limit:
            break
    if not prompts:
        raise ConfigError(f"{path}: the dataset has no prompts")
    return prompts
