"""``inferplan bench ...`` and ``inferplan runs ...``: parse, call the library, render."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from inferplan.bench.client import RequestRecord
from inferplan.bench.loop import loop_name, run
from inferplan.bench.selfcheck import run_self_check
from inferplan.bench.serve import ServeSpec, run_sweep
from inferplan.bench.store import ResultsStore
from inferplan.cli.common import emit_json, handles_errors
from inferplan.errors import InputError
from inferplan.perf.metrics import Slo
from inferplan.present.payload_bench import (
    BenchGpuPayload,
    BenchServePayload,
    MeasurementRow,
    RunSummary,
    SelfCheckPayload,
    ServePoint,
)
from inferplan.present.text import ms, table
from inferplan.units import parse_duration_s

bench_app = typer.Typer(help="Measure real servers and this machine.", no_args_is_help=True)
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


def print_summary(s: dict[str, Any], title: str) -> None:
    rows = [
        [name, ms(s[key]["mean"]), ms(s[key]["p50"]), ms(s[key]["p90"]), ms(s[key]["p99"])]
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
        emit_json(
            BenchServePayload(
                db=str(store.path),
                points=[
                    ServePoint(
                        run_id=r.run_id,
                        arrivals=r.arrivals.kind,
                        rate_per_s=r.arrivals.rate_per_s,
                        concurrency=r.arrivals.concurrency,
                        summary=RunSummary.model_validate(r.summary),
                        telemetry=r.telemetry,
                    )
                    for r in results
                ],
            )
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
    payload = SelfCheckPayload(
        concurrency=result.concurrency,
        requests=result.num_requests,
        succeeded=result.num_ok,
        client_ttft_p50_s=result.client_ttft_p50_s,
        client_ttft_p99_s=result.client_ttft_p99_s,
        client_ttft_p99_including_ramp_s=result.client_ttft_p99_all_s,
        event_loop=loop_name(),
        send_lag_p99_s=result.send_lag_p99_s,
        wall_s=result.wall_s,
    )
    if as_json:
        emit_json(payload)
        return
    out.print(
        f"At {result.concurrency} concurrent streams ({result.num_ok}/{result.num_requests} requests), the client "
        f"adds {result.client_ttft_p50_s * 1e3:.2f} ms (p50) and {result.client_ttft_p99_s * 1e3:.2f} ms (p99, "
        f"steady state) to TTFT; {result.client_ttft_p99_all_s * 1e3:.2f} ms p99 including the ramp-up; p99 "
        f"send lag {result.send_lag_p99_s * 1e3:.2f} ms; event loop {loop_name()}."
    )


__all__ = ["DbOpt", "JsonOpt", "bench_app", "err", "out", "print_summary"]


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
            BenchGpuPayload(
                run_id=run_id,
                device=device,
                measurements=[
                    MeasurementRow(name=m.name, value=m.value, unit=m.unit, params=m.params) for m in results
                ],
            )
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
