"""``inferplan bench ...`` and ``inferplan runs ...``: parse, call the library, render."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from inferplan.bench.calibration import CalibrationProfile, calibrate, observation_from_records, save_profile
from inferplan.bench.client import RequestRecord
from inferplan.bench.loop import loop_name, run
from inferplan.bench.selfcheck import run_self_check
from inferplan.bench.serve import ServeSpec, run_sweep
from inferplan.bench.store import ResultsStore, RunInfo
from inferplan.bench.summary import summarize_records
from inferplan.cli.common import emit_json, handles_errors
from inferplan.errors import InputError
from inferplan.perf.metrics import Slo
from inferplan.present.payload_fit import table
from inferplan.sizing.memory import Parallelism
from inferplan.specs.deployment import resolve_kv_dtype, resolve_precision
from inferplan.specs.engines import get_engine
from inferplan.specs.hardware import get_gpu
from inferplan.specs.model_catalog import load_model
from inferplan.units import parse_duration_s

bench_app = typer.Typer(help="Measure real servers and this machine.", no_args_is_help=True)
runs_app = typer.Typer(help="The results database: list, show, export, import.", invoke_without_command=True)
out = Console(soft_wrap=False, width=120)
err = Console(stderr=True)  # progress and warnings

DbOpt = Annotated[
    Path | None, typer.Option("--db", help="Results database (default $INFERPLAN_DB or ~/.inferplan/results.db).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _floats(text: str | None, what: str) -> tuple[float, ...]:
    if not text:
        return ()
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise InputError(f"--{what} '{text}': write numbers separated by commas, e.g. 1,2,4") from None
    if any(v <= 0 for v in values):
        raise InputError(f"--{what} values must be positive")
    return values


def _ms(x: float) -> str:
    return "-" if math.isnan(x) else f"{x * 1e3:,.1f}"


def print_summary(s: dict[str, Any], title: str) -> None:
    rows = [
        [name, _ms(s[key]["mean"]), _ms(s[key]["p50"]), _ms(s[key]["p90"]), _ms(s[key]["p99"])]
        for name, key in (("TTFT", "ttft_s"), ("TPOT", "tpot_s"), ("ITL", "itl_s"), ("E2E", "e2e_s"))
    ]
    out.print(table(title, ["metric (ms)", "mean", "p50", "p90", "p99"], rows))
    failures = ", ".join(f"{k} {v}" for k, v in s["failures"].items()) or "none"
    out.print(
        f"sent {s['sent']}, succeeded {s['succeeded']}, failed {s['failed']} ({failures}); "
        f"{s['request_throughput_per_s']:,.2f} req/s, {s['output_token_throughput_per_s']:,.1f} output tok/s, "
        f"goodput {s['goodput_requests_per_s']:,.2f} req/s"
        + ("" if s["output_tokens_from_usage"] else "; output tokens counted from chunks (no usage)")
    )
    if s.get("first_failure"):
        err.print(f"first failure: {s['first_failure'][:200]}", highlight=False)
    if s.get("warning"):
        err.print(f"[yellow]warning:[/yellow] {s['warning']}")


@bench_app.command("serve")
@handles_errors
def bench_serve(
    url: Annotated[str, typer.Option(help="Server base URL, e.g. http://127.0.0.1:8000")],
    model: Annotated[str, typer.Option(help="Model name the server serves.")],
    rate: Annotated[str | None, typer.Option(help="Requests/s, or a sweep: 1,2,4.")] = None,
    concurrency: Annotated[str | None, typer.Option(help="Concurrent streams, or a sweep: 1,8,32.")] = None,
    isl: Annotated[int, typer.Option(min=1, max=1_000_000)] = 512,
    osl: Annotated[int, typer.Option(min=1, max=1_000_000)] = 128,
    dataset: Annotated[Path | None, typer.Option(help="JSON lines with 'prompt' (and 'max_tokens').")] = None,
    num_requests: Annotated[int, typer.Option(min=1, max=1_000_000)] = 200,
    duration: Annotated[str | None, typer.Option(help="Stop sending after this long, e.g. 60s.")] = None,
    warmup: Annotated[int, typer.Option(min=0, max=10_000)] = 0,
    seed: Annotated[int, typer.Option()] = 0,
    endpoint: Annotated[str, typer.Option(help="completions or chat.")] = "completions",
    timeout: Annotated[str, typer.Option(help="Per-request timeout.")] = "120s",
    burstiness: Annotated[float, typer.Option(min=0.01, max=100.0, help="Gap CV; 1 = Poisson.")] = 1.0,
    max_concurrency: Annotated[int | None, typer.Option(help="Cap on streams in an open-loop run.")] = None,
    ttft: Annotated[str | None, typer.Option(help="Goodput target, e.g. 500ms.")] = None,
    tpot: Annotated[str | None, typer.Option(help="Goodput target, e.g. 50ms.")] = None,
    ignore_eos: Annotated[bool, typer.Option(help="Ask for exactly --osl tokens (vLLM/SGLang field).")] = True,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Benchmark an OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp, transformers serve)."""
    concs = tuple(int(c) for c in _floats(concurrency, "concurrency"))
    spec = ServeSpec(
        url=url,
        model=model,
        rates=_floats(rate, "rate"),
        concurrencies=concs,
        isl=isl,
        osl=osl,
        dataset=dataset,
        num_requests=num_requests,
        duration_s=parse_duration_s(duration) if duration else None,
        warmup=warmup,
        seed=seed,
        endpoint=endpoint,
        timeout_s=parse_duration_s(timeout),
        burstiness=burstiness,
        max_concurrency=max_concurrency,
        ignore_eos=ignore_eos,
        slo=Slo(
            parse_duration_s(ttft, default_unit="ms") if ttft else None,
            parse_duration_s(tpot, default_unit="ms") if tpot else None,
        ),
    )
    store = ResultsStore(db)
    progress = Progress(
        TextColumn("run {task.fields[run]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]}"),
        TimeElapsedColumn(),
        console=err,
        disable=as_json or not err.is_terminal,
        transient=True,
    )
    tasks: dict[int, Any] = {}
    failed: dict[int, int] = {}

    def on_progress(run_id: int, rec: RequestRecord) -> None:
        if run_id not in tasks:
            tasks[run_id] = progress.add_task("serve", total=spec.num_requests, run=run_id, failed=0)
        failed[run_id] = failed.get(run_id, 0) + (0 if rec.ok else 1)
        progress.update(tasks[run_id], advance=1, failed=failed[run_id])

    try:
        with progress:
            results = run(run_sweep(spec, store, on_progress))
    except KeyboardInterrupt:
        err.print("interrupted: every request measured so far is in the results database (inferplan runs)")
        raise typer.Exit(130) from None
    finally:
        store.close()
    if as_json:
        sys.stdout.write(
            json.dumps(
                {
                    "schema": "inferplan.bench-serve/1",
                    "db": str(store.path),
                    "points": [
                        {
                            "run_id": r.run_id,
                            "arrivals": r.arrivals.kind,
                            "rate_per_s": r.arrivals.rate_per_s,
                            "concurrency": r.arrivals.concurrency,
                            "summary": r.summary,
                            "telemetry": r.telemetry,
                        }
                        for r in results
                    ],
                },
                indent=2,
            )
            + "\n"
        )
        return
    for r in results:
        load = f"{r.arrivals.rate_per_s:g} req/s" if r.arrivals.rate_per_s else f"concurrency {r.arrivals.concurrency}"
        print_summary(r.summary, f"run {r.run_id}: {load}" + (", server metrics recorded" if r.telemetry else ""))
    out.print(f"Stored in {store.path}.")


