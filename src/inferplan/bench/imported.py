"""A run imported from another benchmark client's result file, in inferplan's shape
(:mod:`inferplan.bench.import_formats` reads the files)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from inferplan.bench.record import RequestRecord
from inferplan.bench.summary import summarize_records

__all__ = ["Imported", "number", "summary_from_figures"]


@dataclass(frozen=True, slots=True)
class Imported:
    """One run from a file: its settings, who measured it, its requests (empty when the file
    keeps none with chunk times) and its summary in inferplan's shape."""

    kind: str
    config: dict[str, Any]
    machine: dict[str, Any]
    model: str | None
    records: list[RequestRecord] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def number(x: object) -> float | None:
    """A finite JSON number as a float; None for anything else (strings, booleans, NaN)."""
    ok = isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
    return float(x) if ok else None  # type: ignore[arg-type]


def summary_from_figures(
    counts: tuple[int, int, int], duration_s: float | None, latencies: dict[str, dict[str, float | None]]
) -> dict[str, Any]:
    """A run summary from figures a client computed (``latencies``: ttft_s, tpot_s, itl_s, e2e_s
    -> mean, p50, p90, p99 in seconds); throughputs are left to the caller."""
    sent, failed, cancelled = counts
    out = summarize_records([])
    out.update(sent=sent, succeeded=max(sent - failed - cancelled, 0), failed=failed, cancelled=cancelled)
    out["duration_s"] = duration_s
    empty = {"mean": None, "p50": None, "p90": None, "p99": None}
    for key in ("ttft_s", "tpot_s", "itl_s", "e2e_s"):
        out[key] = empty | latencies.get(key, {})
    out["failures"] = {"imported_error": failed} if failed else {}
    for key in ("request_throughput_per_s", "output_token_throughput_per_s", "total_token_throughput_per_s"):
        out[key] = None
    out["goodput_requests_per_s"] = None
    return out
