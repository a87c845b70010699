"""Request lengths from data (issue 13): a ShareGPT-format file (a JSON array or JSON lines of
``{"conversations": [{"from": "human", "value": ...}, {"from": "gpt", "value": ...}, ...]}``), plain
JSON lines (``{"prompt": ..., "output": ...}`` or ``{"prompt": ..., "max_tokens": N}``) or a CSV of
lengths (``input_tokens,output_tokens``).

A ShareGPT conversation gives its first user message as the prompt and the reply after it as the
output, as ``vllm bench serve`` samples it. Token counts: a row's own ``input_tokens`` /
``output_tokens`` fields when it has them (exact); otherwise estimated without a tokenizer as
words x ``tokens_per_word`` (default 4/3: English text runs about 3/4 of a word per token in
OpenAI's and Llama 3's BPE tokenizers), which every output states.
"""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inferplan.errors import ConfigError, InputError
from inferplan.limits import MAX_INPUT_TOKENS, MAX_NUM_REQUESTS, MAX_OUTPUT_TOKENS

__all__ = [
    "MAX_DATASET_BYTES",
    "TOKENS_PER_WORD",
    "Dataset",
    "DatasetRow",
    "LengthSample",
    "read_dataset",
]

TOKENS_PER_WORD = 4.0 / 3.0
MAX_DATASET_BYTES = 1 << 30
_HUMAN = ("human", "user")
_ASSISTANT = ("gpt", "assistant", "chatgpt", "bard", "model")


