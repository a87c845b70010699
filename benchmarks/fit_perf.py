"""Fit the performance model's physical parameters on a measurement CSV.

Parameters (all in src/inferplan/specs/engines.py): kernel efficiencies shared by every engine
(GEMM fraction of achievable matmul and its half-efficiency M, prefill attention, decode
attention's share of HBM bandwidth, weight-only GEMV bandwidth, the grouped expert GEMMs'
compute and streaming efficiencies, MoE routing/permutation passes and per-layer kernel time)
and, per engine profile with rows in the file, the fixed per-step and per-layer overheads.
Objective: the mean over metric categories of median + p90/2 of |log(predicted / measured)|
(the tails count). No per-row terms exist. Run:

    python benchmarks/fit_perf.py tests/data/throughput_dev.csv [--rounds 3] [--every 1] [--workers 2]
        [--start params.json] [--only ENGINE | --kernels]

(--only fits one engine profile's overheads on its own rows; --kernels the shared efficiencies.)

It prints the fitted values; copy them into engines.py (the defaults there are the result).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from inferplan.perf.measurement import SkipRow, setup_row
from inferplan.perf.validate import Measurement, percentile_90, read_measurements, validate_rows
from inferplan.specs.engines import ENGINES, EngineProfile

KERNEL_PARAMS = {
    "gemm_efficiency": (0.3, 1.0),
    "gemm_m_half": (1.0, 512.0),
    "attention_efficiency": (0.15, 0.75),  # FlashAttention-3 reaches 75% of H100's BF16 peak
    "attention_decode_efficiency": (0.3, 1.0),
    "moe_gemm_efficiency": (0.2, 1.0),
    "moe_mem_efficiency": (0.2, 1.0),
    "moe_permute_passes": (0.5, 40.0),
    "moe_layer_overhead_s": (1e-7, 2e-4),
}
ENGINE_PARAMS = {
    "step_overhead_s": (1e-5, 3e-2),
    "layer_overhead_s": (1e-7, 1e-4),
    "allreduce_latency_s": (1e-6, 1e-4),
    "request_overhead_s": (1e-5, 5e-2),
}
#: Profiles whose overheads are fitted (those with rows in the development set). vLLM V0's
#: overhead comes from its own profile (the v0.6.0 blog), not from its one row.
FITTED_ENGINES = ("trtllm", "trtllm-pytorch", "triton-trtllm", "trtllm-static", "gpt-fast")


def engines_with(params: dict[str, float]) -> dict[str, EngineProfile]:
    out = {}
    kernel = {k: params[k] for k in KERNEL_PARAMS}
    for name, eng in ENGINES.items():
        fields: dict[str, Any] = dict(kernel)
        profile = replace(eng, kernels=replace(eng.kernels, **fields))
        if name in FITTED_ENGINES:
            profile = replace(profile, **{k: params[f"{name}.{k}"] for k in ENGINE_PARAMS})
        own: dict[str, Any] = {
            k.split(".")[-1]: v for k, v in params.items() if k.startswith(f"{name}.kernel.")
        }  # a version's own kernels (e.g. TensorRT-LLM 1.0's MoE), fitted on its rows only
        if own:
            profile = replace(profile, kernels=replace(profile.kernels, **own))
        out[name] = profile
    return out


def loss(rows: list[Measurement], params: dict[str, float], workers: int) -> float:
    logs: dict[str, list[float]] = {}
    for o in validate_rows(rows, engines_with(params), workers=workers):
        if o.predicted and o.measured > 0 and math.isfinite(o.predicted):
            logs.setdefault(o.category, []).append(abs(math.log(o.predicted / o.measured)))
    return statistics.mean(statistics.median(v) + 0.5 * percentile_90(v) for v in logs.values())


def initial() -> dict[str, float]:
    base = ENGINES["trtllm"].kernels
    params = {k: float(getattr(base, k)) for k in KERNEL_PARAMS}
    for name in FITTED_ENGINES:
        for k in ENGINE_PARAMS:
            params[f"{name}.{k}"] = getattr(ENGINES[name], k)
    return params


def bounds_of(key: str) -> tuple[float, float]:  # 'engine.kernel.name' and 'engine.name' too
    name = key.rsplit(".", maxsplit=1)[-1]
    return KERNEL_PARAMS.get(name) or ENGINE_PARAMS[name]


def descend(
    rows: list[Measurement], params: dict[str, float], rounds: int, workers: int, keys: list[str]
) -> dict[str, float]:
    """Coordinate descent in log space: each parameter up or down by a factor while the loss
    falls; the factor shrinks each round (1.3, 1.14, 1.07, ...)."""
    best = loss(rows, params, workers)
    print(f"start: loss {best:.4f}", flush=True)
    step = 1.3
    for rnd in range(rounds):
        for key in keys:
            lo, hi = bounds_of(key)
            for factor in (step, 1 / step):
                while True:
                    value = min(max(params[key] * factor, lo), hi)
                    if value == params[key]:
                        break
                    trial = params | {key: value}
                    got = loss(rows, trial, workers)
                    if got >= best - 1e-5:
                        break
                    params, best = trial, got
                    print(f"round {rnd}: {key}={value:.4g}, loss {best:.4f}", flush=True)
        step = math.sqrt(step)
    return params


def engine_rows(rows: list[Measurement], engine: str) -> list[Measurement]:
    """The rows whose engine column resolves to ``engine``."""
    out = []
    for r in rows:
        try:
            if setup_row(r).deployment.engine.name == engine:
                out.append(r)
        except SkipRow:
            continue
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("csv", type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--every", type=int, default=1, help="use every Nth row (speed)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--start", type=Path, help="JSON of parameter values to start from")
    ap.add_argument("--only", help="fit only this engine's overheads, on its own rows")
    ap.add_argument("--kernels", action="store_true", help="fit only the shared kernel efficiencies")
    ap.add_argument("--own-kernels", default="", help="with --only: kernel parameters of that engine alone, a,b")
    args = ap.parse_args()
    rows = read_measurements(args.csv)[:: args.every]
    params = initial() | (json.loads(args.start.read_text()) if args.start else {})
    keys = list(params)
    if args.only:
        rows = engine_rows(rows, args.only)
        for k in filter(None, args.own_kernels.split(",")):
            params.setdefault(f"{args.only}.kernel.{k}", params[k])
        keys = [k for k in params if k.startswith(args.only + ".")]
    elif args.kernels:
        keys = list(KERNEL_PARAMS)
    fitted = descend(rows, params, args.rounds, args.workers, keys)
    print("fitted:")
    print(json.dumps(fitted))
    return 0


if __name__ == "__main__":
    sys.exit(main())
