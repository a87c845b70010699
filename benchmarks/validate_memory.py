"""Reproduce vLLM's and SGLang's start-up memory logs (tests/data/vllm_memory_logs.yaml) and
print predicted vs logged figures. Run: python benchmarks/validate_memory.py"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from inferplan.sizing.capacity import MemoryPlan, plan_memory
from inferplan.specs.deployment import Deployment
from inferplan.specs.engines import get_engine
from inferplan.specs.hardware import get_gpu
from inferplan.specs.model_catalog import load_model
from inferplan.specs.parallelism import Parallelism
from inferplan.specs.precision import get_kv_dtype, get_precision
from inferplan.units import GIB

ROWS = Path(__file__).resolve().parents[1] / "tests" / "data" / "vllm_memory_logs.yaml"


def predict(row: dict[str, Any]) -> MemoryPlan:
    name = row.get("engine", "vllm")
    engine = get_engine(name)
    non_torch = row["non_torch_gib"] * GIB if row["non_torch_gib"] is not None else None
    if name == "sglang":
        engine = replace(engine, mem_fraction_static=row["mem_fraction_static"], non_torch_bytes=non_torch)
    else:
        engine = replace(
            engine,
            gpu_memory_utilization=row["gpu_memory_utilization"],
            max_num_batched_tokens=row["max_num_batched_tokens"],
            non_torch_bytes=non_torch,
        )
    model = load_model(row["model"])
    precision = get_precision(row["dtype"])
    kv = row.get("kv_dtype") or ("bf16" if precision.name not in ("fp16",) else "fp16")
    dep = Deployment(model, get_gpu(row["gpu"]), precision, get_kv_dtype(kv), Parallelism(tp=row["tp"]), engine)
    return plan_memory(dep)


def comparisons(row: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(metric, predicted, logged) for every figure the log has."""
    plan = predict(row)
    got = {
        "weights_gib": plan.weights_bytes / GIB,
        "kv_cache_gib": plan.kv_cache_bytes / GIB,
        "activation_gib": (plan.activation_bytes + plan.logits_bytes) / GIB,
        "num_gpu_blocks": float(plan.num_blocks),
        "kv_tokens": float(plan.kv_tokens),
    }
    return [(k, got[k], float(v)) for k, v in row["logged"].items()]


def main() -> int:
    rows = yaml.safe_load(ROWS.read_text())
    print(f"{'row':18s} {'model':20s} {'gpu':14s} {'metric':15s} {'predicted':>10s} {'logged':>10s} {'error':>8s}")
    for row in rows:
        for metric, pred, logged in comparisons(row):
            print(
                f"{row['id']:18s} {row['model']:20s} {row['gpu']:14s} {metric:15s} "
                f"{pred:10.2f} {logged:10.2f} {(pred - logged) / logged * 100:+7.1f}%"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
