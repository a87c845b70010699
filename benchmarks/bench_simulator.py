"""Simulator speed: 10,000 requests of 1,000 input / 200 output tokens (target: under 1 s
on the 2-core CI machine). Run: python benchmarks/bench_simulator.py"""

from __future__ import annotations

import statistics
import sys
import time

from inferplan.perf.replica import build_replica
from inferplan.perf.simulator import simulate
from inferplan.perf.workload import Arrivals, LengthDist, Workload, make_requests
from inferplan.specs.deployment import Deployment
from inferplan.specs.hardware import get_gpu
from inferplan.specs.model_catalog import load_model
from inferplan.specs.precision import get_kv_dtype, get_precision


def main() -> int:
    replica = build_replica(
        Deployment(load_model("llama-3.1-8b"), get_gpu("h100-sxm"), get_precision("bf16"), get_kv_dtype("bf16"))
    )
    for label, arrivals in (
        ("offline", Arrivals("offline")),
        ("poisson 20 req/s", Arrivals("poisson", rate_per_s=20)),
        ("concurrency 64", Arrivals("concurrency", concurrency=64)),
    ):
        reqs = make_requests(Workload(LengthDist(1000), LengthDist(200), arrivals, 10_000, seed=0))
        times = []
        for _ in range(3):
            start = time.perf_counter()
            sim = simulate(
                replica,
                reqs,
                concurrency=arrivals.concurrency if arrivals.kind == "concurrency" else None,
            )
            times.append(time.perf_counter() - start)
        print(
            f"{label:18s} 10,000 requests: median {statistics.median(times):.3f} s over 3 runs "
            f"({len(sim.step_s):,} step records)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
