"""The simulator's prefix-cache hit rate against vLLM's own counters (issue 13): the tiny local model
on vLLM-CPU with ``--enable-prefix-caching --block-size 32`` (its CPU attention takes multiples of 32,
default 128), a multi-turn workload and a shared-system-prompt workload sent by ``inferplan bench
serve``, and the same traffic through ``predict``'s simulator with 32-token blocks. Each workload also runs with
``--isolate-cache`` (a cache salt per request: the same server without reuse) for the TTFT ratio.

Predicted: the simulator's hit rate (vLLM's counting: hit tokens / prompt tokens when first
scheduled) and its structural one. Measured: the increase of vllm:prefix_cache_hits / _queries over
the run (stored with the run). The TTFT ratio is measured only: inferplan has no time model of a CPU
server (``predict`` needs a GPU), so the predicted figure beside it is the prefill work left,
1 - hit rate, the ratio prefill time would follow if it were proportional to the computed tokens.

Needs INFERPLAN_VLLM_PYTHON (a Python with vllm-cpu) and the integration extra (the tiny model).
Run: INFERPLAN_VLLM_PYTHON=.venv-vllm/bin/python python benchmarks/prefix_cache_vllm_cpu.py [--requests 48]"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.realserver.predicted_cache import predicted_cache
from tests.realserver.servers import vllm_cpu
from tests.realserver.tiny_model import make_tiny_model
from typer.testing import CliRunner

from inferplan.cli import app
from inferplan.perf.sessions import TrafficShape

BLOCK = 32
#: name, seed, shape, message and reply tokens
WORKLOADS = (
    ("multi-turn: 4 turns, 2 system prompts of 128", 11, TrafficShape(4, 0.0, 2, 128), 48, 16),
    ("shared prefix: 4 system prompts of 256", 23, TrafficShape(1, 0.0, 4, 256), 32, 8),
)


def options(shape: TrafficShape) -> list[str]:
    return [
        "--multi-turn",
        str(shape.turns),
        "--shared-prefix",
        f"{shape.shared_prefixes}x{shape.shared_prefix_tokens}",
    ]


def invoke(args: list[str]) -> dict[str, Any]:
    result = CliRunner().invoke(app, args)
    if result.exit_code != 0:
        raise SystemExit(f"inferplan {' '.join(args[:2])} failed: {result.output[-2000:]}")
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def measure(url: str, db: Path, shape: tuple[int, list[str], int, int], n: int, isolate: bool) -> dict[str, Any]:
    seed, opts, isl, osl = shape
    args = ["bench", "serve", "--url", url, "--model", "tiny", "--concurrency", "2", "--num-requests", str(n)]
    args += ["--isl", str(isl), "--osl", str(osl), "--seed", str(seed), "--timeout", "120s", "--db", str(db)]
    point = invoke([*args, *opts, *(["--isolate-cache"] if isolate else []), "--json"])["points"][0]
    return point["summary"]  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=48)
    args = parser.parse_args()
    python = os.environ.get("INFERPLAN_VLLM_PYTHON")
    if not python:
        print("set INFERPLAN_VLLM_PYTHON to a python with vllm-cpu installed", file=sys.stderr)
        return 2
    print(
        "| workload | predicted hit rate (simulated / structural) | measured (vLLM counters) | "
        "TTFT p50 cached / isolated (ms) | measured TTFT ratio | 1 - hit rate |"
    )
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = make_tiny_model(folder / "model")
        extra = ("--enable-prefix-caching", "--block-size", str(BLOCK))
        with vllm_cpu(python, model, folder / "vllm.log", 1, extra) as (url, _):
            for name, seed, traffic, isl, osl in WORKLOADS:
                shape = (seed, options(traffic), isl, osl)
                isolated = measure(url, folder / "r.db", shape, args.requests, isolate=True)
                cached = measure(url, folder / "r.db", shape, args.requests, isolate=False)
                run = (2, args.requests, seed)
                cache = predicted_cache(model / "config.json", traffic, (isl, osl), run, BLOCK)
                real = cached["prefix_cache"] or {}
                t_cached, t_isolated = cached["ttft_s"]["p50"], isolated["ttft_s"]["p50"]
                print(
                    f"| {name}, isl {isl}, osl {osl} | {cache.get('hit_rate', float('nan')):.1%} / "
                    f"{cache.get('structural_hit_rate', float('nan')):.1%} | {real.get('hit_rate', float('nan')):.1%} "
                    f"({real.get('hit_tokens', 0):,.0f} of {real.get('queried_tokens', 0):,.0f}) | "
                    f"{t_cached * 1e3:.1f} / {t_isolated * 1e3:.1f} | {t_cached / t_isolated:.2f} | "
                    f"{1 - real.get('hit_rate', 0.0):.2f} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
