"""Scrape a server's Prometheus ``/metrics`` during a run: queue length, running batch and
KV-cache usage (vLLM, SGLang and llama.cpp names).

Every scrape is bounded (``SCRAPE_TIMEOUT_S`` or the user's tighter limits); a scrape that
fails is counted with its reason, three failures in a row end the scraping, and the run
stops the scraper at once when it ends (a scrape in flight is dropped, never waited for).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from collections.abc import Callable

from inferplan.bench.deadline import Deadline, Timeouts, bounded
from inferplan.bench.http import HttpError, Transport

__all__ = ["SCRAPE_TIMEOUT_S", "WATCHED", "Scraper", "parse_prometheus"]

SCRAPE_TIMEOUT_S = 5.0
MAX_FAILURES_IN_A_ROW = 3

#: metric name in the server's exposition -> inferplan's name
WATCHED = {
    "vllm:num_requests_running": "running",
    "vllm:num_requests_waiting": "waiting",
    "vllm:kv_cache_usage_perc": "kv_usage",
    "vllm:gpu_cache_usage_perc": "kv_usage",
    "sglang:num_running_reqs": "running",
    "sglang:num_queue_reqs": "waiting",
    "sglang:token_usage": "kv_usage",
    "llamacpp:requests_processing": "running",
    "llamacpp:requests_deferred": "waiting",
    "llamacpp:kv_cache_usage_ratio": "kv_usage",
    # issue 14: vLLM's speculative-decoding counters (cumulative; bench/spec_acceptance.py)
    "vllm:spec_decode_num_drafts_total": "spec_drafts",
    "vllm:spec_decode_num_draft_tokens_total": "spec_draft_tokens",
    "vllm:spec_decode_num_accepted_tokens_total": "spec_accepted_tokens",
    # issue 13: prefix-cache counters (cumulative; bench/cache_counters.py)
    "vllm:prefix_cache_queries_total": "prefix_queries",
    "vllm:prefix_cache_hits_total": "prefix_hits",
    "vllm:external_prefix_cache_queries_total": "prefix_external_queries",
    "vllm:external_prefix_cache_hits_total": "prefix_external_hits",
    "sglang:prompt_tokens_total": "prefix_queries",
    "sglang:cached_tokens_total": "prefix_hits",
}
_PREFIXES = tuple(WATCHED)
_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEinfINFNa]+)")


def parse_prometheus(text: str) -> dict[str, float]:
    """Sum of each watched metric over its label sets (non-finite values are skipped)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith(_PREFIXES):
            continue
        match = _LINE.match(line)
        if not match or match.group(1) not in WATCHED:
            continue
        try:
            value = float(match.group(3))
        except ValueError:
            continue
        if math.isfinite(value):
            key = WATCHED[match.group(1)]
            out[key] = out.get(key, 0.0) + value
    return out


class Scraper:
    """``await scraper.run(stop)`` samples every ``interval_s`` until ``stop`` is set; its
    counts stay readable when the task is cancelled."""

    def __init__(
        self, transport: Transport, root_url: str, sink: Callable[[float, dict[str, float]], None], timeouts: Timeouts
    ) -> None:
        self.transport, self.url, self.sink = transport, f"{root_url.rstrip('/')}/metrics", sink
        self.timeouts = timeouts.capped(SCRAPE_TIMEOUT_S)
        self.samples = 0
        self.failures = 0
        self.error: str | None = None
        self.available = True  # False once the server showed it has no usable /metrics

    async def _scrape(self) -> dict[str, float] | None:
        deadline: Deadline | None = None
        try:
            async with bounded(self.timeouts) as deadline:
                status, body = await self.transport.get(self.url, deadline)
        except TimeoutError:
            self.error = deadline.outcome()[1] if deadline else "timeout"
            return None
        except (HttpError, OSError, asyncio.IncompleteReadError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"[:200]
            return None
        if status != 200:
            self.error, self.available = f"/metrics answered HTTP {status}", False
            return None
        return parse_prometheus(body.decode("utf-8", errors="replace"))

    async def run(self, stop: asyncio.Event, interval_s: float = 1.0) -> None:
        t0 = time.perf_counter()
        in_a_row = 0
        while not stop.is_set() and self.available:
            values = await self._scrape()
            if values is None:
                self.failures += 1
                in_a_row += 1
                if in_a_row >= MAX_FAILURES_IN_A_ROW:
                    return
            else:
                in_a_row = 0
                if values:
                    self.samples += 1
                    self.sink(time.perf_counter() - t0, values)
                elif not self.samples:
                    self.available, self.error = False, "/metrics has none of the watched metrics"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)

    def summary(self) -> dict[str, object]:
        return {"samples": self.samples, "failed_scrapes": self.failures, "error": self.error}
