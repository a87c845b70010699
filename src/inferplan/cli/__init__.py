"""The ``inferplan`` command line: parse, call the library, render. No logic lives here.

Exit codes: 0 success; 1 other inferplan error; 2 bad input or malformed file; 3 unknown
name; 4 unsupported model; 5 does not fit; 6 infeasible targets; 7 offline.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from inferplan.bench.calibration import apply_profile, load_profile
from inferplan.cli.common import emit_json, err, handles_errors
from inferplan.deploy.engine_args import engine_command, render, settings_for
from inferplan.deploy.launch import launch_engine
from inferplan.errors import DoesNotFitError, InfeasibleError, InputError
from inferplan.perf.metrics import Slo
from inferplan.perf.predict import predict as run_prediction
from inferplan.perf.validate import read_measurements, validate_rows
from inferplan.perf.workload import Arrivals, LengthDist, Workload, load_trace
from inferplan.plan.cost import CostAssumptions, compare_costs
from inferplan.plan.planner import make_plan
from inferplan.plan.search import Candidate, Demand, Targets, evaluate
from inferplan.present.payload_fit import gib, gpu_row, memory_plan_dict, model_row, table
from inferplan.present.payload_plan import cost_dict, plan_dict, plan_markdown, print_cost, print_plan
from inferplan.present.payload_predict import (
    prediction_dict,
    print_prediction,
    print_validation,
    validation_dict,
)
from inferplan.present.report_charts import compare_runs, load_stored_runs, parse_runs_on, runs_candidate
from inferplan.present.report_html import check_output_path, write_report
from inferplan.sizing.capacity import min_gpus, plan_memory
from inferplan.sizing.memory import EngineMemoryConfig
from inferplan.specs.deployment import resolve_deployment, resolve_kv_dtype, resolve_precision
from inferplan.specs.engines import get_engine
from inferplan.specs.environment import get_environment
from inferplan.specs.hardware import get_gpu, gpu_catalog
from inferplan.specs.model_catalog import catalog_models, load_model
from inferplan.specs.precision import get_precision
from inferplan.specs.prices import load_offers
from inferplan.units import GIB, parse_budget_usd_per_hour, parse_bytes, parse_duration_s

app = typer.Typer(
    name="inferplan",
    help="Size, predict, plan, cost and measure LLM inference deployments.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(soft_wrap=False, width=120)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (schema in docs/json.md).")]
GpuOpt = Annotated[str, typer.Option("--gpu", help="GPU id, e.g. h100-sxm; 'h100-sxm:3g.40gb' for MIG.")]


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
    model: Annotated[str, typer.Argument(help="Catalog name, config.json path, model folder or hub id.")],
    gpu: GpuOpt,
    count: Annotated[int | None, typer.Option(help="Total GPUs (TP within a server, then PP).")] = None,
    tp: Annotated[int | None, typer.Option(help="Tensor-parallel size.")] = None,
    pp: Annotated[int | None, typer.Option(help="Pipeline-parallel size.")] = None,
    dtype: Annotated[str, typer.Option(help="Weights: auto, bf16, fp16, fp8, int8, int4, ...")] = "auto",
    kv_dtype: Annotated[str, typer.Option(help="KV cache: auto, bf16, fp16, fp8.")] = "auto",
    context: Annotated[int, typer.Option(min=1, max=10_000_000, help="Tokens per sequence.")] = 8192,
    concurrency: Annotated[int, typer.Option(min=1, max=1_000_000, help="Sequences at once.")] = 1,
    gpu_memory_utilization: Annotated[float, typer.Option(min=0.05, max=1.0)] = 0.9,
    max_num_batched_tokens: Annotated[int, typer.Option(min=1)] = 8192,
    max_num_seqs: Annotated[int, typer.Option(min=1)] = 256,
    block_size: Annotated[int, typer.Option(min=1)] = 16,
    non_torch: Annotated[str | None, typer.Option(help="Override CUDA context + NCCL memory, e.g. 1.5GiB.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Does MODEL fit on the GPUs, and how many sequences of CONTEXT tokens can run at once?"""
    r = resolve_deployment(model, gpu, dtype, kv_dtype, count, tp, pp)
    spec, g, precision, kv, par = r.model, r.gpu, r.precision, r.kv_dtype, r.parallelism
    engine = engine_config(gpu_memory_utilization, block_size, max_num_batched_tokens, max_num_seqs, non_torch)
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
    title = f"{p['model']} on {par['num_gpus']} x {p['gpu']} (TP {par['tp']}, PP {par['pp']}): memory per GPU"
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
            else f"Smallest deployment that fits: {s['num_gpus']} GPUs (TP {s['tp']}, PP {s['pp']})."
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
            caption="KV grows linearly; the L x L score matrix exists only without FlashAttention-style kernels.",
        )
    )
    for note in p["notes"]:
        out.print(f"note: {note}")


