"""Summarise request records: counts by outcome, latency percentiles, throughput, goodput."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from inferplan.bench.record import RequestRecord, split_outcomes
from inferplan.perf.metrics import Slo, percentiles

__all__ = ["final_status", "summarize_records"]


def _finite(values: list[float]) -> np.ndarray:
    a = np.array(values, dtype=float)
    out: np.ndarray = a[np.isfinite(a)]
    return out


def final_status(records: list[RequestRecord]) -> str:
    """'complete' when every sent request succeeded, 'partial' when some did, 'failed' when
    none did (or none was sent)."""
    ok = sum(r.ok for r in records)
    if records and ok == len(records):
        return "complete"
    return "partial" if ok else "failed"


def _good(r: RequestRecord, slo: Slo) -> bool:
    return (
        (slo.ttft_s is None or r.ttft_s <= slo.ttft_s)
        and (slo.e2e_s is None or r.e2e_s <= slo.e2e_s)
        and (slo.tpot_s is None or r.output_tokens <= 1 or r.tpot_s <= slo.tpot_s)
    )


def summarize_records(records: list[RequestRecord], slo: Slo | None = None) -> dict[str, Any]:
    """The run's figures; every sent request is counted once, as succeeded, failed or cancelled."""
    slo = slo or Slo()
    ok, failed, cancelled = split_outcomes(records)
    failures = Counter(r.error for r in failed)
    ttft = _finite([r.ttft_s for r in ok])
    e2e = _finite([r.e2e_s for r in ok])
    tpot = _finite([r.tpot_s for r in ok if r.output_tokens > 1])
    itl = _finite([g for r in ok for g in r.gaps_s()])
    start = min((r.scheduled_s for r in records), default=0.0)
    end = max((r.end_s for r in records if math.isfinite(r.end_s)), default=start)
    duration = max(end - start, 1e-9)
    out_tokens = sum(r.output_tokens for r in ok)
    in_tokens = sum(r.input_tokens for r in ok)
    lags = _finite([r.sent_s - r.scheduled_s for r in records])
    return {
        "sent": len(records),
        "succeeded": len(ok),
        "failed": len(failed),
        "cancelled": cancelled,
        "failures": dict(failures),
        "duration_s": duration,
        "ttft_s": percentiles(ttft).as_dict(),
        "tpot_s": percentiles(tpot).as_dict(),
        "itl_s": percentiles(itl).as_dict(),
        "e2e_s": percentiles(e2e).as_dict(),
        "request_throughput_per_s": len(ok) / duration,
        "output_token_throughput_per_s": out_tokens / duration,
        "total_token_throughput_per_s": (out_tokens + in_tokens) / duration,
        "goodput_requests_per_s": sum(_good(r, slo) for r in ok) / duration,
        "output_tokens_from_usage": all(r.tokens_source == "usage" for r in ok),
        "content_chunks": sum(len(r.chunk_times_s) for r in records),
        "send_lag_p99_s": float(np.percentile(lags, 99)) if lags.size else 0.0,
        "first_failure": next((f"{r.error}: {r.detail}" for r in failed), None),
        "slo": {"ttft_s": slo.ttft_s, "tpot_s": slo.tpot_s, "e2e_s": slo.e2e_s},
    }
