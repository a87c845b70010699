"""``inferplan plan``, ``report`` and ``cost``: each builds the same
:class:`~inferplan.plan.question.PlanQuestion` the web API takes and calls the one plan path."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from inferplan.bench.compare import Comparison, compare
from inferplan.bench.runs import compare_runs, load_stored_runs, parse_runs_on, runs_deployment
from inferplan.bench.store import ResultsStore
from inferplan.bench.sweep import SweepView, load_sweep
from inferplan.cli.common import JsonOpt, csv_list, duration_ms, emit_json, err, handles_errors, out, parse_settings
from inferplan.cli.serving_options import (
    KvLinkOpt,
    KvOverlapOpt,
    SpecAcceptanceOpt,
    SpecDraftTpOpt,
    SpecModelOpt,
    SpecOpt,
    SpecTokensOpt,
)
from inferplan.cli.sizing import GpuOpt, ModelArg
from inferplan.cli.workload_options import (
    DatasetOpt,
    KvOffloadOpt,
    LoraAdaptersOpt,
    LoraRankOpt,
    LoraTargetsOpt,
    MaxCpuLorasOpt,
    MaxLoraRankOpt,
    MaxLorasOpt,
    MultiTurnOpt,
    PrefixCachingOpt,
    SharedPrefixOpt,
    ThinkTimeOpt,
    TokensPerWordOpt,
    parse_shared_prefix,
    think_time_s,
)
from inferplan.perf.datasets import TOKENS_PER_WORD
from inferplan.plan.question import PlanQuestion, question_from
from inferplan.plan.service import answer
from inferplan.present.payload import to_json_dict
from inferplan.present.payload_plan import cost_command_payload, plan_payload
from inferplan.present.report_html import check_output_path, write_report
from inferplan.present.report_measured import Measured
from inferplan.present.text_plan import plan_markdown, print_cost, print_plan
from inferplan.specs.prices import read_price_file
from inferplan.units import parse_budget_usd_per_hour, parse_duration_s

__all__ = ["cost", "plan", "report"]

COST_EXAMPLE = "usd_per_kwh=0.2"
COST_SET_HELP = (
    "Edit a cost assumption NAME=VALUE, e.g. usd_per_kwh=0.2, depreciation_months=48, financing_rate_per_year=0.07, "
    "scale_up_delay_s=600 (every name: docs/prices.md)."
)
PRICES_HELP = "Your price file (YAML, docs/prices.md): offers, API prices and assumptions added to the catalog."
ENV_EXAMPLE = "jitter_loss=0.2"


def _prices(path: Path | None) -> dict[str, Any]:
    return {"prices_yaml": read_price_file(path), "prices_origin": str(path)} if path is not None else {}


def _workload(shared_prefix: tuple[int, int], **values: Any) -> dict[str, Any]:
    """The question's ``workload`` part (issue 13) from the CLI options."""
    count, tokens = shared_prefix
    return {k: v for k, v in values.items() if v is not None} | {
        "shared_prefixes": count,
        "shared_prefix_tokens": tokens,
    }


def _question(**values: Any) -> PlanQuestion:
    """The question from CLI options (None means 'not given')."""
    return question_from({k: v for k, v in values.items() if v is not None})