@bench_app.command("self-check")
@handles_errors
def bench_self_check(
    concurrency: Annotated[int, typer.Option(min=1, max=4096)] = 256,
    num_requests: Annotated[int, typer.Option(min=1, max=100_000)] = 2000,
    tokens: Annotated[int, typer.Option(min=2, max=4096)] = 16,
    token_delay: Annotated[str, typer.Option(help="Server's gap between tokens.")] = "100ms",
    as_json: JsonOpt = False,
) -> None:
    """Measure the latency the client itself adds, against a zero-latency local server."""
    result = run_self_check(concurrency, num_requests, tokens, parse_duration_s(token_delay, default_unit="ms"))
    payload = {
        "schema": "inferplan.self-check/1",
        "concurrency": result.concurrency,
        "requests": result.num_requests,
        "succeeded": result.num_ok,
        "client_ttft_p50_s": result.client_ttft_p50_s,
        "client_ttft_p99_s": result.client_ttft_p99_s,
        "client_ttft_p99_including_ramp_s": result.client_ttft_p99_all_s,
        "event_loop": loop_name(),
        "send_lag_p99_s": result.send_lag_p99_s,
        "wall_s": result.wall_s,
    }
    if as_json:
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    out.print(
        f"At {result.concurrency} concurrent streams ({result.num_ok}/{result.num_requests} requests), the client "
        f"adds {result.client_ttft_p50_s * 1e3:.2f} ms (p50) and {result.client_ttft_p99_s * 1e3:.2f} ms (p99, "
        f"steady state) to TTFT; {result.client_ttft_p99_all_s * 1e3:.2f} ms p99 including the ramp-up; p99 "
        f"send lag {result.send_lag_p99_s * 1e3:.2f} ms; event loop {loop_name()}."
    )


