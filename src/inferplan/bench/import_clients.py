"""GuideLLM's ``benchmarks.json`` and AIPerf's exports read as runs (the formats and how their
figures map to inferplan's: :mod:`inferplan.bench.import_formats`; the keys:
/work/scratch/ecosystem/benchmark_field_map.json, from GuideLLM 0.8.1's
``guidellm/benchmark/schemas`` and AIPerf 0.13.0's ``common/models/export_models.py``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from inferplan.bench.imported import Imported, number, summary_from_figures
from inferplan.bench.record import CANCELLED, RequestRecord
from inferplan.bench.summary import summarize_records

__all__ = ["AIPERF_NOTES", "GUIDELLM_NOTES", "aiperf_import", "guidellm_import"]

MAX_RUNS = 1000
GUIDELLM_NOTES = [
    "GuideLLM: TTFT from its request start; TPOT = (last token - first token) / (output tokens - 1), per "
    "request (its own inter_token_latency_ms aggregates weight by tokens); E2E to the last token (its "
    "request_latency runs to the stream's end); no per-chunk times, so no ITL",
]
AIPERF_NOTES = [
    "AIPerf: inter_token_latency is TPOT, inter_chunk_latency is ITL; E2E ends at the last content chunk",
]
_SCALE = {"ms": 1e-3, "ns": 1e-9, "us": 1e-6, "sec": 1.0, "s": 1.0, "seconds": 1.0}


def _dict(x: object) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _list(x: object) -> list[Any]:
    return x if isinstance(x, list) else []


def _text(x: object, limit: int = 200) -> str | None:
    return x[:limit] if isinstance(x, str) and x else None


def _count(x: object) -> int:
    v = number(x)
    return max(int(v), 0) if v is not None else 0


# -- GuideLLM ------------------------------------------------------------------------------------


def _guidellm_record(i: int, r: dict[str, Any], t0: float, outcome: str) -> RequestRecord | None:
    info = _dict(r.get("info"))
    t = _dict(info.get("timings"))
    start = number(t.get("request_start"))
    if start is None:
        return None
    first, last, end = (number(t.get(k)) for k in ("first_token_iteration", "last_token_iteration", "request_end"))
    times = [] if first is None else [first - t0] + ([last - t0] if last is not None and last > first else [])
    nan = math.nan
    return RequestRecord(
        i,
        start - t0,
        start - t0,
        times[0] if times else nan,
        (end - t0) if end is not None else nan,
        times,
        _count(r.get("prompt_tokens")),
        _count(r.get("output_tokens")),
        "usage",
        200 if outcome == "" else 0,
        outcome,
        (_text(info.get("error")) or "") if outcome else "",
    )


def _guidellm_run(path: Path, version: str, b: dict[str, Any]) -> Imported:
    config = _dict(b.get("config"))
    backend = _dict(config.get("backend"))
    groups = _dict(b.get("requests"))
    listed = [("", r) for r in _list(groups.get("successful"))]
    listed += [("imported_error", r) for r in _list(groups.get("errored"))]
    listed += [(CANCELLED, r) for r in _list(groups.get("incomplete"))]
    starts = [number(_dict(_dict(_dict(r).get("info")).get("timings")).get("request_start")) for _, r in listed]
    t0 = min((s for s in starts if s is not None), default=0.0)
    records = [rec for i, (o, r) in enumerate(listed) if (rec := _guidellm_record(i, _dict(r), t0, o)) is not None]
    summary = summarize_records(records)
    summary["itl_s"] = {"mean": None, "p50": None, "p90": None, "p99": None}  # no per-chunk times in the file
    totals = _dict(_dict(_dict(b.get("metrics")).get("request_totals")))
    if totals:
        sent, failed, cancelled = (_count(totals.get(k)) for k in ("total", "errored", "incomplete"))
        summary.update(sent=sent, succeeded=max(sent - failed - cancelled, 0), failed=failed, cancelled=cancelled)
    summary["definitions"] = GUIDELLM_NOTES + (
        [f"latencies from the {len(records)} requests the file lists (of {summary['sent']})"]
        if len(records) < summary["sent"]
        else []
    )
    machine = {"client": "guidellm", "client_version": version, "source": str(path)}
    strategy = _dict(config.get("strategy"))
    run_config = {
        "strategy": {k: v for k, v in strategy.items() if isinstance(v, str | int | float) or v is None},
        "backend": {k: backend.get(k) for k in ("kind", "target", "model", "request_format")},
        "duration_s": number(b.get("duration")),
    }
    return Imported("guidellm", run_config, machine, _text(backend.get("model")), [], summary)


def guidellm_import(path: Path, data: dict[str, Any]) -> list[Imported]:
    version = str(_dict(data.get("metadata")).get("guidellm_version"))[:40]
    return [_guidellm_run(path, version, _dict(b)) for b in _list(data.get("benchmarks"))[:MAX_RUNS]]


# -- AIPerf --------------------------------------------------------------------------------------


def _seconds(metric: object) -> float | list[float] | None:
    """An AIPerf per-record metric ``{"value", "unit"}`` in seconds (a list stays a list)."""
    m = _dict(metric)
    scale = _SCALE.get(str(m.get("unit")))
    value = m.get("value")
    if scale is None:
        return None
    if isinstance(value, list):
        return [v * scale for v in (number(x) for x in value[:100_000]) if v is not None]
    v = number(value)
    return v * scale if v is not None else None


def _aiperf_record(i: int, row: dict[str, Any], t0_ns: float, tokens_source: str) -> RequestRecord:
    meta, metrics = _dict(row.get("metadata")), _dict(row.get("metrics"))
    start = ((number(meta.get("request_start_ns")) or t0_ns) - t0_ns) / 1e9
    keys = ("time_to_first_token", "inter_chunk_latency", "request_latency")
    ttft, gaps, latency = (_seconds(metrics.get(k)) for k in keys)
    times = [start + ttft] if isinstance(ttft, float) else []
    for gap in gaps if isinstance(gaps, list) and times else []:
        times.append(times[-1] + gap)
    error = _dict(row.get("error"))
    outcome = CANCELLED if meta.get("was_cancelled") is True else ("imported_error" if error or not times else "")
    length = _dict(metrics.get("output_sequence_length")).get("value")
    return RequestRecord(
        i,
        start,
        start,
        times[0] if times else math.nan,
        start + latency if isinstance(latency, float) else math.nan,
        times,
        _count(_dict(metrics.get("input_sequence_length")).get("value")),
        _count(length),
        tokens_source,
        0 if outcome else 200,
        outcome,
        (_text(error.get("message")) or "") if error else "",
    )


def _aiperf_records(rows: list[Any], tokens_source: str) -> list[RequestRecord]:
    rows = [_dict(r) for r in rows]
    rows = [r for r in rows if _dict(r.get("metadata")).get("benchmark_phase", "profiling") == "profiling"]
    starts = [number(_dict(r.get("metadata")).get("request_start_ns")) for r in rows]
    t0 = min((s for s in starts if s is not None), default=0.0)
    return [_aiperf_record(i, r, t0, tokens_source) for i, r in enumerate(rows)]


def _aggregate(data: dict[str, Any], tag: str) -> dict[str, float | None]:
    m = _dict(data.get(tag))
    scale = _SCALE.get(str(m.get("unit")), 1e-3)
    return {
        q: (v * scale if (v := number(m.get(k))) is not None else None)
        for q, k in (("mean", "avg"), ("p50", "p50"), ("p90", "p90"), ("p99", "p99"))
    }


def _aiperf_summary(data: dict[str, Any]) -> dict[str, Any]:
    """The aggregate file's figures (no per-request export beside it)."""
    errors = sum(_count(_dict(e).get("count")) for e in _list(data.get("error_summary")))
    sent = _count(_dict(data.get("request_count")).get("avg")) + errors
    latencies = {
        ours: _aggregate(data, tag)
        for ours, tag in (
            ("ttft_s", "time_to_first_token"),
            ("tpot_s", "inter_token_latency"),
            ("itl_s", "inter_chunk_latency"),
            ("e2e_s", "request_latency"),
        )
    }
    out = summary_from_figures((sent, errors, 0), number(_dict(data.get("benchmark_duration")).get("avg")), latencies)
    for ours, tag in (
        ("request_throughput_per_s", "request_throughput"),
        ("output_token_throughput_per_s", "output_token_throughput"),
        ("total_token_throughput_per_s", "total_token_throughput"),
    ):
        out[ours] = number(_dict(data.get(tag)).get("avg"))
    return out