@handles_errors
def plan(
    model: ModelArg,
    isl: Annotated[int, typer.Option(help="Input tokens per request.")] = 1000,
    osl: Annotated[int, typer.Option(help="Output tokens per request.")] = 200,
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
    prices: Annotated[Path | None, typer.Option(help=PRICES_HELP)] = None,
    calibration: Annotated[str | None, typer.Option(help="A calibration profile (inferplan calibrate).")] = None,
    rank: Annotated[str, typer.Option(help="cost, latency, gpus or throughput_per_gpu.")] = "cost",
    top: Annotated[int, typer.Option(help="Configurations to list.")] = 10,
    verify: Annotated[int, typer.Option(help="Check the best with the simulator (0: skip).")] = 1,
    hours_fraction: Annotated[float, typer.Option(help="Share of hours the load runs.")] = 1.0,
    peak_to_mean: Annotated[float, typer.Option(help="Traffic peak / mean.")] = 1.0,
    cost_set: Annotated[list[str] | None, typer.Option(help=COST_SET_HELP)] = None,
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
    sweep: Annotated[
        int | None, typer.Option(help="A sweep (bench sweep) to draw with the predicted curve of --runs-on.")
    ] = None,
    compare_runs_: Annotated[
        str | None, typer.Option("--compare", help="Runs or sweeps to draw side by side: 3,7,s2.")
    ] = None,
    db: Annotated[
        Path | None, typer.Option("--db", help="Results database holding --runs, --sweep and --compare.")
    ] = None,
    spec: SpecOpt = None,
    spec_tokens: SpecTokensOpt = None,
    spec_acceptance: SpecAcceptanceOpt = None,
    spec_model: SpecModelOpt = None,
    spec_draft_tp: SpecDraftTpOpt = None,
    disagg: Annotated[
        bool, typer.Option("--disagg", help="Also search disaggregated prefill/decode pools (xPyD) and compare.")
    ] = False,
    kv_link: KvLinkOpt = "ib-ndr",
    kv_overlap: KvOverlapOpt = None,
    dataset: DatasetOpt = None,
    tokens_per_word: TokensPerWordOpt = TOKENS_PER_WORD,
    multi_turn: MultiTurnOpt = 1,
    think_time: ThinkTimeOpt = None,
    shared_prefix: SharedPrefixOpt = None,
    prefix_caching: PrefixCachingOpt = True,
    lora_adapters: LoraAdaptersOpt = 0,
    lora_rank: LoraRankOpt = 16,
    lora_targets: LoraTargetsOpt = "all",
    max_loras: MaxLorasOpt = None,
    max_lora_rank: MaxLoraRankOpt = None,
    max_cpu_loras: MaxCpuLorasOpt = None,
    kv_offload_gb: KvOffloadOpt = None,
    offload: Annotated[
        bool, typer.Option("--offload", help="Also consider fewer GPUs with some weights in host memory.")
    ] = False,
) -> None:
    """Find the cheapest deployment that meets the targets, and explain it."""
    if output is not None:
        check_output_path(output)
    runs_where = parse_runs_on(runs_on)
    stored_runs = load_stored_runs(csv_list(runs), db) if runs else []
    measured_sweep, compared = read_measured(db, sweep, csv_list(compare_runs_))
    question = _question(
        model=model,
        isl=isl,
        osl=osl,
        rate_per_s=rate,
        concurrency=concurrency,
        ttft_ms=duration_ms(ttft),
        tpot_ms=duration_ms(tpot),
        e2e_s=parse_duration_s(e2e) if e2e else None,
        min_output_tokens_per_s=min_throughput,
        budget_usd_per_hour=parse_budget_usd_per_hour(budget) if budget else None,
        gpus=csv_list(gpus),
        dtypes=csv_list(dtypes),
        kv_dtypes=csv_list(kv_dtypes) or ["auto"],
        engine=engine,
        environment=env,
        env_set=parse_settings(env_set or [], "--env-set", ENV_EXAMPLE),
        calibration=calibration,
        cost_set=parse_settings(cost_set or [], "--cost-set", COST_EXAMPLE),
        hours_fraction=hours_fraction,
        peak_to_mean=peak_to_mean,
        rank=rank,
        top=top,
        verify=verify,
        spec_method=spec,
        spec_tokens=spec_tokens,
        spec_acceptance=spec_acceptance,
        spec_model=spec_model,
        spec_draft_tp=spec_draft_tp,
        disaggregation=disagg,
        kv_link=kv_link,
        kv_overlap=kv_overlap,
        workload=_workload(
            dataset=str(dataset) if dataset else None,
            tokens_per_word=tokens_per_word,
            turns=multi_turn,
            think_time_s=think_time_s(think_time),
            shared_prefix=parse_shared_prefix(shared_prefix),
            prefix_caching=prefix_caching,
            lora_adapters=lora_adapters,
            lora_rank=lora_rank,
            lora_targets=lora_targets,
            max_loras=max_loras,
            max_lora_rank=max_lora_rank,
            max_cpu_loras=max_cpu_loras,
            kv_offload_gb=kv_offload_gb,
            cpu_offload=offload,
        ),
        **_prices(prices),
    )
    result = answer(question, files=True)
    payload = to_json_dict(plan_payload(result, question.top))
    if as_json:
        emit_json(plan_payload(result, question.top))
    elif markdown:
        sys.stdout.write(plan_markdown(payload))
    else:
        print_plan(out, payload)
    if output is not None:
        where = runs_deployment(runs_where, result)
        measured = Measured(
            compare_runs(stored_runs, where) if stored_runs else None,
            measured_sweep,
            where if measured_sweep else None,
            compared,
        )
        path = write_report(output, result, payload, measured)
        (err if as_json or markdown else out).print(f"Wrote the report to {path}.", markup=False, highlight=False)