def _run_rows(runs: list[RunInfo]) -> list[list[str]]:
    rows = []
    for r in runs:
        s = r.summary or {}
        ttft = s.get("ttft_s", {}).get("p90") if isinstance(s.get("ttft_s"), dict) else None
        rows.append(
            [
                str(r.id),
                r.kind,
                r.status,
                r.started_at,
                r.model or "-",
                str(r.num_requests),
                _ms(ttft) if isinstance(ttft, float) else "-",
            ]
        )
    return rows


@runs_app.callback()
@handles_errors
def runs_list(ctx: typer.Context, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """List the runs (with no subcommand)."""
    if ctx.invoked_subcommand is not None:
        return
    store = ResultsStore(db)
    runs = store.runs()
    store.close()
    if as_json:
        sys.stdout.write(
            json.dumps(
                {
                    "schema": "inferplan.runs/1",
                    "runs": [
                        {
                            "id": r.id,
                            "kind": r.kind,
                            "status": r.status,
                            "started_at": r.started_at,
                            "model": r.model,
                            "url": r.url,
                            "num_requests": r.num_requests,
                        }
                        for r in runs
                    ],
                },
                indent=2,
            )
            + "\n"
        )
        return
    out.print(
        table(
            f"Runs in {store.path}",
            ["id", "kind", "status", "started", "model", "requests", "TTFT p90 ms"],
            _run_rows(runs),
        )
    )


@runs_app.command("show")
@handles_errors
def runs_show(run_id: int, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """One run: its settings, machine, summary and telemetry."""
    store = ResultsStore(db)
    try:
        info = store.run(run_id)
        summary = summarize_records(store.records(run_id))
        telemetry = store.telemetry(run_id)
    finally:
        store.close()
    if as_json:
        sys.stdout.write(
            json.dumps(
                {
                    "schema": "inferplan.run-summary/1",
                    "id": info.id,
                    "kind": info.kind,
                    "status": info.status,
                    "config": info.config,
                    "machine": info.machine,
                    "summary": summary,
                    "stored_summary": info.summary,
                    "telemetry_samples": len(telemetry),
                },
                indent=2,
                default=str,
            )
            + "\n"
        )
        return
    out.print(
        f"run {info.id} ({info.kind}, {info.status}) against {info.url or '-'} model {info.model or '-'}, "
        f"started {info.started_at}; {info.num_requests} requests; {len(telemetry)} telemetry samples."
    )
    print_summary(summary, f"run {info.id}")


@runs_app.command("export")
@handles_errors
def runs_export(
    run_id: int,
    output: Annotated[Path, typer.Option("-o", "--output")],
    db: DbOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="json or csv")] = "json",
) -> None:
    """Write one run to a JSON file (everything) or a CSV file (one row per request)."""
    if fmt not in ("json", "csv"):
        raise InputError("--format must be json or csv")
    store = ResultsStore(db)
    try:
        if fmt == "json":
            output.write_text(json.dumps(store.export_json(run_id), indent=2, default=str), encoding="utf-8")
        else:
            store.export_csv(run_id, output)
    finally:
        store.close()
    out.print(f"wrote run {run_id} to {output}")


@runs_app.command("import")
@handles_errors
def runs_import(path: Path, db: DbOpt = None) -> None:
    """Import a 'vllm bench serve --save-result --save-detailed' JSON file as a run."""
    store = ResultsStore(db)
    try:
        run_id = store.import_vllm_result(path)
    finally:
        store.close()
    out.print(f"imported {path} as run {run_id}")


__all__ = ["bench_app", "runs_app"]