@app.command()
@handles_errors
def models(
    search: Annotated[str, typer.Argument(help="Filter by substring.")] = "",
    moe: Annotated[bool | None, typer.Option("--moe/--dense", help="Only MoE or only dense.")] = None,
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
    min_memory: Annotated[str | None, typer.Option(help="Only GPUs with at least this memory, e.g. 80GB.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the GPU catalog."""
    floor = parse_bytes(min_memory) if min_memory else 0.0
    rows = [gpu_row(g) for g in gpu_catalog().values() if search.lower() in g.id and g.memory_bytes >= floor]
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


def workload_from(
    isl: int,
    osl: int,
    rate: float | None,
    concurrency: int | None,
    offline: int | None,
    num_requests: int,
    burstiness: float,
    length_dist: str,
    length_cv: float,
    seed: int,
) -> Workload:
    """One workload from the mutually exclusive --rate / --concurrency / --offline options."""
    chosen = [x for x in (rate, concurrency, offline) if x is not None]
    if len(chosen) != 1:
        raise InputError("give exactly one of --rate R, --concurrency C or --offline N")
    if rate is not None:
        arrivals = Arrivals("poisson" if burstiness == 1.0 else "gamma", rate_per_s=rate, cv=burstiness)
    elif concurrency is not None:
        arrivals = Arrivals("concurrency", concurrency=concurrency)
    else:
        arrivals = Arrivals("offline")
        num_requests = offline or num_requests
    spread_in, spread_out = int(isl * length_cv), int(osl * length_cv)
    return Workload(
        LengthDist(isl, length_dist, spread_in, length_cv),
        LengthDist(osl, length_dist, spread_out, length_cv),
        arrivals,
        num_requests,
        seed,
    )


def parse_settings(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise InputError(f"--env-set '{item}': write NAME=NUMBER, e.g. jitter_loss=0.2") from None
        if not sep:
            raise InputError(f"--env-set '{item}': write NAME=NUMBER, e.g. jitter_loss=0.2")
    return out


def _slo(ttft: str | None, tpot: str | None, e2e: str | None) -> Slo:
    return Slo(
        parse_duration_s(ttft, default_unit="ms") if ttft else None,
        parse_duration_s(tpot, default_unit="ms") if tpot else None,
        parse_duration_s(e2e, default_unit="s") if e2e else None,
    )


@app.command()
@handles_errors
def predict(
    model: Annotated[str, typer.Argument(help="Catalog name, config.json path, model folder or hub id.")],
    gpu: GpuOpt,
    isl: Annotated[int, typer.Option(min=1, max=10_000_000, help="Input tokens per request (mean).")] = 1000,
    osl: Annotated[int, typer.Option(min=1, max=10_000_000, help="Output tokens per request (mean).")] = 200,
    rate: Annotated[float | None, typer.Option(help="Requests per second (Poisson; gamma with --burstiness).")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Closed loop: requests in flight.")] = None,
    offline: Annotated[int | None, typer.Option(help="Offline: N requests queued at t=0.")] = None,
    num_requests: Annotated[int, typer.Option(min=1, max=1_000_000)] = 1000,
    burstiness: Annotated[
        float,
        typer.Option(min=0.01, max=100, help="Coefficient of variation of gaps (1 = Poisson)."),
    ] = 1.0,
    length_dist: Annotated[str, typer.Option(help="fixed, uniform or lognormal.")] = "fixed",
    length_cv: Annotated[float, typer.Option(min=0.0, max=10.0, help="Spread of lengths (fraction).")] = 0.0,
    count: Annotated[int | None, typer.Option(help="Total GPUs.")] = None,
    tp: Annotated[int | None, typer.Option()] = None,
    pp: Annotated[int | None, typer.Option()] = None,
    dp: Annotated[int | None, typer.Option(help="Independent replicas.")] = None,
    dtype: Annotated[str, typer.Option()] = "auto",
    kv_dtype: Annotated[str, typer.Option()] = "auto",
    engine: Annotated[str, typer.Option(help="vllm, sglang, trtllm, triton-trtllm, gpt-fast.")] = "vllm",
    env: Annotated[str, typer.Option(help="bare-metal, vm, vgpu or mig:PROFILE.")] = "bare-metal",
    env_set: Annotated[list[str] | None, typer.Option(help="Edit an assumption: jitter_loss=0.2 (repeatable).")] = None,
    ttft: Annotated[str | None, typer.Option(help="Goodput target, e.g. 200ms.")] = None,
    tpot: Annotated[str | None, typer.Option(help="Goodput target, e.g. 50ms.")] = None,
    e2e: Annotated[str | None, typer.Option(help="Goodput target, e.g. 10s.")] = None,
    trace: Annotated[Path | None, typer.Option(help="CSV: arrival_s,input_tokens,output_tokens.")] = None,
    calibration: Annotated[str | None, typer.Option(help="A calibration profile (inferplan calibrate).")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Latency percentiles, throughput and a per-operator breakdown for a workload."""
    r = resolve_deployment(model, gpu, dtype, kv_dtype, count, tp, pp, dp)
    spec, g, precision, kv, par = r.model, r.gpu, r.precision, r.kv_dtype, r.parallelism
    environment = get_environment(env, parse_settings(env_set or []))
    requests = load_trace(trace) if trace else None
    if requests is not None:
        offline = offline if (rate or concurrency or offline) else len(requests)
    wl = workload_from(isl, osl, rate, concurrency, offline, num_requests, burstiness, length_dist, length_cv, seed)
    eng, g = apply_profile(get_engine(engine), g, load_profile(calibration) if calibration else None)
    result = run_prediction(
        spec,
        g,
        precision,
        kv,
        par,
        eng,
        wl,
        env=environment,
        slo=_slo(ttft, tpot, e2e),
        requests=requests,
    )
    payload = prediction_dict(result, wl)
    if as_json:
        emit_json(payload)
        return
    print_prediction(out, payload)


@app.command("validate")
@handles_errors
def validate_cmd(
    csv_path: Annotated[Path, typer.Argument(metavar="FILE.csv", help="Measurements (throughput.csv format).")],
    show_rows: Annotated[bool, typer.Option("--rows/--no-rows", help="Print every row.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Predict every measured row and report the absolute percentage errors."""
    outcomes = validate_rows(read_measurements(csv_path))
    payload = validation_dict(outcomes)
    if as_json:
        emit_json(payload)
        return
    print_validation(out, payload, show_rows)


def _csv(text: str | None) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()] if text else []


@app.command()
@handles_errors
def plan(
    model: Annotated[str, typer.Argument(help="Catalog name, config.json path, model folder or hub id.")],
    isl: Annotated[int, typer.Option(min=1, max=10_000_000, help="Input tokens per request.")] = 1000,
    osl: Annotated[int, typer.Option(min=1, max=10_000_000, help="Output tokens per request.")] = 200,
    rate: Annotated[float | None, typer.Option(help="Requests per second to serve.")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Concurrent users to serve.")] = None,
    ttft: Annotated[str | None, typer.Option(help="TTFT p90 target, e.g. 200ms.")] = None,
    tpot: Annotated[str | None, typer.Option(help="TPOT p90 target, e.g. 50ms.")] = None,
    e2e: Annotated[str | None, typer.Option(help="End-to-end p90 target, e.g. 20s.")] = None,
    min_throughput: Annotated[float | None, typer.Option(help="Minimum output tokens/s.")] = None,
    budget: Annotated[str | None, typer.Option(help="Maximum spend, e.g. 120/hour or 50k/month.")] = None,
    gpus: Annotated[str | None, typer.Option(help="Comma-separated GPU ids (default: whole catalog).")] = None,
    dtypes: Annotated[str | None, typer.Option(help="Weight precisions to consider, e.g. bf16,fp8,int4.")] = None,
    kv_dtypes: Annotated[str, typer.Option(help="KV dtypes to consider.")] = "auto,fp8",
    engine: Annotated[str, typer.Option()] = "vllm",
    env: Annotated[str, typer.Option(help="bare-metal, vm, vgpu or mig:PROFILE.")] = "bare-metal",
    env_set: Annotated[list[str] | None, typer.Option(help="Edit an assumption, e.g. jitter_loss=0.2.")] = None,
    prices: Annotated[Path | None, typer.Option(help="Your price YAML (adds to/overrides the catalog).")] = None,
    calibration: Annotated[str | None, typer.Option(help="A calibration profile (inferplan calibrate).")] = None,
    rank: Annotated[str, typer.Option(help="cost, latency, gpus or throughput_per_gpu.")] = "cost",
    top: Annotated[int, typer.Option(min=1, max=1000)] = 10,
    verify: Annotated[int, typer.Option(min=0, max=20, help="Simulate the best N to verify.")] = 1,
    hours_fraction: Annotated[float, typer.Option(min=0.01, max=1.0, help="Share of hours the load runs.")] = 1.0,
    peak_to_mean: Annotated[float, typer.Option(min=1.0, max=100.0, help="Traffic peak / mean.")] = 1.0,
    cost_set: Annotated[list[str] | None, typer.Option(help="Edit a cost assumption, e.g. usd_per_kwh=0.2.")] = None,
    as_json: JsonOpt = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print Markdown.")] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write a self-contained HTML report with charts.")
    ] = None,
    runs: Annotated[
        str | None, typer.Option(help="Benchmark run ids to set against predictions in the report.")
    ] = None,
    runs_on: Annotated[
        str | None,
        typer.Option(help="Where those runs were measured: gpu=ID,tp=N,pp=N,dtype=X (default: the recommendation)."),
    ] = None,
    db: Annotated[Path | None, typer.Option("--db", help="Results database holding --runs.")] = None,
) -> None:
    """Find the cheapest deployment that meets the targets, and explain it."""
    if output is not None:
        check_output_path(output)
    runs_where = parse_runs_on(runs_on)
    stored_runs = load_stored_runs(_csv(runs), db) if runs else []
    spec = load_model(model)
    demand = Demand.from_load(isl, osl, rate, concurrency)
    targets = Targets(
        parse_duration_s(ttft, default_unit="ms") if ttft else None,
        parse_duration_s(tpot, default_unit="ms") if tpot else None,
        parse_duration_s(e2e) if e2e else None,
        min_throughput,
        parse_budget_usd_per_hour(budget) if budget else None,
    )
    profile = load_profile(calibration) if calibration else None
    pool = [get_gpu(g) for g in _csv(gpus)] or list(gpu_catalog().values())
    eng = apply_profile(get_engine(engine), pool[0], profile)[0]
    result = make_plan(
        spec,
        demand,
        targets,
        gpus=[apply_profile(eng, g, profile)[1] for g in pool],
        precisions=[get_precision(x) for x in _csv(dtypes)] or None,
        kv_dtypes=_csv(kv_dtypes) or ["auto"],
        engine=eng,
        env=get_environment(env, parse_settings(env_set or [])),
        offers=load_offers(prices),
        rank_by=rank,
        verify=verify,
        hours_fraction=hours_fraction,
        peak_to_mean=peak_to_mean,
        cost_assumptions=cost_assumptions_from(cost_set or []),
    )
    payload = plan_dict(result, top)
    if as_json:
        emit_json(payload)
    elif markdown:
        sys.stdout.write(plan_markdown(payload))
    else:
        print_plan(out, payload)
    if output is not None:
        comparisons = compare_runs(result, stored_runs, runs_candidate(runs_where, result)) if stored_runs else None
        path = write_report(output, result, payload, comparisons)
        (err if as_json or markdown else out).print(f"Wrote the report to {path}.")


def report(**kwargs: Any) -> None:
    """Plan as 'inferplan plan' does, and write a self-contained HTML report with charts (-o FILE)."""
    plan(**kwargs)


def _report_signature() -> inspect.Signature:
    """``plan``'s options, with --output required."""
    sig = inspect.signature(plan, eval_str=True)
    required = Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write, e.g. report.html.")]
    params = [
        p.replace(annotation=required, default=inspect.Parameter.empty) if p.name == "output" else p
        for p in sig.parameters.values()
    ]
    return sig.replace(parameters=sorted(params, key=lambda p: p.default is not inspect.Parameter.empty))


report.__signature__ = _report_signature()  # type: ignore[attr-defined]
app.command("report")(report)


def cost_assumptions_from(items: list[str]) -> CostAssumptions:
    """Default cost assumptions with NAME=VALUE edits applied."""
    known = set(CostAssumptions.__dataclass_fields__) - {"source"}
    values: dict[str, Any] = dict(parse_settings(items))
    unknown = set(values) - known
    if unknown:
        raise InputError(f"unknown cost assumption(s) {sorted(unknown)}; use {', '.join(sorted(known))}")
    if "amortisation_months" in values:
        values["amortisation_months"] = int(values["amortisation_months"])
    return CostAssumptions(**values)


@app.command()
@handles_errors
def cost(
    model: Annotated[str, typer.Argument(help="Catalog name, config.json path, model folder or hub id.")],
    gpu: GpuOpt,
    tp: Annotated[int, typer.Option(min=1, max=64)] = 1,
    pp: Annotated[int, typer.Option(min=1, max=64)] = 1,
    dtype: Annotated[str, typer.Option()] = "auto",
    kv_dtype: Annotated[str, typer.Option()] = "auto",
    isl: Annotated[int, typer.Option(min=1, max=10_000_000)] = 1000,
    osl: Annotated[int, typer.Option(min=1, max=10_000_000)] = 200,
    rate: Annotated[float, typer.Option(min=1e-6, max=1e6, help="Mean requests per second.")] = 1.0,
    ttft: Annotated[str | None, typer.Option()] = None,
    tpot: Annotated[str | None, typer.Option()] = None,
    engine: Annotated[str, typer.Option()] = "vllm",
    prices: Annotated[Path | None, typer.Option()] = None,
    hours_fraction: Annotated[float, typer.Option(min=0.01, max=1.0)] = 1.0,
    peak_to_mean: Annotated[float, typer.Option(min=1.0, max=100.0)] = 1.0,
    cost_set: Annotated[list[str] | None, typer.Option()] = None,
    as_json: JsonOpt = False,
) -> None:
    """Bare metal against cloud for one given configuration."""
    spec = load_model(model)
    g = get_gpu(gpu)
    precision = resolve_precision(spec, dtype)
    cand = Candidate(g, tp, pp, precision, resolve_kv_dtype(kv_dtype, precision))
    demand = Demand(isl, osl, rate)
    targets = Targets(
        parse_duration_s(ttft, default_unit="ms") if ttft else None,
        parse_duration_s(tpot, default_unit="ms") if tpot else None,
    )
    offers = load_offers(prices)
    eng = get_engine(engine)
    bare = evaluate(spec, cand, demand, targets, eng, offers, get_environment("bare-metal"))
    cloud = evaluate(spec, cand, demand, targets, eng, offers, get_environment("vm"))
    if bare is None or cloud is None:
        raise DoesNotFitError(
            f"{spec.name} at {precision.name} does not fit TP {tp} x PP {pp} of {g.id}; run 'inferplan fit' to size it"
        )
    if bare.max_rate_per_replica <= 0 or cloud.max_rate_per_replica <= 0:
        raise InfeasibleError(f"TP {tp} x PP {pp} of {g.id} cannot meet the targets at any load ({bare.miss})")
    comparison = compare_costs(
        g,
        tp * pp,
        rate / bare.max_rate_per_replica,
        rate / cloud.max_rate_per_replica,
        offers,
        rate * osl,
        hours_fraction,
        peak_to_mean,
        cost_assumptions_from(cost_set or []),
    )
    payload = {
        "schema": "inferplan.cost/1",
        "model": spec.name,
        "gpu": g.id,
        "tp": tp,
        "pp": pp,
        "precision": precision.name,
        **(cost_dict(comparison) or {}),
    }
    if as_json:
        emit_json(payload)
        return
    print_cost(out, payload)


@app.command()
@handles_errors
def deploy(
    model: Annotated[str, typer.Argument(help="Catalog name, config.json path or model folder.")],
    gpu: GpuOpt,
    engine: Annotated[str, typer.Option(help="vllm or sglang.")] = "vllm",
    fmt: Annotated[str, typer.Option("--format", help="shell, compose or k8s.")] = "shell",
    count: Annotated[int | None, typer.Option(help="GPUs per replica.")] = None,
    tp: Annotated[int | None, typer.Option()] = None,
    pp: Annotated[int | None, typer.Option()] = None,
    dp: Annotated[int | None, typer.Option(help="Replicas.")] = None,
    dtype: Annotated[str, typer.Option()] = "auto",
    kv_dtype: Annotated[str, typer.Option()] = "auto",
    context: Annotated[int, typer.Option(min=16, max=10_000_000, help="max_model_len.")] = 8192,
    concurrency: Annotated[int, typer.Option(min=1, max=100_000, help="Sequences the KV cache must hold.")] = 64,
    max_num_batched_tokens: Annotated[int, typer.Option(min=16, max=1_000_000)] = 8192,
    model_id: Annotated[str | None, typer.Option(help="What the engine loads (default: the hub id or path).")] = None,
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    python: Annotated[str | None, typer.Option(help="Run the engine as PYTHON -m ... (e.g. a venv's python).")] = None,
    launch: Annotated[bool, typer.Option(help="Start the engine and wait until /health answers.")] = False,
    wait: Annotated[str, typer.Option(help="How long --launch waits.")] = "900s",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to a file.")] = None,
) -> None:
    """Launch command or manifests for vLLM / SGLang, memory settings matching the plan."""
    r = resolve_deployment(model, gpu, dtype, kv_dtype, count, tp, pp, dp)
    spec, g, precision, kv, par = r.model, r.gpu, r.precision, r.kv_dtype, r.parallelism
    entry = catalog_models().get(spec.name)
    target = model_id or (entry.hf_id if entry else model)
    dspec = settings_for(
        spec, target, g, precision, kv, par, engine, context, concurrency, max_num_batched_tokens, port
    )
    text = render(dspec, fmt, python)
    if output:
        output.write_text(text, encoding="utf-8")
        out.print(f"wrote {output}")
    elif not launch:
        sys.stdout.write(text)
    if launch:
        if fmt != "shell":
            raise InputError("--launch starts the shell command; use --format shell")
        url, pid = launch_engine(engine_command(dspec, python), port, parse_duration_s(wait))
        out.print(f"{engine} is healthy at {url} (pid {pid}); stop it with: kill {pid}")


@app.command()
@handles_errors
def ui(
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 exposes the UI to your network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8765,
) -> None:
    """Serve the web UI and its JSON API (OpenAPI at /api/docs) until Ctrl-C."""
    try:
        from inferplan.present.web import serve
    except ImportError as exc:
        raise InputError(
            f"the web UI needs FastAPI and uvicorn ({exc.name} is missing): pip install 'inferplan[web]'"
        ) from None
    out.print(f"inferplan UI on http://{host}:{port}/ (API docs at /api/docs); Ctrl-C stops it.")
    serve(host, port)


def _register_subcommands() -> None:
    from inferplan.cli.bench import bench_app, calibrate_cmd, runs_app

    app.add_typer(bench_app, name="bench")
    app.add_typer(runs_app, name="runs")
    app.command("calibrate")(calibrate_cmd)


_register_subcommands()


def main() -> None:
    """Console entry point."""
    app()
