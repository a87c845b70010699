"""``inferplan bench ...`` and ``inferplan runs ...``: parse, call the library, render."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from inferplan.bench.distributed import ray_senders
from inferplan.bench.loop import loop_name, run
from inferplan.bench.record import RequestRecord
from inferplan.bench.selfcheck import run_self_check
from inferplan.bench.serve import LocalSender, PointResult, ServeSpec, public_url, run_sweep
from inferplan.bench.store import ResultsStore
from inferplan.cli.bench_load import (
    ApiKeyOpt,
    ConnectTimeoutOpt,
    EndpointOpt,
    HeaderOpt,
    IgnoreEosOpt,
    RayOpt,
    SeedOpt,
    ServerGpuOpt,
    TimeoutOpt,
    WarmupOpt,
    WorkersOpt,
    load_workers,
    request_headers,
    request_timeouts,
    server_gpu_id,
    store_self_check,
    warn_after,
    warn_before,
)
from inferplan.cli.bench_selfcheck import print_self_check, self_check_payload
from inferplan.cli.common import csv_list, emit_json, handles_errors, print_error
from inferplan.cli.workload_options import (
    MultiTurnOpt,
    SharedPrefixOpt,
    ThinkTimeOpt,
    TokensPerWordOpt,
    shape_from,
)
from inferplan.errors import BenchmarkError, InputError
from inferplan.perf.datasets import TOKENS_PER_WORD
from inferplan.perf.metrics import Slo
from inferplan.present.payload_bench import (
    BenchServePayload,
    RunSummary,
    ServePoint,
)
from inferplan.present.text import ms, table
from inferplan.units import parse_duration_s

bench_app = typer.Typer(help="Measure real servers and this machine.", no_args_is_help=True)
out = Console(soft_wrap=False, width=120)
err = Console(stderr=True)  # progress and warnings
EXIT_SOME_FAILED = 9  # some requests of a benchmark failed (8: every one did, or the server was unreachable)

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
    cancelled = f", cancelled {s['cancelled']}" if s.get("cancelled") else ""
    out.print(
        f"sent {s['sent']}, succeeded {s['succeeded']}, failed {s['failed']} ({failures}){cancelled}; "
        f"{s['request_throughput_per_s']:,.2f} req/s, {s['output_token_throughput_per_s']:,.1f} output tok/s, "
        f"goodput {s['goodput_requests_per_s']:,.2f} req/s"
        + ("" if s["output_tokens_from_usage"] else "; output tokens counted from chunks (no usage)"),
        highlight=False,
    )
    cache = s.get("prefix_cache")
    if cache and cache.get("hit_rate") is not None:
        out.print(
            f"server prefix cache: {cache['hit_rate'] * 100:.1f}% hit rate ({cache['hit_tokens']:,.0f} of "
            f"{cache['queried_tokens']:,.0f} prompt tokens)",
            highlight=False,
        )
    if s.get("first_failure"):
        err.print(f"first failure: {escape(s['first_failure'][:200])}", highlight=False)
    scrape = s.get("telemetry") or {}
    if scrape.get("failed_scrapes"):
        err.print(f"server metrics: {scrape['failed_scrapes']} scrape(s) failed: {escape(str(scrape['error']))}")
    if s.get("warning"):
        err.print(f"[yellow]warning:[/yellow] {escape(s['warning'])}")


def report_storage(results: list[PointResult], store: ResultsStore) -> None:
    for r in results:
        lost = r.storage.lost if r.storage else 0
        if r.spill_file is not None:
            err.print(
                f"[yellow]warning:[/yellow] run {r.run_id}: the database could not take everything in time; "
                f"the rest is in {escape(str(r.spill_file))}, which the next inferplan command that opens "
                f"{escape(str(store.path))} writes in",
                highlight=False,
            )
        if lost:
            err.print(
                f"[red]error:[/red] run {r.run_id}: {lost} record(s) could be written neither to the database "
                "nor to a spill file beside it",
                highlight=False,
            )


def exit_code(results: list[PointResult]) -> int:
    """0 when every request succeeded, 8 when none did (or the server could not be reached),
    :data:`EXIT_SOME_FAILED` when some failed (or a Ray worker died: what it had not reported
    was never measured)."""
    sent = sum(r.summary["sent"] for r in results)
    ok = sum(r.summary["succeeded"] for r in results)
    if ok == 0:
        return BenchmarkError.exit_code
    lost_worker = any(w["status"] != "finished" for r in results for w in r.summary.get("workers") or [])
    return 0 if ok == sent and not lost_worker else EXIT_SOME_FAILED


def verdict(results: list[PointResult], url: str) -> None:
    code = exit_code(results)
    if code == 0:
        return
    first = next((r.summary["first_failure"] for r in results if r.summary.get("first_failure")), None)
    if code == EXIT_SOME_FAILED:
        failed = sum(r.summary["failed"] for r in results)
        lost = [w for r in results for w in r.summary.get("workers") or [] if w["status"] != "finished"]
        for w in lost:
            err.print(
                f"[yellow]warning:[/yellow] Ray worker {w['worker']} on {escape(w['host'])} {w['status']} after "
                f"reporting {w['reported']} of its {w['assigned']} requests (kept): {escape(str(w['error']))}",
                highlight=False,
            )
        if failed:
            err.print(f"[yellow]warning:[/yellow] {failed} request(s) failed (exit code {code})", highlight=False)
    elif results and results[-1].unreachable:
        print_error(f"the server at {url} could not be reached ({first}); is it running, and is --url right?")
    else:
        print_error(f"every request failed; the first: {first}")
    raise typer.Exit(code)


@bench_app.command("serve")
@handles_errors
def bench_serve(
    url: Annotated[str, typer.Option(help="Server base URL, with or without /v1, e.g. http://127.0.0.1:8000")],
    model: Annotated[str, typer.Option(help="Model name the server serves.")],
    rate: Annotated[str | None, typer.Option(help="Requests/s, or a sweep: 1,2,4.")] = None,
    concurrency: Annotated[str | None, typer.Option(help="Concurrent streams, or a sweep: 1,8,32.")] = None,
    isl: Annotated[int, typer.Option(min=1, max=1_000_000)] = 512,
    osl: Annotated[int, typer.Option(min=1, max=1_000_000)] = 128,
    dataset: Annotated[
        Path | None,
        typer.Option(help="ShareGPT JSON/JSONL, JSON lines with prompt and max_tokens or output, or a CSV of lengths."),
    ] = None,
    tokens_per_word: TokensPerWordOpt = TOKENS_PER_WORD,
    multi_turn: MultiTurnOpt = 1,
    think_time: ThinkTimeOpt = None,
    shared_prefix: SharedPrefixOpt = None,
    lora_adapters: Annotated[
        str | None, typer.Option(help="Adapter names the server serves; each session asks for one: sql,chat.")
    ] = None,
    isolate_cache: Annotated[
        bool, typer.Option(help="A unique cache_salt per request (vLLM): no request reuses another's KV.")
    ] = False,
    num_requests: Annotated[int, typer.Option(min=1, max=1_000_000)] = 200,
    duration: Annotated[str | None, typer.Option(help="Stop sending after this long, e.g. 60s.")] = None,
    warmup: WarmupOpt = 0,
    seed: SeedOpt = 0,
    endpoint: EndpointOpt = "completions",
    timeout: TimeoutOpt = "120s",
    connect_timeout: ConnectTimeoutOpt = "10s",
    first_byte_timeout: Annotated[
        str | None, typer.Option(help="Limit from sending to the response's first byte (default: --timeout).")
    ] = None,
    idle_timeout: Annotated[
        str | None, typer.Option(help="Limit on silence inside a response (default: --timeout).")
    ] = None,
    api_key: ApiKeyOpt = None,
    header: HeaderOpt = None,
    burstiness: Annotated[float, typer.Option(min=0.01, max=100.0, help="Gap CV; 1 = Poisson.")] = 1.0,
    max_concurrency: Annotated[int | None, typer.Option(help="Cap on streams in an open-loop run.")] = None,
    ttft: Annotated[str | None, typer.Option(help="Goodput target, e.g. 500ms.")] = None,
    tpot: Annotated[str | None, typer.Option(help="Goodput target, e.g. 50ms.")] = None,
    ignore_eos: IgnoreEosOpt = True,
    telemetry: Annotated[
        bool, typer.Option(help="Scrape the server's /metrics every second (costs the server a little CPU).")
    ] = True,
    ray: RayOpt = None,
    workers: WorkersOpt = None,
    gpu: ServerGpuOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Benchmark an OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp, transformers serve).
    Exit code 0: every request succeeded; 9: some failed (or a Ray worker died); 8: none did."""
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
        timeouts=request_timeouts(timeout, connect_timeout, first_byte_timeout, idle_timeout),
        burstiness=burstiness,
        max_concurrency=max_concurrency,
        ignore_eos=ignore_eos,
        slo=Slo(
            parse_duration_s(ttft, default_unit="ms") if ttft else None,
            parse_duration_s(tpot, default_unit="ms") if tpot else None,
        ),
        traffic=shape_from(multi_turn, think_time, shared_prefix, 0),
        adapters=tuple(csv_list(lora_adapters)),
        isolate_cache=isolate_cache,
        tokens_per_word=tokens_per_word,
        headers=request_headers(api_key, header),
        server_gpu=server_gpu_id(gpu),
        telemetry=telemetry,
    )
    spec.config(spec.points()[0])  # the URL and endpoint are checked before the database is opened
    n_workers = load_workers(ray, workers)
    store = ResultsStore(db, writable=True, check=True)  # refused here, before any request is sent
    if store.recovered:
        err.print(f"wrote {store.recovered} spilled record(s) from an earlier run into {escape(str(store.path))}")
    capacity = warn_before(spec, store, n_workers)
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
        with progress, ray_senders(ray, n_workers) as senders:
            results = run(run_sweep(spec, store, on_progress, senders or LocalSender))
    except KeyboardInterrupt:
        err.print(
            "interrupted: every request measured so far, and those in flight (as cancelled), is in the "
            "results database (inferplan runs)"
        )
        raise typer.Exit(130) from None
    finally:
        store.close()
    report_storage(results, store)
    warn_after(results, n_workers, capacity)
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
                        status=r.status,
                        summary=RunSummary.model_validate(r.summary),
                        telemetry=r.telemetry,
                        spill_file=str(r.spill_file) if r.spill_file else None,
                    )
                    for r in results
                ],
            )
        )
    else:
        for r in results:
            load = (
                f"{r.arrivals.rate_per_s:g} req/s" if r.arrivals.rate_per_s else f"concurrency {r.arrivals.concurrency}"
            )
            extra = ", server metrics recorded" if r.telemetry else ""
            print_summary(r.summary, f"run {r.run_id} ({r.status}): {load}{extra}")
        out.print(f"Stored in {store.path}.", highlight=False)
    verdict(results, public_url(url))