@handles_errors
def calibrate_cmd(
    run_ids: Annotated[list[int], typer.Argument(metavar="RUN...", help="Serving runs and/or 'bench gpu' runs.")],
    name: Annotated[str, typer.Option(help="Profile name, used as --calibration NAME later.")],
    model: Annotated[str, typer.Option(help="The model the server ran (catalog name, config.json or folder).")],
    gpu: Annotated[str, typer.Option(help="The GPU it ran on.")],
    tp: Annotated[int, typer.Option(min=1, max=64)] = 1,
    pp: Annotated[int, typer.Option(min=1, max=64)] = 1,
    dtype: Annotated[str, typer.Option()] = "auto",
    kv_dtype: Annotated[str, typer.Option()] = "auto",
    engine: Annotated[str, typer.Option()] = "vllm",
    params: Annotated[str, typer.Option(help="Parameters to fit.")] = "step_overhead_s,mem_efficiency,gemm_efficiency",
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fit the performance model to measured runs and save a calibration profile."""
    spec = load_model(model)
    g = get_gpu(gpu)
    precision = resolve_precision(spec, dtype)
    store = ResultsStore(db)
    try:
        serving = [store.run(i) for i in run_ids]
        observations = [observation_from_records(str(r.id), store.records(r.id)) for r in serving if r.kind != "gpu"]
        measured = [m for r in serving if r.kind == "gpu" for m in store.measurements(r.id)]
    finally:
        store.close()
    eng = get_engine(engine)
    matmul: dict[str, float] = {}
    for m in measured:
        if m["name"] == "gemm_tflops":
            dt = str(m["params"].get("dtype"))
            matmul[dt] = max(matmul.get(dt, 0.0), float(m["value"]))
    bandwidth = max((float(m["value"]) for m in measured if m["name"] == "memory_bandwidth_gb_s"), default=None)
    fields = tuple(p.strip() for p in params.split(",") if p.strip())
    if observations:
        profile = calibrate(
            name,
            observations,
            spec,
            g,
            precision,
            resolve_kv_dtype(kv_dtype, precision),
            Parallelism(tp=tp, pp=pp),
            eng,
            fields,
            log=None if as_json else err.print,
        )
    else:
        profile = CalibrationProfile(name=name, engine=eng.name, gpu=g.id)
    kernels = dict(profile.kernels)
    if bandwidth:  # a measured copy bandwidth sets the streaming efficiency directly
        kernels["mem_efficiency"] = min(bandwidth * 1e9 / g.mem_bw_bytes_per_s, 0.98)
    profile = replace(
        profile,
        kernels=kernels,
        measured_matmul_tflops=profile.measured_matmul_tflops | matmul,
        measured_mem_bw_gb_s=bandwidth or profile.measured_mem_bw_gb_s,
    )
    path = save_profile(profile)
    payload = {
        "schema": "inferplan.calibration/1",
        "name": profile.name,
        "path": str(path),
        "kernels": profile.kernels,
        "engine_overrides": profile.engine_overrides,
        "measured_matmul_tflops": profile.measured_matmul_tflops,
        "measured_mem_bw_gb_s": profile.measured_mem_bw_gb_s,
        "fitted_on": profile.fitted_on,
        "error_before": profile.error_before,
        "error_after": profile.error_after,
    }
    if as_json:
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    if profile.error_before is not None and profile.error_after is not None:
        out.print(
            f"mean |log error| of TTFT, TPOT and throughput over {len(observations)} run(s): "
            f"{profile.error_before:.3f} before, {profile.error_after:.3f} after "
            f"(about {math.expm1(profile.error_before) * 100:.0f}% -> {math.expm1(profile.error_after) * 100:.0f}%)"
        )
    fitted = profile.kernels | profile.engine_overrides
    out.print("fitted: " + ", ".join(f"{k}={v:.4g}" for k, v in fitted.items()))
    out.print(f"saved {path}; use it with --calibration {profile.name}")


@bench_app.command("gpu")
@handles_errors
def bench_gpu(
    quick: Annotated[bool, typer.Option(help="Small sizes: seconds, not minutes.")] = False,
    disk_file: Annotated[Path | None, typer.Option(help="Read this file for the disk test (else a temp file).")] = None,
    world_size: Annotated[
        int | None, typer.Option(help="Processes for the all-reduce test (default: GPUs, or 2).")
    ] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """GEMM FLOP/s per dtype, memory, host-to-device, all-reduce and disk bandwidth (needs torch)."""
    from inferplan.bench.gpu import run_gpu_benchmarks
    from inferplan.bench.serve import machine_description

    if disk_file is not None and not disk_file.is_file():
        raise InputError(f"--disk-file {disk_file} is not a file")
    device, results = run_gpu_benchmarks(quick, disk_file, world_size, None if as_json else err.print)
    store = ResultsStore(db)
    try:
        run_id = store.start_run("gpu", {"quick": quick, "world_size": world_size}, machine_description() | device)
        for m in results:
            store.add_measurement(run_id, m.name, m.value, m.unit, m.params)
        store.finish_run(run_id, "complete", {"device": device["name"], "measurements": len(results)})
    finally:
        store.close()
    if as_json:
        emit_json(
            {
                "schema": "inferplan.bench-gpu/1",
                "run_id": run_id,
                "device": device,
                "measurements": [
                    {"name": m.name, "value": m.value, "unit": m.unit, "params": m.params} for m in results
                ],
            }
        )
        return
    rows = [[m.name, ", ".join(f"{k}={v}" for k, v in m.params.items()), f"{m.value:,.3f}", m.unit] for m in results]
    out.print(
        table(
            f"Micro-benchmarks on {device['name']} ({device['device']}), run {run_id}",
            ["measurement", "parameters", "value", "unit"],
            rows,
        )
    )
