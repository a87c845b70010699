"""Turn library results into plain dicts (the ``--json`` schema) and rich tables.

JSON conventions: bytes as integers in ``*_bytes`` fields, seconds in ``*_s`` fields,
rates in ``*_per_s``; every payload has ``"schema": "inferplan.<kind>/1"``.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table

from inferplan.sizing.capacity import MemoryPlan, max_context_tokens
from inferplan.specs.hardware import GpuSpec
from inferplan.specs.model import ModelSpec, count_params
from inferplan.specs.model_catalog import catalog_models
from inferplan.units import GIB

__all__ = [
    "context_growth",
    "gpu_row",
    "memory_plan_dict",
    "model_row",
    "table",
]

_CONTEXT_STEPS = (1024, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 1048576)


def gib(num_bytes: float) -> str:
    return f"{num_bytes / GIB:,.2f}"


def table(title: str, columns: list[str], rows: list[list[str]], caption: str = "") -> Table:
    """A rich table with right-aligned numeric columns after the first."""
    t = Table(title=title, caption=caption or None, title_justify="left", caption_justify="left")
    for i, col in enumerate(columns):
        t.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*row)
    return t


def model_row(model: ModelSpec) -> dict[str, Any]:
    c = count_params(model)
    entry = catalog_models().get(model.name)
    return {
        "name": model.name,
        "hf_id": entry.hf_id if entry else None,
        "model_type": model.model_type,
        "attention": model.attention.kind,
        "moe": model.is_moe,
        "num_layers": model.num_layers,
        "hidden_size": model.hidden_size,
        "num_kv_heads": model.attention.num_kv_heads,
        "sliding_window_layers": sum(1 for layer in model.layers if layer.window_tokens),
        "total_params": c.total,
        "active_params": c.active,
        "published_total_params": entry.published_total if entry else None,
        "native_dtype": model.native_dtype,
        "quantization": model.quantization.method if model.quantization else None,
        "max_position_embeddings": model.max_position_embeddings,
    }


def gpu_row(gpu: GpuSpec) -> dict[str, Any]:
    return {
        "id": gpu.id,
        "name": gpu.name,
        "vendor": gpu.vendor,
        "memory_bytes": int(gpu.memory_bytes),
        "visible_memory_bytes": int(gpu.visible_memory_bytes),
        "mem_bw_bytes_per_s": gpu.mem_bw_bytes_per_s,
        "peak_flops": gpu.peak_flops,
        "measured_matmul_flops": gpu.measured_matmul_flops,
        "scale_up": gpu.scale_up,
        "pcie": gpu.pcie,
        "tdp_w": gpu.tdp_w,
        "mig_profiles": list(gpu.mig_profiles),
        "sources": gpu.sources,
    }


def context_growth(plan: MemoryPlan) -> list[dict[str, Any]]:
    """KV bytes per sequence and eager attention-score bytes against context length."""
    limit = plan.model.max_position_embeddings
    steps = [c for c in _CONTEXT_STEPS if c <= limit] or [limit]
    if limit not in steps and limit < _CONTEXT_STEPS[-1]:
        steps.append(limit)
    return [
        {
            "context_tokens": c,
            "kv_bytes_per_sequence": int(plan.sequence_bytes(c)),
            "max_sequences": plan.max_sequences(c),
            "attention_scores_bytes_flash": 0,
            "attention_scores_bytes_eager": int(plan.attention_scores_bytes(c)),
        }
        for c in steps
    ]


def memory_plan_dict(plan: MemoryPlan, context_tokens: int, concurrency: int) -> dict[str, Any]:
    par = plan.parallelism
    kv_needed = plan.sequence_bytes(context_tokens) * concurrency
    fits = plan.fits and kv_needed <= plan.kv_cache_bytes
    return {
        "schema": "inferplan.fit/1",
        "model": plan.model.name,
        "gpu": plan.gpu.id,
        "precision": plan.precision.name,
        "kv_dtype": plan.kv_dtype.name,
        "parallelism": {"tp": par.tp, "pp": par.pp, "dp": par.dp, "num_gpus": par.num_gpus},
        "engine": {
            "gpu_memory_utilization": plan.engine.gpu_memory_utilization,
            "block_size": plan.engine.block_size,
            "max_num_batched_tokens": plan.engine.max_num_batched_tokens,
            "max_num_seqs": plan.engine.max_num_seqs,
        },
        "per_gpu": {
            "visible_bytes": int(plan.visible_bytes),
            "budget_bytes": int(plan.budget_bytes),
            "weights_bytes": int(plan.weights_bytes),
            "activation_peak_bytes": int(plan.activation_bytes),
            "logits_bytes": int(plan.logits_bytes),
            "non_torch_bytes": int(plan.non_torch_bytes),
            "kv_cache_bytes": int(plan.kv_cache_bytes),
            "kv_bytes_per_token": plan.kv_bytes_per_token,
            "num_kv_blocks": plan.num_blocks,
            "kv_tokens": plan.kv_tokens,
        },
        "request": {"context_tokens": context_tokens, "concurrency": concurrency},
        "verdict": {
            "fits": fits,
            "kv_bytes_needed": int(kv_needed),
            "margin_bytes": int(plan.kv_cache_bytes - kv_needed),
            "max_sequences_at_context": plan.max_sequences(context_tokens),
            "max_context_at_concurrency": max_context_tokens(plan, concurrency),
        },
        "rule_of_thumb": {
            "total_bytes": int(plan.rule_of_thumb_total_bytes),
            "exact_weights_bytes": int(plan.total_weight_bytes),
            "exact_total_bytes": int((plan.used_bytes + kv_needed) * par.gpus_per_replica),
        },
        "context_growth": context_growth(plan),
        "notes": list(plan.model.notes),
    }
