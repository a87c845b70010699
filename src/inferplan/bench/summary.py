"""Summarise request records: counts by outcome, latency percentiles, throughput, goodput."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from inferplan.bench.client import RequestRecord
from inferplan.perf.metrics import Slo, percentiles

__all__ = ["summarize_records"]


def summarize_records(records: list[RequestRecord], slo: Slo | None = None) -> dict[str, Any]:
    """The run's figures; every sent request is counted once as succeeded or as a failure."""
    slo = slo or Slo()
    ok = [r for r in records if r.ok]
    failures = Counter(r.error for r in records if not r.ok)
    ttft = np.array([r.ttft_s for r in ok])
    e2e = np.array([r.e2e_s for r in ok])
    multi = [r for r in ok if r.output_tokens > 1]
    tpot = np.array([(r.e2e_s - r.ttft_s) / (r.output_tokens - 1) for r in multi])
    itl = np.array([b - a for r in ok for a, b in zip(r.chunk_times_s, r.chunk_times_s[1:], strict=False)])
    start = min((r.scheduled_s for r in records), default=0.0)
    end = max((r.end_s for r in records if not math.isnan(r.end_s)), default=start)
    duration = max(end - start, 1e-9)
    out_tokens = sum(r.output_tokens for r in ok)
    in_tokens = sum(r.input_tokens for r in ok)
    good = [
        r
        for r in ok
        if (slo.ttft_s is None or r.ttft_s <= slo.ttft_s)
        and (slo.e2e_s is None or r.e2e_s <= slo.e2e_s)
        and (slo.tpot_s is None or r.output_tokens <= 1 or (r.e2e_s - r.ttft_s) / (r.output_tokens - 1) <= slo.tpot_s)
    ]
    lags = np.array([r.sent_s - r.scheduled_s for r in records if not math.isnan(r.sent_s)])
    return {
        "sent": len(records),
        "succeeded": len(ok),
        "failed": sum(failures.values()),
        "failures": dict(failures),
        "duration_s": duration,
        "ttft_s": percentiles(ttft).as_dict(),
        "tpot_s": percentiles(tpot).as_dict(),
        "itl_s": percentiles(itl).as_dict(),
        "e2e_s": percentiles(e2e).as_dict(),
        "request_throughput_per_s": len(ok) / duration,
        "output_token_throughput_per_s": out_tokens / duration,
        "total_token_throughput_per_s": (out_tokens + in_tokens) / duration,
        "goodput_requests_per_s": len(good) / duration,
        "output_tokens_from_usage": all(r.tokens_source == "usage" for r in ok),
        "send_lag_p99_s": float(np.percentile(lags, 99)) if lags.size else 0.0,
        "first_failure": next((f"{r.error}: {r.detail}" for r in records if not r.ok), None),
        "slo": {"ttft_s": slo.ttft_s, "tpot_s": slo.tpot_s, "e2e_s": slo.e2e_s},
    }
