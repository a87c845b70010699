"""The ``inferplan`` command line: parse, call the library, render. No logic lives here.

Exit codes: 0 success; 1 other inferplan error; 2 bad input or malformed file; 3 unknown
name; 4 unsupported model; 5 does not fit; 6 infeasible targets; 7 offline.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from inferplan.capacity import min_gpus, plan_memory
from inferplan.catalog import catalog_models, load_model
from inferplan.errors import DoesNotFitError, InferplanError
from inferplan.hardware import get_gpu, gpu_catalog
from inferplan.memory import EngineMemoryConfig
from inferplan.options import resolve_kv_dtype, resolve_parallelism, resolve_precision
from inferplan.units import GIB, parse_bytes
from inferplan.views import gib, gpu_row, memory_plan_dict, model_row, table

app = typer.Typer(
    name="inferplan",
    help="Size, predict, plan, cost and measure LLM inference deployments.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(soft_wrap=False, width=120)
err = Console(stderr=True)
P = ParamSpec("P")
R = TypeVar("R")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (schema in docs/json.md).")]
GpuOpt = Annotated[
    str, typer.Option("--gpu", help="GPU id, e.g. h100-sxm; 'h100-sxm:3g.40gb' for MIG.")
]


def handles_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Print an InferplanError as one line on stderr and exit with its code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except InferplanError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def emit_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=float) + "\n")


def engine_config(
    util: float, block_size: int, max_batched: int, max_seqs: int, non_torch: str | None
) -> EngineMemoryConfig:
    return EngineMemoryConfig(
        gpu_memory_utilization=util,
        block_size=block_size,
        max_num_batched_tokens=max_batched,
        max_num_seqs=max_seqs,
        non_torch_bytes=parse_bytes(non_torch, default_unit="gib") if non_torch else None,
    )


@app.command()
@handles_errors
def fit(
    model: Annotated[
        str, typer.Argument(help="Catalog name, config.json path, model folder or hub id.")
    ],
    gpu: GpuOpt,
    count: Annotated[
        int | None, typer.Option(help="Total GPUs (TP within a server, then PP).")
    ] = None,
    tp: Annotated[int | None, typer.Option(help="Tensor-parallel size.")] = None,
    pp: Annotated[int | None, typer.Option(help="Pipeline-parallel size.")] = None,
    dtype: Annotated[
        str, typer.Option(help="Weights: auto, bf16, fp16, fp8, int8, int4, ...")
    ] = "auto",
    kv_dtype: Annotated[str, typer.Option(help="KV cache: auto, bf16, fp16, fp8.")] = "auto",
    context: Annotated[
        int, typer.Option(min=1, max=10_000_000, help="Tokens per sequence.")
    ] = 8192,
    concurrency: Annotated[int, typer.Option(min=1, max=1_000_000, help="Sequences at once.")] = 1,
    gpu_memory_utilization: Annotated[float, typer.Option(min=0.05, max=1.0)] = 0.9,
    max_num_batched_tokens: Annotated[int, typer.Option(min=1)] = 8192,
    max_num_seqs: Annotated[int, typer.Option(min=1)] = 256,
    block_size: Annotated[int, typer.Option(min=1)] = 16,
    non_torch: Annotated[
        str | None, typer.Option(help="Override CUDA context + NCCL memory, e.g. 1.5GiB.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Does MODEL fit on the GPUs, and how many sequences of CONTEXT tokens can run at once?"""
    spec = load_model(model)
    g = get_gpu(gpu)
    precision = resolve_precision(spec, dtype)
    kv = resolve_kv_dtype(kv_dtype, precision)
    par = resolve_parallelism(g, count, tp, pp)
    engine = engine_config(
        gpu_memory_utilization, block_size, max_num_batched_tokens, max_num_seqs, non_torch
    )
    plan = plan_memory(spec, g, precision, kv, par, engine)
    payload = memory_plan_dict(plan, context, concurrency)
    if not payload["verdict"]["fits"]:
        try:
            smallest = min_gpus(spec, g, precision, kv, context, concurrency, engine)
            sp = smallest.parallelism
            payload["verdict"]["suggestion"] = {"tp": sp.tp, "pp": sp.pp, "num_gpus": sp.num_gpus}
        except DoesNotFitError as exc:
            payload["verdict"]["suggestion"] = {"error": str(exc)}
    if as_json:
        emit_json(payload)
    else:
        _print_fit(payload)
    if not payload["verdict"]["fits"]:
        raise typer.Exit(DoesNotFitError.exit_code)


