"""Prompts for a benchmark: synthetic ones of (where the server can count) exact token
length, a dataset's (perf/datasets.py: ShareGPT, prompts JSON lines, a CSV of lengths), and the
shared system prompts of issue 13's traffic."""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from inferplan.bench.deadline import Deadline, Timeouts, bounded
from inferplan.bench.http import HttpError, Transport, read_all
from inferplan.bench.record import Prompt
from inferplan.perf.datasets import read_dataset
from inferplan.perf.sessions import TrafficShape

__all__ = ["PROMPT_WORDS", "TokenCounter", "count_tokens", "dataset_prompts", "shared_prefixes", "synthetic_prompts"]

PROBE_TIMEOUT_S = 30.0
MAX_PROMPT_TOKENS = 10_000_000
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


async def dataset_prompts(
    path: Path, n: int, how: tuple[int, float], counter: TokenCounter | None = None
) -> tuple[list[Prompt], bool]:
    """``n`` requests drawn uniformly (seeded) from a dataset's rows (perf/datasets.py reads
    ShareGPT, prompts JSON lines and CSVs of lengths): a row's own text, or for a CSV of lengths a
    synthetic prompt of its input length; ``how`` = (seed, tokens per word for text without counts).
    Returns the prompts and whether their lengths are exact (the file's counts, or the server's)."""
    seed, per_word = how
    data = read_dataset(path, per_word)
    rng = random.Random(seed)
    rows = [data.rows[rng.randrange(len(data.rows))] for _ in range(n)]
    out, exact = [], not data.estimated
    for row in rows:
        if row.prompt is not None:
            out.append(Prompt(row.prompt, row.input_tokens, row.output_tokens))
            continue
        made, counted = await synthetic_prompts(1, (row.input_tokens, row.output_tokens), rng.randrange(2**31), counter)
        out += made
        exact = exact and counted
    return out, exact


async def shared_prefixes(
    shape: TrafficShape, seed: int, counter: TokenCounter | None
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The shared system prompts' texts (distinct random words, ``shared_prefix_tokens`` long where the
    server counts tokens) and their token counts."""
    if not shape.shared_prefixes:
        return (), ()
    made, _ = await synthetic_prompts(shape.shared_prefixes, (shape.shared_prefix_tokens, 1), seed + 7, counter)
    counts = []
    for p in made:
        counted = await counter.count(p.text) if counter is not None else None
        counts.append(counted or p.input_tokens)
    return tuple(p.text for p in made), tuple(counts)