def read_measured(db: Path | None, sweep: int | None, refs: list[str]) -> tuple[SweepView | None, Comparison | None]:
    """The sweep and the runs to compare, read (and every reference checked) before any planning."""
    if sweep is None and not refs:
        return None, None
    store = ResultsStore(db, writable=False)
    try:
        return (load_sweep(store, sweep) if sweep is not None else None), (compare(store, refs) if refs else None)
    finally:
        store.close()


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


@handles_errors
def cost(
    model: ModelArg,
    gpu: GpuOpt,
    tp: Annotated[int, typer.Option(help="Tensor-parallel size.")] = 1,
    pp: Annotated[int, typer.Option(help="Pipeline-parallel size.")] = 1,
    dtype: Annotated[str, typer.Option()] = "auto",
    kv_dtype: Annotated[str, typer.Option()] = "auto",
    isl: Annotated[int, typer.Option()] = 1000,
    osl: Annotated[int, typer.Option()] = 200,
    rate: Annotated[float, typer.Option(help="Mean requests per second.")] = 1.0,
    ttft: Annotated[str | None, typer.Option()] = None,
    tpot: Annotated[str | None, typer.Option()] = None,
    engine: Annotated[str, typer.Option()] = "vllm",
    env: Annotated[str, typer.Option(help="bare-metal, vm, vgpu or mig:PROFILE.")] = "bare-metal",
    prices: Annotated[Path | None, typer.Option(help=PRICES_HELP)] = None,
    calibration: Annotated[str | None, typer.Option(help="A calibration profile (inferplan calibrate).")] = None,
    hours_fraction: Annotated[float, typer.Option(help="Share of hours the load runs.")] = 1.0,
    peak_to_mean: Annotated[float, typer.Option(help="Traffic peak / mean.")] = 1.0,
    cost_set: Annotated[list[str] | None, typer.Option(help=COST_SET_HELP)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every way to pay for one configuration's load: leases, purchases, cloud and a hosted API (the plan path,
    restricted to that configuration)."""
    question = _question(
        model=model,
        isl=isl,
        osl=osl,
        rate_per_s=rate,
        ttft_ms=duration_ms(ttft),
        tpot_ms=duration_ms(tpot),
        gpus=[gpu],
        dtypes=[dtype],
        kv_dtypes=[kv_dtype],
        tp=tp,
        pp=pp,
        engine=engine,
        environment=env,
        calibration=calibration,
        cost_set=parse_settings(cost_set or [], "--cost-set", COST_EXAMPLE),
        hours_fraction=hours_fraction,
        peak_to_mean=peak_to_mean,
        verify=0,
        top=1,
        **_prices(prices),
    )
    payload = cost_command_payload(answer(question, files=True))
    if as_json:
        emit_json(payload)
        return
    d = to_json_dict(payload)
    for line in d["headline"]:
        out.print(escape(line), highlight=False)
    print_cost(out, d["cost"])
