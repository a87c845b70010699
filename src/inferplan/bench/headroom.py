"""Can the client send the load without adding latency? ``bench self-check`` stores what one
client process sustains on this machine (content chunks per second with its share of ITL
p99 within 10% of the server's gap, :func:`~inferplan.bench.selfcheck.sustained_chunks_per_s`);
a ``bench serve`` whose load needs more than that from each of its workers is warned, before
the run (an open-loop rate needs rate x output tokens chunks per second at most: one chunk per
token) and after it (the chunks each worker actually took per second).
"""

from __future__ import annotations

import math
import platform

from inferplan.bench.store import ResultsStore

__all__ = ["MEASUREMENT", "needed_chunks_per_s", "stored_capacity", "took_chunks_per_s", "worker_warning"]

MEASUREMENT = "sustained_chunks_per_s"


def stored_capacity(store: ResultsStore, host: str | None = None) -> float | None:
    """The latest self-check's sustained chunks per second on ``host`` (this machine by default)."""
    host = host or platform.node()
    for run in reversed(store.runs()):
        if run.kind != "self-check" or run.machine.get("host") != host:
            continue
        for m in store.measurements(run.id):
            if m["name"] == MEASUREMENT and m["value"] is not None and m["value"] > 0:
                return float(m["value"])
    return None


def needed_chunks_per_s(rate_per_s: float, output_tokens: int) -> float:
    """Chunks per second an open-loop rate brings at most: one chunk per output token."""
    return rate_per_s * output_tokens


def took_chunks_per_s(chunks: int, duration_s: float) -> float:
    return chunks / duration_s if duration_s > 0 else math.nan


def worker_warning(chunks_per_s: float, workers: int, capacity: float | None, measured: bool) -> str | None:
    """One line when each of ``workers`` needs (or took) more of ``chunks_per_s`` than one
    client process sustains."""
    each = chunks_per_s / max(workers, 1)
    if capacity is None or not math.isfinite(each) or each <= capacity:
        return None
    verb = "took" if measured else "needs up to"
    return (
        f"each of {workers} client process(es) {verb} {each:,.0f} chunks/s; one sustains {capacity:,.0f} "
        "without adding latency (inferplan bench self-check on this machine): give --ray ADDRESS "
        f"--workers {math.ceil(chunks_per_s / capacity)} or more"
    )
