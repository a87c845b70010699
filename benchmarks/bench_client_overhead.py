"""Client overhead: latency the benchmark client itself adds at 256 concurrent streams against
inferplan's zero-latency local server (target: TTFT p99 under 5 ms on the 2-core CI machine).
Run: python benchmarks/bench_client_overhead.py"""

from __future__ import annotations

import sys

from inferplan.bench.loop import loop_name
from inferplan.bench.selfcheck import run_self_check


def main() -> int:
    for concurrency in (1, 64, 256):
        n = 100 if concurrency == 1 else 2000
        r = run_self_check(concurrency, n, tokens=16, token_delay_s=0.1 if concurrency > 1 else 0.005)
        print(
            f"{concurrency:4d} streams, {r.num_ok}/{r.num_requests} ok: client-added TTFT p50 "
            f"{r.client_ttft_p50_s * 1e3:.2f} ms, p99 {r.client_ttft_p99_s * 1e3:.2f} ms (steady), "
            f"{r.client_ttft_p99_all_s * 1e3:.2f} ms (with ramp-up); send lag p99 {r.send_lag_p99_s * 1e3:.2f} ms "
            f"[{loop_name()}]"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