def _print_fit(p: dict[str, Any]) -> None:
    g, v, par = p["per_gpu"], p["verdict"], p["parallelism"]
    rows = [
        ["GPU memory visible to CUDA", gib(g["visible_bytes"])],
        [
            f"x gpu_memory_utilization {p['engine']['gpu_memory_utilization']}",
            gib(g["budget_bytes"]),
        ],
        [f"weights ({p['precision']})", gib(g["weights_bytes"])],
        [
            f"activation peak ({p['engine']['max_num_batched_tokens']} batched tokens)",
            gib(g["activation_peak_bytes"]),
        ],
        [f"logits buffer ({p['engine']['max_num_seqs']} seqs, fp32)", gib(g["logits_bytes"])],
        ["CUDA context + communication buffers", gib(g["non_torch_bytes"])],
        [f"KV cache ({p['kv_dtype']})", gib(g["kv_cache_bytes"])],
    ]
    title = (
        f"{p['model']} on {par['num_gpus']} x {p['gpu']} (TP {par['tp']}, PP {par['pp']}): "
        "memory per GPU"
    )
    out.print(table(title, ["component", "GiB"], rows))
    out.print(
        f"KV cache: {g['kv_bytes_per_token'] / 1024:,.1f} KiB per token per GPU, "
        f"{g['num_kv_blocks']:,} blocks of {p['engine']['block_size']} = {g['kv_tokens']:,} tokens."
    )
    req = p["request"]
    word = "[green]FITS[/green]" if v["fits"] else "[red]DOES NOT FIT[/red]"
    out.print(
        f"{word}: {req['concurrency']} x {req['context_tokens']:,} tokens need "
        f"{gib(v['kv_bytes_needed'])} GiB of KV per GPU; margin {gib(v['margin_bytes'])} GiB. "
        f"At this context up to {v['max_sequences_at_context']:,} sequences; at this concurrency "
        f"up to {v['max_context_at_concurrency']:,} tokens each."
    )
    if "suggestion" in v:
        s = v["suggestion"]
        out.print(
            f"Smallest deployment that fits: {s}"
            if "error" in s
            else f"Smallest deployment that fits: {s['num_gpus']} GPUs "
            f"(TP {s['tp']}, PP {s['pp']})."
        )
    r = p["rule_of_thumb"]
    out.print(
        f"Rule of thumb (parameters x bytes x 1.2): {gib(r['total_bytes'])} GiB; exact weights "
        f"{gib(r['exact_weights_bytes'])} GiB, exact total for this request "
        f"{gib(r['exact_total_bytes'])} GiB. The rule ignores the KV cache, which grows with "
        "context x concurrency, and the fixed runtime overhead of every GPU."
    )
    rows = [
        [
            f"{c['context_tokens']:,}",
            gib(c["kv_bytes_per_sequence"]),
            f"{c['max_sequences']:,}",
            "0 (linear)",
            gib(c["attention_scores_bytes_eager"]),
        ]
        for c in p["context_growth"]
    ]
    out.print(
        table(
            "Memory growth with context (per GPU)",
            ["context", "KV GiB/seq", "max seqs", "scores GiB, flash", "scores GiB, eager"],
            rows,
            caption="KV grows linearly; the L x L score matrix exists only without "
            "FlashAttention-style kernels.",
        )
    )
    for note in p["notes"]:
        out.print(f"note: {note}")


@app.command()
@handles_errors
def models(
    search: Annotated[str, typer.Argument(help="Filter by substring.")] = "",
    moe: Annotated[
        bool | None, typer.Option("--moe/--dense", help="Only MoE or only dense.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the model catalog."""
    rows = [model_row(load_model(name)) for name in catalog_models() if search.lower() in name]
    if moe is not None:
        rows = [r for r in rows if r["moe"] == moe]
    if as_json:
        emit_json({"schema": "inferplan.models/1", "models": rows})
        return
    out.print(
        table(
            "Model catalog",
            ["name", "type", "attention", "layers", "params", "active", "dtype", "max ctx"],
            [
                [
                    r["name"],
                    r["model_type"],
                    r["attention"],
                    str(r["num_layers"]),
                    f"{r['total_params'] / 1e9:,.2f}B",
                    f"{r['active_params'] / 1e9:,.2f}B",
                    r["quantization"] or r["native_dtype"],
                    f"{r['max_position_embeddings']:,}",
                ]
                for r in rows
            ],
        )
    )


@app.command()
@handles_errors
def gpus(
    search: Annotated[str, typer.Argument(help="Filter by substring.")] = "",
    min_memory: Annotated[
        str | None, typer.Option(help="Only GPUs with at least this memory, e.g. 80GB.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the GPU catalog."""
    floor = parse_bytes(min_memory) if min_memory else 0.0
    rows = [
        gpu_row(g)
        for g in gpu_catalog().values()
        if search.lower() in g.id and g.memory_bytes >= floor
    ]
    if as_json:
        emit_json({"schema": "inferplan.gpus/1", "gpus": rows})
        return
    out.print(
        table(
            "GPU catalog (dense tensor TFLOPS)",
            ["id", "memory GiB", "HBM TB/s", "BF16", "FP8", "scale-up", "TDP W"],
            [
                [
                    r["id"],
                    f"{r['memory_bytes'] / GIB:,.0f}",
                    f"{r['mem_bw_bytes_per_s'] / 1e12:.2f}",
                    f"{r['peak_flops'].get('bf16', 0) / 1e12:,.0f}",
                    f"{r['peak_flops']['fp8'] / 1e12:,.0f}" if "fp8" in r["peak_flops"] else "-",
                    r["scale_up"] or "PCIe only",
                    f"{r['tdp_w']:.0f}",
                ]
                for r in rows
            ],
        )
    )


def main() -> None:
    """Console entry point."""
    app()
