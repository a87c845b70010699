"""The closed calibration loop on a real engine: vLLM on this machine's CPU serves a small
Llama-architecture model (random weights, made locally, FP32); the CPU is described by
measurement (torch GEMM and copy bandwidth, one thread as vLLM-CPU gives its rank here);
a calibration set (batch 1 and concurrency 4) is measured with `bench serve` and fitted with
`calibrate` (engine overheads and kernel efficiencies only); then runs the fit never saw
(other concurrencies, Poisson rates, input/output lengths) are predicted and measured.
Prints the table: TTFT, TPOT, output throughput; predicted uncalibrated, calibrated, measured.
Both sets are measured turn about, in two rounds (the second in reverse), so that neither is
measured in a quieter stretch of a shared machine. Target: calibrated median error <= 15% on the
unseen runs.
Run: INFERPLAN_VLLM_PYTHON=.venv-vllm/bin/python python benchmarks/closed_loop_cpu.py [--url URL --model-dir DIR]"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.realserver: the tiny model, vLLM-CPU

from tests.realserver.servers import vllm_cpu
from tests.realserver.tiny_model import make_tiny_model

from inferplan.bench.autocal import (
    CALIBRATION_SET,
    METRICS,
    UNSEEN_SET,
    PredictionRow,
    fit_and_judge,
    interleaved,
    measure_points,
    median_error,
)
from inferplan.bench.device_file import device_entry, save_device
from inferplan.bench.gpu import run_gpu_benchmarks, set_threads
from inferplan.bench.store import ResultsStore
from inferplan.specs.deployment import Choices, resolve_deployment
from inferplan.specs.hf_config import spec_from_config

UNITS = {"ttft_s": ("TTFT ms", 1e3), "tpot_s": ("TPOT ms", 1e3), "output_tok_s": ("tok/s", 1.0)}
MODEL = {"layers": 4, "widths": (512, 1024, 8, 4)}  # 9.5M parameters, 38 MB in FP32
#: FP32 (BF16 is ~70x slower without AVX512_BF16/AMX); no prefix cache (the model has none).
SERVER_ARGS = ("--dtype", "float32", "--no-enable-prefix-caching")


def measure_device(folder: Path, threads: int) -> Path:
    """The CPU as vLLM-CPU's rank sees it: ``threads`` torch threads, GEMM and copy bandwidth."""
    set_threads(threads)
    device, results = run_gpu_benchmarks(device_only=True)
    return save_device(folder / "device.yaml", device_entry(device, results))


@contextlib.contextmanager
def server(args: argparse.Namespace, folder: Path, model_dir: Path) -> Iterator[str]:
    if args.url:
        yield args.url
        return
    python = os.environ.get("INFERPLAN_VLLM_PYTHON")
    if not python:
        raise SystemExit("set INFERPLAN_VLLM_PYTHON to a python with vllm-cpu installed (or pass --url)")
    with vllm_cpu(python, model_dir, folder / "vllm.log", kv_gib=1, extra=SERVER_ARGS) as (url, _):
        yield url


def print_table(rows: list[PredictionRow]) -> None:
    print("| run | metric | uncalibrated | calibrated | measured | error before | error after |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        label, scale = UNITS[r.metric]
        print(
            f"| {r.label} | {label} | {r.uncalibrated * scale:.1f} | {r.calibrated * scale:.1f} | "
            f"{r.measured * scale:.1f} | {r.error_uncalibrated:.0%} | {r.error_calibrated:.0%} |"
        )
    for metric in (*METRICS, None):
        name = UNITS[metric][0] if metric else "all"
        print(
            f"median error, {name}: {median_error(rows, False, metric):.1%} uncalibrated -> "
            f"{median_error(rows, True, metric):.1%} calibrated"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running vLLM-CPU server (else one is started)")
    parser.add_argument("--model-dir", type=Path, help="the model that server serves (with --url)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of vLLM-CPU's rank")
    parser.add_argument("--rounds", type=int, default=2, help="times each point is measured (interleaved)")
    parser.add_argument("--json", type=Path, help="also write the rows and the fit here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="inferplan-loop-") as tmp:
        folder = Path(tmp)
        model_dir = args.model_dir or make_tiny_model(folder / "model", **MODEL)
        device = measure_device(folder, args.threads)
        print(f"device: {device.read_text(encoding='utf-8')}")
        dep = resolve_deployment(
            spec_from_config(json.loads((model_dir / "config.json").read_text()), "tiny"),
            Choices(f"measured:{device}", "fp32"),
        )
        store = ResultsStore(folder / "runs.db")
        with server(args, folder, model_dir) as url:
            measured = measure_points(url, "tiny", interleaved(CALIBRATION_SET, UNSEEN_SET, args.rounds), store, print)
        fitted_on = [m for m in measured if m.point in CALIBRATION_SET]
        unseen = [m for m in measured if m.point not in CALIBRATION_SET]
        store.close()
        profile, rows = fit_and_judge("cpu-loop", fitted_on, unseen, dep)
    print(
        f"fitted on {', '.join(profile.fitted_on)}: "
        + ", ".join(f"{k}={v:.4g}" for k, v in (profile.kernels | profile.engine_overrides).items())
    )
    print(f"calibration-set mean |log error| {profile.error_before:.3f} -> {profile.error_after:.3f}")
    print("\nUnseen runs (never fitted on):")
    print_table(rows)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "fitted": profile.kernels | profile.engine_overrides,
                    "rows": [
                        r.__dict__ if hasattr(r, "__dict__") else {f: getattr(r, f) for f in r.__slots__} for r in rows
                    ],
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
