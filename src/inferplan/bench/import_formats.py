"""Result files of other benchmark clients imported as runs, each recognised by its own keys,
with every figure put in inferplan's definitions (``runs import`` detects the format):

================  =========================================  ==================================
client            file                                       what becomes the run
================  =========================================  ==================================
vllm bench serve  ``--save-result`` JSON                     with ``--save-detailed``: every
                                                             request (its chunks' gaps); else
                                                             its summary figures
GuideLLM 0.8      ``benchmarks.json``                        one run per benchmark, figures
                                                             from each request's timings
AIPerf 0.13       ``profile_export_aiperf.json`` (with       every request (its chunks' gaps)
                  ``profile_export.jsonl`` beside it) or     from the JSON lines; else the
                  the JSON lines alone                       aggregate figures
================  =========================================  ==================================

Where a client defines a figure differently, its run says so (``summary["definitions"]``):
GuideLLM's ``inter_token_latency_ms`` is inferplan's TPOT (token-weighted in its own
aggregates; recomputed here per request), its ``request_latency`` ends at the stream's end
(here E2E ends at the last token, as it stamps it), and it keeps no per-chunk times (no ITL);
AIPerf's ``inter_token_latency`` is TPOT, its ``inter_chunk_latency`` ITL, and its token counts
come from a client-side tokenizer unless it ran with ``--use-server-token-count``.
Every byte of these files is untrusted: sizes are bounded, and values of the wrong type are
read as missing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from inferplan.bench.import_clients import aiperf_import, guidellm_import
from inferplan.bench.imported import Imported, number, summary_from_figures
from inferplan.bench.store import ResultsStore
from inferplan.bench.summary import summarize_records
from inferplan.bench.vllm_result import MAX_RESULT_BYTES, read_vllm_result
from inferplan.errors import ConfigError

__all__ = ["FORMATS", "detect_format", "import_result_file", "read_result_file"]

FORMATS = ("vllm-bench", "guidellm", "aiperf")


def _read(path: Path) -> Any:
    try:
        if path.stat().st_size > MAX_RESULT_BYTES:
            raise ConfigError(f"{path}: over {MAX_RESULT_BYTES >> 20} MiB; not a benchmark result file")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {str(exc)[:120]}") from exc
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    try:  # JSON lines (AIPerf's profile_export.jsonl)
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{path} is neither JSON nor JSON lines: {str(exc)[:120]}") from exc


def detect_format(data: Any) -> str | None:
    """vllm-bench, guidellm or aiperf, from the keys only each writes; None when none fits."""
    if isinstance(data, list):
        lines = [x for x in data[:5] if isinstance(x, dict)]
        return "aiperf" if lines and all("metrics" in x and "metadata" in x for x in lines) else None
    if not isinstance(data, dict):
        return None
    metadata = data.get("metadata")
    if isinstance(data.get("benchmarks"), list) and isinstance(metadata, dict) and "guidellm_version" in metadata:
        return "guidellm"
    if "aiperf_version" in data or isinstance(data.get("time_to_first_token"), dict):
        return "aiperf"
    if "ttfts" in data or ("backend" in data and any(k in data for k in ("mean_ttft_ms", "mean_e2el_ms"))):
        return "vllm-bench"
    return None


def _vllm_summary_only(data: dict[str, Any]) -> dict[str, Any]:
    """A result saved without --save-detailed: its own percentiles (p90 where it has one)."""
    figures = {}
    for ours, theirs in (("ttft_s", "ttft"), ("tpot_s", "tpot"), ("itl_s", "itl"), ("e2e_s", "e2el")):
        cells = {"mean": f"mean_{theirs}_ms", "p50": f"median_{theirs}_ms"} | {
            q: f"{q}_{theirs}_ms" for q in ("p90", "p99")
        }
        figures[ours] = {q: (v / 1e3 if (v := number(data.get(k))) is not None else None) for q, k in cells.items()}
    completed, failed = int(number(data.get("completed")) or 0), int(number(data.get("failed")) or 0)
    out = summary_from_figures((completed + failed, failed, 0), number(data.get("duration")), figures)
    out["request_throughput_per_s"] = number(data.get("request_throughput"))
    out["output_token_throughput_per_s"] = number(data.get("output_throughput"))
    out["total_token_throughput_per_s"] = number(data.get("total_token_throughput"))
    out["goodput_requests_per_s"] = number(data.get("request_goodput"))
    return out


def _vllm(path: Path, data: dict[str, Any]) -> list[Imported]:
    machine = {"client": "vllm bench serve", "source": str(path)}
    if "ttfts" in data:
        result = read_vllm_result(path)
        summary = summarize_records(result.records) | {"source": result.summary}
        return [Imported("vllm-bench", result.config, machine, result.model or None, result.records, summary)]
    config = {k: data.get(k) for k in ("backend", "model_id", "num_prompts", "request_rate", "max_concurrency")}
    model = str(data.get("model_id") or "")[:200] or None
    notes = ["summary figures only (saved without --save-detailed); p90 where --metric-percentiles had it"]
    return [Imported("vllm-bench", config, machine, model, [], _vllm_summary_only(data) | {"definitions": notes})]


def read_result_file(path: Path) -> list[Imported]:
    """Every run in a vllm bench serve, GuideLLM or AIPerf result file."""
    data = _read(path)
    kind = detect_format(data)
    if kind == "vllm-bench":
        return _vllm(path, data)
    if kind == "guidellm":
        return guidellm_import(path, data)
    if kind == "aiperf":
        return aiperf_import(path, data)
    raise ConfigError(
        f"{path}: not a result file of vllm bench serve (--save-result), GuideLLM (benchmarks.json) or AIPerf "
        "(profile_export_aiperf.json or profile_export.jsonl)"
    )


def import_result_file(store: ResultsStore, path: Path) -> list[int]:
    """Every run in the file stored; returns their ids (read and checked before any is stored)."""
    runs = read_result_file(path)
    if not runs:
        raise ConfigError(f"{path}: the file holds no benchmark runs")
    return [store.add_imported(run) for run in runs]