@dataclass(frozen=True, slots=True)
class DatasetRow:
    """One request from a dataset: its prompt text (None for a CSV of lengths) and token counts."""

    prompt: str | None
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class LengthSample:
    """The joint (input, output) token lengths of a dataset's rows; requests draw rows uniformly."""

    input_tokens: np.ndarray
    output_tokens: np.ndarray
    source: str

    def draw(self, rng: random.Random, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` rows drawn with replacement (input and output lengths of the same row together)."""
        rows = np.array([rng.randrange(len(self.input_tokens)) for _ in range(n)], dtype=np.int64)
        return self.input_tokens[rows], self.output_tokens[rows]

    def describe(self) -> str:
        i, o = self.input_tokens, self.output_tokens
        p = np.percentile
        return (
            f"{self.source}: input tokens mean {i.mean():,.0f} (p50 {p(i, 50):,.0f}, p90 {p(i, 90):,.0f}), "
            f"output mean {o.mean():,.0f} (p50 {p(o, 50):,.0f}, p90 {p(o, 90):,.0f})"
        )


@dataclass(frozen=True, slots=True)
class Dataset:
    rows: tuple[DatasetRow, ...]
    path: Path
    kind: str  # sharegpt, jsonl or csv
    estimated: bool  # some counts estimated from words
    tokens_per_word: float
    skipped: int

    def lengths(self) -> LengthSample:
        how = f"words x {self.tokens_per_word:.2f}" if self.estimated else "the file's token counts"
        source = f"{self.path.name} ({self.kind}, {len(self.rows):,} rows; lengths: {how})"
        return LengthSample(
            np.array([r.input_tokens for r in self.rows], dtype=np.int64),
            np.array([r.output_tokens for r in self.rows], dtype=np.int64),
            source,
        )


def _tokens(text: str, tokens_per_word: float) -> int:
    return max(round(len(text.split()) * tokens_per_word), 1)


def _count(row: dict[str, Any], key: str, limit: int) -> int | None:
    value = row.get(key)
    if value is None:
        return None
    if type(value) is not int or not 1 <= value <= limit:
        raise ValueError(f"'{key}' must be a whole number from 1 to {limit:,}")
    return value


def _from_conversation(row: dict[str, Any], per_word: float) -> tuple[DatasetRow, bool] | None:
    turns = row.get("conversations", row.get("conversation"))
    if not isinstance(turns, list):
        raise ValueError("a ShareGPT row needs a 'conversations' list")
    texts = [(t.get("from", t.get("role")), t.get("value", t.get("content"))) for t in turns if isinstance(t, dict)]
    for i, (who, text) in enumerate(texts[:-1]):
        reply_who, reply = texts[i + 1]
        if not (who in _HUMAN and reply_who in _ASSISTANT and isinstance(text, str) and isinstance(reply, str)):
            continue
        if text.strip() and reply.strip():
            return DatasetRow(text, _tokens(text, per_word), _tokens(reply, per_word)), True
    return None


def _from_prompt(row: dict[str, Any], per_word: float) -> tuple[DatasetRow, bool]:
    prompt = row.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("need a non-empty 'prompt' string (or a ShareGPT 'conversations' list)")
    given_in = _count(row, "input_tokens", MAX_INPUT_TOKENS)
    given_out = _count(row, "output_tokens", MAX_OUTPUT_TOKENS) or _count(row, "max_tokens", MAX_OUTPUT_TOKENS)
    output = row.get("output", row.get("completion"))
    if given_out is None and not isinstance(output, str):
        raise ValueError("need 'output' text, 'output_tokens' or 'max_tokens' for the output length")
    out = given_out if given_out is not None else _tokens(str(output), per_word)
    estimated = given_in is None or given_out is None
    return DatasetRow(prompt, given_in or _tokens(prompt, per_word), out), estimated


def _row(obj: object, per_word: float) -> tuple[DatasetRow, bool] | None:
    if not isinstance(obj, dict):
        raise ValueError("each row must be a JSON object")
    if "conversations" in obj or "conversation" in obj:
        return _from_conversation(obj, per_word)
    return _from_prompt(obj, per_word)


def _json_rows(text: str) -> list[tuple[int, object]]:
    stripped = text.lstrip()
    if stripped.startswith("["):
        data = json.loads(text)
        return list(enumerate(data, start=1))
    return [(n, json.loads(line)) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _csv_rows(path: Path, text: str) -> list[DatasetRow]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not {"input_tokens", "output_tokens"} <= set(reader.fieldnames):
        raise ConfigError(f"{path}: a CSV of lengths needs the header input_tokens,output_tokens")
    rows = []
    for line, row in enumerate(reader, start=2):
        try:
            inp, out = int(row["input_tokens"]), int(row["output_tokens"])
        except (TypeError, ValueError):
            raise ConfigError(f"{path}, line {line}: input_tokens and output_tokens must be whole numbers") from None
        if not (1 <= inp <= MAX_INPUT_TOKENS and 1 <= out <= MAX_OUTPUT_TOKENS):
            raise ConfigError(f"{path}, line {line}: lengths must be 1-{MAX_INPUT_TOKENS:,} / 1-{MAX_OUTPUT_TOKENS:,}")
        rows.append(DatasetRow(None, inp, out))
        if len(rows) >= MAX_NUM_REQUESTS:
            break
    return rows


def _read_text(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_DATASET_BYTES:
            raise ConfigError(f"dataset {path} is over {MAX_DATASET_BYTES >> 30} GiB; sample it into a smaller file")
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read dataset {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"dataset {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc


def read_dataset(path: Path, tokens_per_word: float = TOKENS_PER_WORD, limit: int = MAX_NUM_REQUESTS) -> Dataset:
    """The rows of a ShareGPT JSON/JSONL file, a prompts JSONL file or a CSV of lengths."""
    if not 0.1 <= tokens_per_word <= 10:
        raise InputError(f"--tokens-per-word must be between 0.1 and 10, got {tokens_per_word:g}")
    text = _read_text(path)
    if path.suffix.lower() == ".csv":
        rows = _csv_rows(path, text)[:limit]
        return _checked(Dataset(tuple(rows), path, "csv", False, tokens_per_word, 0))
    try:
        objects = _json_rows(text)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{path}: not JSON or JSON lines ({str(exc)[:80]})") from None
    rows, estimated, skipped, kinds = [], False, 0, set()
    for number, obj in objects:
        try:
            got = _row(obj, tokens_per_word)
        except ValueError as exc:
            raise ConfigError(f"{path}, row {number}: {exc}") from None
        if got is None:
            skipped += 1
            continue
        rows.append(got[0])
        estimated |= got[1]
        kinds.add(
            "sharegpt" if isinstance(obj, dict) and ("conversations" in obj or "conversation" in obj) else "jsonl"
        )
        if len(rows) >= limit:
            break
    return _checked(Dataset(tuple(rows), path, "+".join(sorted(kinds)) or "json", estimated, tokens_per_word, skipped))


def _checked(ds: Dataset) -> Dataset:
    if not ds.rows:
        raise ConfigError(
            f"{ds.path}: the dataset has no usable rows (a user message followed by a reply, or a prompt)"
        )
    return ds
