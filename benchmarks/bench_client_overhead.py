"""Client overhead: what the benchmark client itself adds to TTFT, ITL, TPOT and E2E at 1, 64
and 256 concurrent streams, against inferplan's local server in a process of its own, which
stamps when it read each request and sent each chunk (the same as `inferplan bench
self-check`). Target: client-added TTFT p99 under 5 ms at 256 streams on the 2-core CI machine.
Run: python benchmarks/bench_client_overhead.py [--token-delay 0.05] [--tokens 16]"""

from __future__ import annotations

import argparse
import sys

from inferplan.bench.loop import loop_name
from inferplan.bench.selfcheck import METRICS, run_self_check


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--token-delay", type=float, default=0.05, help="server's gap between tokens, seconds")
    parser.add_argument("--tokens", type=int, default=16)
    args = parser.parse_args()
    print(
        f"event loop {loop_name()}; server {args.token_delay * 1e3:g} ms between tokens; ms; client = measured - server"
    )
    print("| streams | metric | measured p50 / p99 / max | server p50 / p99 / max | client p50 / p99 / max |")
    print("|---|---|---|---|---|")
    for concurrency in (1, 64, 256):
        n = max(50, 8 * concurrency)
        r = run_self_check(concurrency, n, tokens=args.tokens, token_delay_s=args.token_delay)
        for metric in METRICS:
            cells = [
                " / ".join(f"{(r.figures[metric][side][q] or 0.0) * 1e3:.2f}" for q in ("p50", "p99", "max"))
                for side in ("measured", "server", "client")
            ]
            print(f"| {concurrency} | {metric.upper()} | {' | '.join(cells)} |")
        lag = r.loop_lag_s
        print(
            f"<!-- {concurrency} streams: {r.num_ok}/{r.num_requests} ok, event-loop lag p99 "
            f"{(lag['p99'] or 0) * 1e3:.2f} ms, send lag p99 {(r.send_lag_s['p99'] or 0) * 1e3:.3f} ms -->"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
