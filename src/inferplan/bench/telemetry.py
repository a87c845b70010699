"""Scrape a server's Prometheus ``/metrics`` during a run: queue length, running batch and
KV-cache usage (vLLM, SGLang and llama.cpp names)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable

from inferplan.bench.http import HttpError, Transport

__all__ = ["WATCHED", "parse_prometheus", "scrape_loop"]

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
}
_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEinfINFNa]+)")


def parse_prometheus(text: str) -> dict[str, float]:
    """Sum of each watched metric over its label sets."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if not match or match.group(1) not in WATCHED:
            continue
        try:
            value = float(match.group(3))
        except ValueError:
            continue
        key = WATCHED[match.group(1)]
        out[key] = out.get(key, 0.0) + value
    return out


async def scrape_loop(
    transport: Transport,
    url: str,
    sink: Callable[[float, dict[str, float]], None],
    stop: asyncio.Event,
    interval_s: float = 1.0,
) -> bool:
    """Sample until ``stop`` is set; returns False when the server has no usable /metrics."""
    t0 = time.perf_counter()
    while not stop.is_set():
        try:
            status, body = await transport.get(f"{url.rstrip('/')}/metrics")
        except HttpError:
            return False
        if status != 200:
            return False
        values = parse_prometheus(body.decode("utf-8", errors="replace"))
        if values:
            sink(time.perf_counter() - t0, values)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
    return True
