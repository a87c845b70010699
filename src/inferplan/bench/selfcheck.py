"""How much does the client itself add to each metric it reports? Run it against inferplan's
local streaming server in a process of its own. The server stamps, on the monotonic clock
both processes share, when it sent each content chunk, so for every request the part that
is not the client's is known exactly:

* TTFT: first chunk sent - request written by the client (the server's time, with the
        network and the server's own queue before it reads the request)
* ITL:  each gap between two chunks' send times
* TPOT: (last chunk sent - first chunk sent) / (output tokens - 1)
* E2E:  last chunk sent - request written

The client's share is measured minus that, per request (per gap for ITL): for TTFT and E2E
its send lag plus how long after the server sent a chunk the client stamped it; for ITL and
TPOT how much later one chunk was stamped than another. It is reported at p50, p99 and max
beside both distributions. The first ``concurrency`` requests (opening connections) are left
out when there are more than twice as many.

What one client process *sustains* (:func:`sustained_chunks_per_s`) is the most content chunks
per second at a point where its share of ITL at p99 stayed within 10% of the server's gap
between tokens; ``bench serve`` warns when a load needs more than that from each of its
workers (:mod:`inferplan.bench.headroom`).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import multiprocessing as mp
import random
from dataclasses import dataclass
from multiprocessing.synchronize import Event as MpEvent
from typing import Any

import numpy as np

from inferplan.bench.client import BenchConfig, run_load
from inferplan.bench.deadline import Timeouts
from inferplan.bench.distortion import SHARE
from inferplan.bench.localserver import Behaviour, LocalServer
from inferplan.bench.loop import LoopLag, run
from inferplan.bench.record import Prompt, RequestRecord
from inferplan.errors import BenchmarkError
from inferplan.perf.workload import Arrivals

__all__ = ["METRICS", "SelfCheck", "quantiles", "run_self_check", "self_check_figures", "sustained_chunks_per_s"]

METRICS = ("ttft", "itl", "tpot", "e2e")


def quantiles(values: list[float] | np.ndarray) -> dict[str, float | None]:
    """p50, p99 and max of the finite values (None when there are none)."""
    a = np.asarray(values, dtype=float)
    a = a[np.isfinite(a)]
    if not a.size:
        return {"p50": None, "p99": None, "max": None}
    p50, p99 = np.percentile(a, [50, 99])
    return {"p50": float(p50), "p99": float(p99), "max": float(a.max())}


@dataclass(frozen=True, slots=True)
class SelfCheck:
    concurrency: int
    num_requests: int
    num_ok: int
    figures: dict[str, dict[str, dict[str, float | None]]]  # metric -> measured/server/client -> p50/p99/max
    receive_delay_s: dict[str, float | None]
    send_lag_s: dict[str, float | None]
    loop_lag_s: dict[str, float | None]
    wall_s: float
    chunks_per_s: float = 0.0  # content chunks the client stamped per second of the run

    def sustained(self, token_delay_s: float) -> bool:
        """Whether the client kept up: its share of ITL at p99 at most :data:`SHARE` of the
        server's gap between tokens."""
        client = self.figures["itl"]["client"]["p99"]
        return client is not None and client <= SHARE * token_delay_s


def sustained_chunks_per_s(points: list[SelfCheck], token_delay_s: float) -> float | None:
    """What one client process sustains: the most content chunks per second of the points
    at which it kept up (None when it kept up at none)."""
    kept_up = [p.chunks_per_s for p in points if p.sustained(token_delay_s)]
    return max(kept_up) if kept_up else None


def _pairs(r: RequestRecord) -> dict[str, tuple[list[float], list[float]]]:
    """(measured, server) values of each metric for one request."""
    s = r.server_times_s
    n = r.output_tokens
    server_tpot = (s[-1] - s[0]) / (n - 1) if n > 1 else math.nan
    return {
        "ttft": ([r.ttft_s], [s[0] - r.sent_s]),
        "itl": (r.gaps_s(), [b - a for a, b in itertools.pairwise(s)]),
        "tpot": ([r.tpot_s], [server_tpot]),
        "e2e": ([r.e2e_s], [s[-1] - r.sent_s]),
    }