def aiperf_import(path: Path, data: dict[str, Any] | list[Any]) -> list[Imported]:
    """From the aggregate JSON (with ``profile_export.jsonl`` beside it where there is one) or
    from the JSON lines alone."""
    aggregate = data if isinstance(data, dict) else _sibling(path, "profile_export_aiperf.json")
    rows = data if isinstance(data, list) else _sibling(path, "profile_export.jsonl")
    cfg = _dict(_dict(aggregate).get("input_config"))
    endpoint, phases = _dict(cfg.get("endpoint")), _list(cfg.get("phases"))
    server_counts = endpoint.get("use_server_token_count") is True
    notes = AIPERF_NOTES + ([] if server_counts else ["token counts from AIPerf's client-side tokenizer"])
    run_config = {
        "endpoint": {k: endpoint.get(k) for k in ("type", "streaming", "use_server_token_count")},
        "phase": {k: v for k, v in _dict(phases[0] if phases else {}).items() if isinstance(v, str | int | float)},
    }
    models = _list(_dict(cfg.get("models")).get("items"))
    model = _text(_dict(models[0] if models else {}).get("name"))
    version = str(_dict(aggregate).get("aiperf_version"))[:40]
    machine = {"client": "aiperf", "client_version": version, "source": str(path)}
    if isinstance(rows, list) and rows:
        records = _aiperf_records(rows, "usage" if server_counts else "client-tokenizer")
        summary = summarize_records(records) | {"definitions": notes}
        if isinstance(aggregate, dict):
            tags = ("time_to_first_token", "inter_token_latency", "inter_chunk_latency")
            summary["source"] = {tag: _aggregate(aggregate, tag) for tag in tags}
        return [Imported("aiperf", run_config, machine, model, records, summary)]
    summary = _aiperf_summary(_dict(aggregate)) | {"definitions": notes}
    return [Imported("aiperf", run_config, machine, model, [], summary)]


def _sibling(path: Path, name: str) -> dict[str, Any] | list[Any] | None:
    """Another export AIPerf wrote in the same folder, if readable (JSON or JSON lines)."""
    other = path.with_name(name)
    if other == path or not other.is_file() or other.stat().st_size > 512 << 20:
        return None
    try:
        text = other.read_text(encoding="utf-8")
        if name.endswith(".jsonl"):
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        loaded = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return loaded if isinstance(loaded, dict) else None
