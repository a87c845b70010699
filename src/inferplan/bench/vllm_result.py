"""A ``vllm bench serve --save-result --save-detailed`` JSON file read as request records, with
every field checked: the file is outside input like any other."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inferplan.bench.record import RequestRecord
from inferplan.errors import ConfigError

__all__ = ["MAX_RESULT_BYTES", "VllmResult", "read_vllm_result"]

MAX_RESULT_BYTES = 512 << 20
CONFIG_KEYS = ("backend", "model_id", "tokenizer_id", "num_prompts", "request_rate", "burstiness", "max_concurrency")
SUMMARY_KEYS = (
    "duration",
    "completed",
    "request_throughput",
    "output_throughput",
    "total_token_throughput",
    "mean_ttft_ms",
    "median_ttft_ms",
    "p99_ttft_ms",
    "mean_tpot_ms",
    "mean_itl_ms",
)


@dataclass(frozen=True, slots=True)
class VllmResult:
    config: dict[str, Any]
    summary: dict[str, Any]
    model: str
    records: list[RequestRecord]


def _seconds(x: object) -> float | None:
    ok = isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x >= 0
    return float(x) if ok else None  # type: ignore[arg-type]


def _count(x: object) -> int:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        return 0
    return max(int(x), 0)


def _scalar(x: object) -> object:
    """A JSON scalar kept as is (finite numbers, short strings), anything else dropped."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, str):
        return x[:200]
    return x if isinstance(x, int | float | bool) or x is None else None


def _record(
    i: int, start: float, ttft: object, itl: object, lens_error: tuple[object, object, object]
) -> RequestRecord:
    """One request: sent ``start`` seconds after the first, its first token ``ttft`` later,
    then one content chunk after each gap of ``itl``."""
    n_in, n_out, error = lens_error
    err = str(error)[:200] if error else ""
    first = _seconds(ttft)
    times = [start + first] if first is not None else []
    for gap in itl if isinstance(itl, list) and times else []:
        g = _seconds(gap)
        if g is not None:
            times.append(times[-1] + g)
    nan = float("nan")
    return RequestRecord(
        i,
        start,
        start,
        times[0] if times else nan,
        times[-1] if times else nan,
        times,
        _count(n_in),
        _count(n_out),
        "usage",
        200 if not err else 0,
        "imported_error" if err or first is None else "",
        err or ("" if first is not None else "no time to first token in the file"),
    )


def _starts(data: dict[str, Any], n: int) -> list[float]:
    """Each request's send time after the first (``start_times``, vLLM's perf_counter stamps);
    all 0 when the file has none."""
    raw = data.get("start_times")
    stamps = [_seconds(x) for x in raw[:n]] if isinstance(raw, list) and len(raw) >= n else []
    if not stamps or any(x is None for x in stamps):
        return [0.0] * n
    t0 = min(x for x in stamps if x is not None)
    return [float(x) - t0 for x in stamps if x is not None]


def read_vllm_result(path: Path) -> VllmResult:
    """The file's runs settings, summary figures and one record per request."""
    try:
        if path.stat().st_size > MAX_RESULT_BYTES:
            raise ConfigError(f"{path}: over {MAX_RESULT_BYTES >> 20} MiB; not a vllm bench serve result")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ConfigError(f"cannot read {path} as JSON: {str(exc)[:120]}") from exc
    need = ("ttfts", "itls", "input_lens", "output_lens")
    missing = [k for k in need if not isinstance(data, dict) or not isinstance(data.get(k), list)]
    if missing:
        raise ConfigError(
            f"{path}: not a 'vllm bench serve --save-result' file (missing {', '.join(missing)}); "
            "save with --save-result --save-detailed"
        )
    errors = data.get("errors") if isinstance(data.get("errors"), list) else []
    rows = list(zip(data["ttfts"], data["itls"], data["input_lens"], data["output_lens"], strict=False))
    starts = _starts(data, len(rows))
    records = [
        _record(i, starts[i], ttft, itl, (n_in, n_out, errors[i] if i < len(errors) else ""))
        for i, (ttft, itl, n_in, n_out) in enumerate(rows)
    ]
    return VllmResult(
        {k: _scalar(data.get(k)) for k in (*CONFIG_KEYS, "date")},
        {k: _scalar(data.get(k)) for k in SUMMARY_KEYS},
        str(data.get("model_id") or "")[:200],
        records,
    )
