"""Health latency of the web UI while 50 plans run (target: p99 under 100 ms).

Starts `inferplan ui` on 127.0.0.1, sends 50 plan requests at once from 50 threads, probes
/api/health every 20 ms from this process until every plan is answered, and prints p50, p99
and max. Run: python benchmarks/bench_web_health.py"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

PLAN = {"model": "llama-3.1-8b", "gpus": ["l40s", "h100-sxm"], "rate_per_s": 5, "charts": False, "verify": 0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(port: int) -> int:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/plan", json.dumps(PLAN).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=300) as resp:
        return int(resp.status)


def health_s(port: int) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=30) as resp:
        resp.read()
    return time.perf_counter() - start


def main() -> int:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", "from inferplan.cli import main; main()", "ui", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health_s(port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        post(port)  # warm: catalogs loaded
        samples: list[float] = []
        with ThreadPoolExecutor(50) as pool:
            plans = [pool.submit(post, port) for _ in range(50)]
            end = time.monotonic() + 300
            while not all(p.done() for p in plans) and time.monotonic() < end:
                samples.append(health_s(port))
                time.sleep(0.02)
            ok = sum(p.result() == 200 for p in plans)
    finally:
        server.terminate()
        server.wait(10)
    samples.sort()
    p50, p99 = samples[len(samples) // 2], samples[min(len(samples) - 1, int(0.99 * len(samples)))]
    print(
        f"{ok}/50 plans answered; /api/health over {len(samples)} probes: p50 {p50 * 1e3:.1f} ms, "
        f"p99 {p99 * 1e3:.1f} ms, max {samples[-1] * 1e3:.1f} ms (target p99 < 100 ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