def self_check_figures(records: list[RequestRecord]) -> dict[str, dict[str, dict[str, float | None]]]:
    """Each metric's measured, server and client (measured - server) quantiles."""
    measured: dict[str, list[float]] = {m: [] for m in METRICS}
    server: dict[str, list[float]] = {m: [] for m in METRICS}
    client: dict[str, list[float]] = {m: [] for m in METRICS}
    for r in records:
        for metric, (mine, theirs) in _pairs(r).items():
            measured[metric] += mine
            server[metric] += theirs
            client[metric] += [a - b for a, b in zip(mine, theirs, strict=True)]
    return {
        m: {"measured": quantiles(measured[m]), "server": quantiles(server[m]), "client": quantiles(client[m])}
        for m in METRICS
    }


def _server_main(port_queue: Any, stop: MpEvent, token_delay_s: float) -> None:
    async def main() -> None:
        server = LocalServer(lambda _: Behaviour(token_delay_s=token_delay_s))
        await server.start()
        port_queue.put(server.port)
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await server.stop()

    run(main())


def _stamped(records: list[RequestRecord]) -> list[RequestRecord]:
    return [
        r
        for r in records
        if r.ok
        and r.server_times_s
        and len(r.server_times_s) == len(r.chunk_times_s)
        and math.isfinite(r.server_received_s)
    ]


def run_self_check(
    concurrency: int = 256, num_requests: int = 2000, tokens: int = 16, token_delay_s: float = 0.02
) -> SelfCheck:
    """Closed loop at ``concurrency`` streams of about ``tokens`` tokens (0.5x to 1.5x, seeded)
    each ``token_delay_s`` apart, against the local server in another process."""
    ctx = mp.get_context("fork")
    port_queue, stop = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=_server_main, args=(port_queue, stop, token_delay_s), daemon=True)
    proc.start()
    try:
        port = port_queue.get(timeout=10)
        cfg = BenchConfig(
            f"http://127.0.0.1:{port}",
            "self-check",
            Arrivals("concurrency", concurrency=concurrency),
            endpoint="chat",
            timeouts=Timeouts(60.0),
        )
        rng = random.Random(0)  # varied lengths, as real traffic has: streams do not finish in lockstep
        prompts = [
            Prompt("x", 1, rng.randint(max(tokens // 2, 2), max(tokens * 3 // 2, 2))) for _ in range(num_requests)
        ]
        records, lags, wall = run(_timed(cfg, prompts))
    except Exception as exc:
        raise BenchmarkError(f"self-check failed: {exc}") from exc
    finally:
        stop.set()
        proc.join(5)
        if proc.is_alive():
            proc.kill()
    ok = _stamped(records)
    if not ok:
        raise BenchmarkError("self-check: no request succeeded against the local server")
    ok.sort(key=lambda r: r.scheduled_s)
    steady = ok[concurrency:] if len(ok) > 2 * concurrency else ok
    delays = [c - s for r in steady for c, s in zip(r.chunk_times_s, r.server_times_s, strict=True)]
    return SelfCheck(
        concurrency,
        len(records),
        len(ok),
        self_check_figures(steady),
        quantiles(delays),
        quantiles([r.sent_s - r.scheduled_s for r in steady]),
        quantiles(lags),
        wall,
        sum(len(r.chunk_times_s) for r in records if r.ok) / max(wall, 1e-9),
    )


async def _timed(cfg: BenchConfig, prompts: list[Prompt]) -> tuple[list[RequestRecord], list[float], float]:
    loop = asyncio.get_running_loop()
    lag = LoopLag()
    lag.start()
    start = loop.time()
    try:
        records = await run_load(cfg, prompts, lambda _: None)
    finally:
        lag.stop()
    return records, lag.lags_s(), loop.time() - start
