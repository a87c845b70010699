"""The options of issue 13, shared by ``fit``, ``predict``, ``plan``, ``deploy`` and ``bench serve``:
lengths from a dataset or a stated distribution, multi-turn sessions and shared system prompts,
prefix caching, LoRA adapters and CPU offload, and what they resolve into."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from inferplan.cli.common import csv_list
from inferplan.errors import InputError
from inferplan.perf.datasets import TOKENS_PER_WORD, LengthSample, read_dataset
from inferplan.perf.sessions import TrafficShape
from inferplan.perf.workload import LengthDist
from inferplan.units import parse_duration_s

__all__ = [
    "CpuOffloadOpt",
    "DatasetOpt",
    "IslValuesOpt",
    "KvOffloadOpt",
    "LoraAdaptersOpt",
    "LoraRankOpt",
    "LoraTargetsOpt",
    "MaxCpuLorasOpt",
    "MaxLoraRankOpt",
    "MaxLorasOpt",
    "MultiTurnOpt",
    "OslValuesOpt",
    "PrefixCachingOpt",
    "SharedPrefixOpt",
    "ThinkTimeOpt",
    "TokensPerWordOpt",
    "feature_words",
    "length_dists",
    "parse_shared_prefix",
    "sample_from",
    "shape_from",
    "think_time_s",
]

DatasetOpt = Annotated[
    Path | None,
    typer.Option(
        "--dataset",
        help="Lengths from data: ShareGPT JSON/JSONL, JSON lines with prompt and output (or output_tokens), or a "
        "CSV input_tokens,output_tokens.",
    ),
]
TokensPerWordOpt = Annotated[
    float, typer.Option("--tokens-per-word", help="Token estimate for text without counts: words x this.")
]
IslValuesOpt = Annotated[
    str | None, typer.Option("--isl-values", help="Empirical input lengths, drawn uniformly: 128,512,2048.")
]
OslValuesOpt = Annotated[str | None, typer.Option("--osl-values", help="Empirical output lengths: 64,256.")]
MultiTurnOpt = Annotated[
    int, typer.Option("--multi-turn", help="Turns per session; each prompt is the conversation so far + a message.")
]
ThinkTimeOpt = Annotated[
    str | None, typer.Option("--think-time", help="Time between a reply and the next turn, e.g. 5s (default 0).")
]
SharedPrefixOpt = Annotated[
    str | None, typer.Option("--shared-prefix", help="COUNTxTOKENS distinct system prompts, e.g. 4x2000.")
]
PrefixCachingOpt = Annotated[
    bool, typer.Option("--prefix-caching/--no-prefix-caching", help="The engine's automatic prefix cache.")
]
LoraAdaptersOpt = Annotated[int, typer.Option("--lora-adapters", help="LoRA adapters requests spread over (0: none).")]
LoraRankOpt = Annotated[int, typer.Option("--lora-rank", help="The adapters' rank.")]
LoraTargetsOpt = Annotated[
    str, typer.Option("--lora-targets", help="Adapted modules: all, attention, mlp or q_proj,v_proj,...")
]
MaxLorasOpt = Annotated[
    int | None, typer.Option("--max-loras", help="Adapters in one batch (GPU slots; default min(adapters, 16)).")
]
MaxLoraRankOpt = Annotated[int | None, typer.Option("--max-lora-rank", help="Slot rank (default: the adapters').")]
MaxCpuLorasOpt = Annotated[
    int | None, typer.Option("--max-cpu-loras", help="Adapters kept in host memory (default: all).")
]
CpuOffloadOpt = Annotated[
    float | None, typer.Option("--cpu-offload-gb", help="GiB of weights per GPU kept in host memory (vLLM's flag).")
]
KvOffloadOpt = Annotated[
    float | None, typer.Option("--kv-offload-gb", help="GiB of host memory for a KV-cache tier (per replica).")
]


def _ints(text: str | None, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in csv_list(text))
    except ValueError:
        raise InputError(f"{option} '{text}': write whole numbers separated by commas, e.g. 128,512,2048") from None
    return values


def length_dists(
    isl: int, osl: int, dist: str, cv: float, values: tuple[str | None, str | None]
) -> tuple[LengthDist, LengthDist]:
    """Input and output length distributions: ``dist`` with ``cv`` around ``isl`` / ``osl``, or the
    empirical values given (``--isl-values`` / ``--osl-values``)."""
    isl_values, osl_values = _ints(values[0], "--isl-values"), _ints(values[1], "--osl-values")
    inp = LengthDist.empirical(isl_values) if isl_values else LengthDist(isl, dist, int(isl * cv), cv)
    out = LengthDist.empirical(osl_values) if osl_values else LengthDist(osl, dist, int(osl * cv), cv)
    return inp, out


def sample_from(dataset: Path | None, tokens_per_word: float = TOKENS_PER_WORD) -> LengthSample | None:
    return read_dataset(dataset, tokens_per_word).lengths() if dataset is not None else None


def parse_shared_prefix(text: str | None) -> tuple[int, int]:
    """``4x2000`` -> (4, 2000); None -> (0, 0)."""
    if not text:
        return 0, 0
    count, sep, tokens = text.lower().partition("x")
    try:
        if not sep:
            raise ValueError
        return int(count), int(tokens)
    except ValueError:
        raise InputError(f"--shared-prefix '{text}': write COUNTxTOKENS, e.g. 4x2000") from None


def think_time_s(text: str | None) -> float:
    """``--think-time`` in seconds (0 when not given)."""
    return parse_duration_s(text) if text and text.strip() not in ("0", "0s") else 0.0


def shape_from(
    multi_turn: int, think_time: str | None, shared_prefix: str | None, adapters: int
) -> TrafficShape | None:
    """The traffic's shape, or None when it has none."""
    count, tokens = parse_shared_prefix(shared_prefix)
    shape = TrafficShape(multi_turn, think_time_s(think_time), count, tokens, adapters)
    return shape if shape != TrafficShape() else None


def feature_words(
    prefix_caching: bool, lora: tuple[Any, ...], offload: tuple[float | None, float | None]
) -> dict[str, Any]:
    """The words :func:`~inferplan.specs.features.resolve_features` reads, from the options:
    ``lora`` = (adapters, rank, targets, max_loras, max_lora_rank, max_cpu_loras)."""
    keys = ("lora_adapters", "lora_rank", "lora_targets", "max_loras", "max_lora_rank", "max_cpu_loras")
    return {"prefix_caching": prefix_caching, **dict(zip(keys, lora, strict=True))} | {
        "cpu_offload_gb": offload[0],
        "kv_offload_gb": offload[1],
    }
