"""How much latency does the client itself add? Run it against inferplan's local streaming
server in its own process. The server stamps, on the monotonic clock both processes share,
when it sent the first content; the client's share of TTFT is its send lag (scheduled ->
written) plus its receive delay (server sent -> client parsed). Queueing inside the local
server is the server's, not the client's, and is left out."""

from __future__ import annotations

import asyncio
import math
import multiprocessing as mp
import random
import statistics
from dataclasses import dataclass
from multiprocessing.synchronize import Event as MpEvent
from typing import Any

import numpy as np

from inferplan.bench.client import BenchConfig, Prompt, RequestRecord, run_load
from inferplan.bench.localserver import Behaviour, LocalServer
from inferplan.bench.loop import run
from inferplan.errors import BenchmarkError
from inferplan.perf.workload import Arrivals

__all__ = ["LAG_WARNING_S", "SelfCheck", "run_self_check", "scheduling_lag_warning"]

#: A run warns when the p99 gap between a request's scheduled and actual send time passes this.
LAG_WARNING_S = 0.010


@dataclass(frozen=True, slots=True)
class SelfCheck:
    concurrency: int
    num_requests: int
    num_ok: int
    client_ttft_p50_s: float
    client_ttft_p99_s: float  # steady state: after the first `concurrency` requests (the ramp)
    client_ttft_p99_all_s: float
    send_lag_p99_s: float
    wall_s: float


def _server_main(port_queue: Any, stop: MpEvent, tokens: int, token_delay_s: float) -> None:
    async def main() -> None:
        server = LocalServer(lambda _: Behaviour(token_delay_s=token_delay_s))
        await server.start()
        port_queue.put(server.port)
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await server.stop()

    run(main())


def scheduling_lag_warning(records: list[RequestRecord]) -> str | None:
    lags = [r.sent_s - r.scheduled_s for r in records if not math.isnan(r.sent_s)]
    if len(lags) < 2:
        return None
    p99 = float(np.percentile(lags, 99))
    if p99 > LAG_WARNING_S:
        return (
            f"the client sent requests up to {p99 * 1e3:.1f} ms (p99) after their scheduled time; "
            "latencies include that lag. Use fewer streams per client process or a faster machine."
        )
    return None


def run_self_check(
    concurrency: int = 256, num_requests: int = 2000, tokens: int = 32, token_delay_s: float = 0.02
) -> SelfCheck:
    """Closed loop at ``concurrency`` streams of about ``tokens`` tokens (0.5x to 1.5x, seeded)
    each ``token_delay_s`` apart."""
    ctx = mp.get_context("fork")
    port_queue, stop = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=_server_main, args=(port_queue, stop, tokens, token_delay_s), daemon=True)
    proc.start()
    try:
        port = port_queue.get(timeout=10)
        cfg = BenchConfig(
            f"http://127.0.0.1:{port}",
            "self-check",
            Arrivals("concurrency", concurrency=concurrency),
            endpoint="chat",
            timeout_s=60.0,
        )
        rng = random.Random(0)  # varied lengths, as real traffic has: streams do not finish in lockstep
        prompts = [Prompt("x", 1, rng.randint(max(tokens // 2, 1), tokens * 3 // 2)) for _ in range(num_requests)]
        loop_start = run(_timed(cfg, prompts))
    except Exception as exc:
        raise BenchmarkError(f"self-check failed: {exc}") from exc
    finally:
        stop.set()
        proc.join(5)
        if proc.is_alive():
            proc.kill()
    records, wall = loop_start
    ok = [r for r in records if r.ok and not math.isnan(r.receive_delay_s)]
    if not ok:
        raise BenchmarkError("self-check: no request succeeded against the local server")
    ok.sort(key=lambda r: r.scheduled_s)
    added_all = np.array([(r.sent_s - r.scheduled_s) + r.receive_delay_s for r in ok])
    added = added_all[concurrency:] if len(added_all) > 2 * concurrency else added_all
    lag = np.array([r.sent_s - r.scheduled_s for r in ok])
    return SelfCheck(
        concurrency,
        len(records),
        len(ok),
        float(statistics.median(added)),
        float(np.percentile(added, 99)),
        float(np.percentile(added_all, 99)),
        float(np.percentile(lag, 99)),
        wall,
    )


async def _timed(cfg: BenchConfig, prompts: list[Prompt]) -> tuple[list[RequestRecord], float]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    records = await run_load(cfg, prompts, lambda _: None)
    return records, loop.time() - start