@bench_app.command("self-check")
@handles_errors
def bench_self_check(
    concurrency: Annotated[str, typer.Option(help="Streams, or several: 1,64,256.")] = "1,64,256",
    num_requests: Annotated[
        int | None, typer.Option(min=1, max=100_000, help="Requests per point (default 8 per stream, at least 50).")
    ] = None,
    tokens: Annotated[int, typer.Option(min=2, max=4096)] = 16,
    token_delay: Annotated[str, typer.Option(help="Server's gap between tokens.")] = "50ms",
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure what the client itself adds to TTFT, ITL, TPOT and E2E, against a local server
    that stamps its own send times, and what one client process sustains (stored: bench serve
    warns against it)."""
    points = []
    delay_s = parse_duration_s(token_delay, default_unit="ms")
    store = ResultsStore(db, writable=True)
    try:
        for c in (int(x) for x in _floats(concurrency, "concurrency")):
            if c > 4096:
                raise InputError("--concurrency values must be at most 4096")
            n = num_requests or max(50, 8 * c)
            points.append(run_self_check(c, n, tokens, delay_s))
        sustained = store_self_check(store, points, delay_s)
    finally:
        store.close()
    payload = self_check_payload(points, delay_s, loop_name(), sustained)
    if as_json:
        emit_json(payload)
        return
    print_self_check(payload)


__all__ = [
    "EXIT_SOME_FAILED",
    "DbOpt",
    "JsonOpt",
    "bench_app",
    "err",
    "exit_code",
    "out",
    "print_summary",
    "report_storage",
    "verdict",
]
