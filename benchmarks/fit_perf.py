"""Fit the performance model's physical parameters on a measurement CSV.

Parameters (all in src/inferplan/engines.py): kernel efficiencies shared by every engine
(GEMM fraction of achievable matmul, GEMM half-efficiency M, HBM fraction, attention
fraction) and, per engine, the fixed per-step and per-layer overheads and HBM fraction.
Objective: the mean over metric categories of the median |log(predicted / measured)|.
No per-row terms exist. Run:

    python benchmarks/fit_perf.py ../shared/data/throughput.csv [--rounds 2] [--every 1]

It prints the fitted values; copy them into engines.py (the defaults there are the result).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

from inferplan.bench.calibration import Schedule, fit_parameters
from inferplan.perf.validate import Measurement, read_measurements, validate_rows
from inferplan.specs.engines import ENGINES, EngineProfile

KERNEL_PARAMS = ("gemm_efficiency", "gemm_m_half", "attention_efficiency", "weight_only_bandwidth")
ENGINE_PARAMS = ("step_overhead_s", "layer_overhead_s")
ENGINE_KERNEL_PARAMS = ("mem_efficiency",)
BOUNDS = {
    "gemm_efficiency": (0.3, 1.0),
    "gemm_m_half": (1.0, 512.0),
    "attention_efficiency": (0.15, 0.9),
    "mem_efficiency": (0.4, 0.95),
    "weight_only_bandwidth": (0.4, 1.0),
    "step_overhead_s": (1e-5, 2e-2),
    "layer_overhead_s": (1e-7, 1e-4),
}


def engines_with(params: dict[str, float]) -> dict[str, EngineProfile]:
    out = {}
    for name, eng in ENGINES.items():
        kernels = replace(eng.kernels, **{k: params[k] for k in KERNEL_PARAMS})
        kernels = replace(kernels, **{k: params[f"{name}.{k}"] for k in ENGINE_KERNEL_PARAMS})
        out[name] = replace(eng, kernels=kernels, **{k: params[f"{name}.{k}"] for k in ENGINE_PARAMS})
    return out


def _chunk_loss(args: tuple[list[Measurement], dict[str, float]]) -> list[tuple[str, float]]:
    rows, params = args
    return [
        (o.category, math.log(o.predicted / o.measured))
        for o in validate_rows(rows, engines_with(params))
        if o.predicted and o.measured > 0
    ]


def loss(rows: list[Measurement], params: dict[str, float], pool: ProcessPoolExecutor) -> float:
    chunks = [rows[i::2] for i in range(2)]
    logs: dict[str, list[float]] = {}
    for part in pool.map(_chunk_loss, [(c, params) for c in chunks]):
        for cat, value in part:
            logs.setdefault(cat, []).append(abs(value))
    return statistics.mean(statistics.median(v) for v in logs.values())


def initial() -> dict[str, float]:
    base = next(iter(ENGINES.values())).kernels
    params = {k: getattr(base, k) for k in KERNEL_PARAMS}
    for name, eng in ENGINES.items():
        for k in ENGINE_PARAMS:
            params[f"{name}.{k}"] = getattr(eng, k)
        for k in ENGINE_KERNEL_PARAMS:
            params[f"{name}.{k}"] = getattr(eng.kernels, k)
    return params


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("csv", type=Path)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--every", type=int, default=1, help="use every Nth row (speed)")
    args = ap.parse_args()
    rows = read_measurements(args.csv)[:: args.every]
    start = initial()
    bounds = {k: BOUNDS[k.split(".")[-1]] for k in start}
    with ProcessPoolExecutor(2) as pool:
        fitted, best = fit_parameters(
            lambda params: loss(rows, params, pool),
            start,
            bounds,
            Schedule(rounds=args.rounds, step=1.3),
            log=lambda line: print(line, flush=True),
        )
    print(f"fitted (loss {best:.4f}):")
    for k, v in fitted.items():
        print(f"  {k} = {v:.6g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
