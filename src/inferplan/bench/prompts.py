"""Prompts for a benchmark: synthetic ones of (where the server can count) exact token
length, or a dataset file (JSON lines with ``prompt`` and optional ``max_tokens``)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from inferplan.bench.client import Prompt
from inferplan.bench.http import HttpError, Transport
from inferplan.errors import ConfigError

__all__ = ["PROMPT_WORDS", "TokenCounter", "count_tokens", "load_dataset", "synthetic_prompts"]

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


async def count_tokens(transport: Transport, base_url: str, model: str, text: str) -> int | None:
    """The server's token count of ``text`` via vLLM/SGLang's ``/tokenize``; None if absent."""
    try:
        async with transport.post(f"{base_url.rstrip('/')}/tokenize", {"model": model, "prompt": text}) as resp:
            body = b"".join([piece async for piece in resp.body])
            if resp.status != 200:
                return None
    except HttpError:
        return None
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return None
    count = data.get("count") if isinstance(data, dict) else None
    return int(count) if isinstance(count, int) else None


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(PROMPT_WORDS) for _ in range(max(words, 1)))


@dataclass(frozen=True, slots=True)
class TokenCounter:
    """A server that counts tokens (vLLM's and SGLang's ``/tokenize``) for ``model``."""

    transport: Transport
    base_url: str
    model: str

    async def count(self, text: str) -> int | None:
        return await count_tokens(self.transport, self.base_url, self.model, text)


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


def load_dataset(path: Path, default_max_tokens: int, limit: int) -> list[Prompt]:
    """JSON lines: {"prompt": "...", "max_tokens": 128, "input_tokens": 512 (optional)}."""
    prompts = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read dataset {path}: {exc.strerror}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            prompt = str(row["prompt"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}, line {number}: need a JSON object with a 'prompt' field") from exc
        prompts.append(
            Prompt(
                prompt,
                int(row.get("input_tokens") or len(prompt.split())),
                int(row.get("max_tokens") or default_max_tokens),
            )
        )
        if len(prompts) >= limit:
            break
    if not prompts:
        raise ConfigError(f"{path}: the dataset has no prompts")
    return prompts
