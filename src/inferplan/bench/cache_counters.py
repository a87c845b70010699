"""The prefix-cache hit rate a server reports (issue 13), stored with each run: its counters read
once before the run's first request and once after its last (each read bounded), and the increase.

vLLM 0.32 (``vllm/v1/metrics/loggers.py``): ``vllm:prefix_cache_queries_total`` (prompt tokens of
requests when first scheduled) and ``vllm:prefix_cache_hits_total`` (of those, found cached);
``vllm:external_prefix_cache_*`` for a KV connector's tier (host memory). SGLang:
``sglang:prompt_tokens_total`` and ``sglang:cached_tokens_total`` (every ``cache_source``)."""

from __future__ import annotations

import asyncio
from typing import Any

from inferplan.bench.deadline import Deadline, Timeouts, bounded
from inferplan.bench.http import HttpError, Transport
from inferplan.bench.telemetry import SCRAPE_TIMEOUT_S, parse_prometheus

__all__ = ["COUNTER_NAMES", "cache_counters", "counter_increase"]

#: inferplan's names of the counters (bench/telemetry.py's WATCHED map).
COUNTER_NAMES = ("prefix_queries", "prefix_hits", "prefix_external_queries", "prefix_external_hits")


async def cache_counters(transport: Transport, root_url: str, timeouts: Timeouts) -> dict[str, float] | None:
    """The counters as the server's ``/metrics`` shows them now (None: no answer, or none of them)."""
    deadline: Deadline | None = None
    try:
        async with bounded(timeouts.capped(SCRAPE_TIMEOUT_S)) as deadline:
            status, body = await transport.get(f"{root_url.rstrip('/')}/metrics", deadline)
    except (TimeoutError, HttpError, OSError, asyncio.IncompleteReadError):
        return None
    if status != 200:
        return None
    values = parse_prometheus(body.decode("utf-8", errors="replace"))
    found = {k: values[k] for k in COUNTER_NAMES if k in values}
    return found or None


def counter_increase(before: dict[str, float] | None, after: dict[str, float] | None) -> dict[str, Any] | None:
    """What the run added: queried and hit tokens and their ratio (None when either read failed)."""
    if not before or not after or "prefix_queries" not in after:
        return None
    delta = {k: max(after.get(k, 0.0) - before.get(k, 0.0), 0.0) for k in COUNTER_NAMES if k in after}
    queries = delta.get("prefix_queries", 0.0)
    hits = delta.get("prefix_hits", 0.0)
    return {
        "queried_tokens": queries,
        "hit_tokens": hits,
        "hit_rate": hits / queries if queries > 0 else None,
        "external_hit_tokens": delta.get("prefix_external_hits"),
    }
