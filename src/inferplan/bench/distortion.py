"""When the client's own delays could distort what a run reports.

Two delays are the client's: *send lag* (a request written after its scheduled time) and
*event-loop lag* (a timer run after its due time: a chunk that arrives while the loop is
busy waits about as long before it is stamped). At each percentile q of a metric the
client can add at most

* TTFT, E2E: send lag(q) + loop lag(q)
* ITL:       loop lag(q)        (either end of a gap can be late)
* TPOT:      loop lag(q) / (median output tokens - 1)   (a late last chunk, spread over the tokens)

A run warns when that bound is more than :data:`SHARE` of the metric at that percentile.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from inferplan.bench.record import RequestRecord

__all__ = ["SHARE", "client_lags", "distortion_warning"]

SHARE = 0.10
PERCENTILES = ("p50", "p99")


def _quantiles(values: list[float]) -> dict[str, float | None]:
    a = np.array([v for v in values if math.isfinite(v)], dtype=float)
    if not a.size:
        return {"p50": None, "p99": None, "max": None}
    p50, p99 = np.percentile(a, [50, 99])
    return {"p50": float(p50), "p99": float(p99), "max": float(a.max())}


def client_lags(loop_lags_s: list[float], records: list[RequestRecord]) -> dict[str, Any]:
    """The client's own delays in a run, at p50, p99 and max."""
    tokens = [r.output_tokens for r in records if r.ok]
    return {
        "loop_lag_s": _quantiles(loop_lags_s),
        "send_lag_s": _quantiles([r.sent_s - r.scheduled_s for r in records]),
        "median_output_tokens": float(np.median(tokens)) if tokens else None,
    }


def _bound(metric: str, q: str, lags: dict[str, Any]) -> float | None:
    loop, send = lags["loop_lag_s"][q], lags["send_lag_s"][q]
    if loop is None:
        return None
    if metric in ("ttft_s", "e2e_s"):
        return float(loop + (send or 0.0))
    if metric == "tpot_s":
        n = lags.get("median_output_tokens") or 2.0
        return float(loop / max(n - 1.0, 1.0))
    return float(loop)


def distortion_warning(summary: dict[str, Any]) -> str | None:
    """One line naming each metric and percentile the client's delays could distort."""
    lags = summary.get("client")
    if not lags:
        return None
    found = []
    for metric, name in (("ttft_s", "TTFT"), ("itl_s", "ITL"), ("tpot_s", "TPOT"), ("e2e_s", "E2E")):
        for q in PERCENTILES:
            value = summary[metric].get(q)
            bound = _bound(metric, q, lags)
            if value is None or bound is None or not math.isfinite(value) or value <= 0:
                continue
            if bound > SHARE * value:
                found.append(f"{name} {q} {value * 1e3:.2f} ms (up to {bound * 1e3:.2f} ms)")
    if not found:
        return None
    loop_p99, send_p99 = (lags[k]["p99"] or 0.0 for k in ("loop_lag_s", "send_lag_s"))
    return (
        f"the client's own delays (event-loop lag p99 {loop_p99 * 1e3:.2f} ms, send lag p99 {send_p99 * 1e3:.2f} ms) "
        f"could be over {SHARE:.0%} of: " + ", ".join(found) + ". Run fewer streams per client process, "
        "or a quieter machine, to measure these."
    )
