"""Search speed: the whole default GPU catalog for one model (target: under 1 s on the
2-core CI machine). Run: python benchmarks/bench_search.py [MODEL]"""

from __future__ import annotations

import statistics
import sys
import time

from inferplan.plan.candidates import SearchSpace, candidates
from inferplan.plan.question import Demand, Targets
from inferplan.plan.search import search
from inferplan.specs.engines import get_engine
from inferplan.specs.environment import BARE_METAL
from inferplan.specs.hardware import gpu_catalog
from inferplan.specs.model_catalog import load_model
from inferplan.specs.precision import get_precision
from inferplan.specs.prices import load_offers


def main() -> int:
    model = load_model(sys.argv[1] if len(sys.argv) > 1 else "llama-3.1-70b")
    offers = load_offers()
    space = SearchSpace(tuple(gpu_catalog().values()), (get_precision("bf16"), get_precision("fp8")), ("auto", "fp8"))
    times, n = [], 0
    for _ in range(5):
        start = time.perf_counter()
        cands = candidates(model, space, get_engine("vllm"), BARE_METAL)
        ranked = search(cands, Demand(2000, 300, rate_per_s=10), Targets(ttft_p90_s=0.2), offers)
        times.append(time.perf_counter() - start)
        n = len(ranked)
    print(
        f"{model.name}: {len(gpu_catalog())} GPU types, {n} candidates evaluated; "
        f"search median {statistics.median(times) * 1e3:.0f} ms, max {max(times) * 1e3:.0f} ms over 5 runs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
