"""``inferplan bench sweep``: from one request at a time to saturation, stored as one sweep,
with its knee (:mod:`inferplan.bench.sweep`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from inferplan.bench.distributed import ray_senders
from inferplan.bench.headroom import stored_capacity
from inferplan.bench.loop import run
from inferplan.bench.serve import LocalSender, ServeSpec, public_url
from inferplan.bench.store import ResultsStore
from inferplan.bench.sweep import SweepSpec, run_saturation_sweep, sweep_points, sweep_summary
from inferplan.cli.bench import DbOpt, JsonOpt, err, out, report_storage, verdict
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
    warn_after,
)
from inferplan.cli.common import emit_json, handles_errors
from inferplan.perf.metrics import Slo
from inferplan.present.payload_sweep import BenchSweepPayload, SweepPointRow
from inferplan.present.text import ms, table
from inferplan.units import parse_duration_s

__all__ = ["bench_sweep", "print_sweep", "sweep_payload"]


def sweep_payload(store: ResultsStore, sweep_id: int) -> BenchSweepPayload:
    """The sweep as stored: its points from its runs, its knee."""
    info = store.sweep(sweep_id)
    targets = info.config.get("targets") or {}
    found = sweep_summary(sweep_points(store, sweep_id), targets)
    points = [
        SweepPointRow.model_validate({k: v for k, v in p.items() if k != "figures"} | p["figures"])
        for p in found["points"]
    ]
    return BenchSweepPayload(
        db=str(store.path),
        sweep_id=sweep_id,
        status=info.status,
        mode=str(info.config.get("mode", "rates")),
        targets={k: targets.get(k) for k in ("ttft_s", "tpot_s", "e2e_s")},
        points=points,
        **{k: found[k] for k in ("knee_run_id", "knee_per_s", "knee_goodput_per_s", "max_rate_meeting_targets_per_s")},
    )


def _load(p: SweepPointRow) -> str:
    if p.kind == "synchronous":
        return "1 at a time"
    if p.kind == "throughput":
        return "all at once"
    return f"{p.offered_per_s:,.2f} req/s"


def print_sweep(payload: BenchSweepPayload) -> None:
    rows: list[list[str]] = [
        [
            str(p.run_id) + (" (knee)" if p.run_id == payload.knee_run_id else ""),
            _load(p),
            f"{p.achieved_per_s:,.2f}",
            f"{p.goodput_per_s:,.2f}",
            ms(p.ttft_p50_s),
            ms(p.ttft_p90_s),
            ms(p.tpot_p50_s),
            ms(p.tpot_p90_s),
            f"{p.output_tokens_per_s or 0:,.0f}",
            {True: "yes", False: "no", None: "-"}[p.meets],
        ]
        for p in payload.points
    ]
    heads = ["run", "load", "req/s", "goodput", "TTFT p50", "TTFT p90", "TPOT p50", "TPOT p90", "tok/s", "meets"]
    out.print(table(f"Sweep {payload.sweep_id} ({payload.status}, {payload.mode}); latencies in ms", heads, rows))
    if payload.knee_per_s is not None:
        out.print(
            f"Knee: run {payload.knee_run_id} at {payload.knee_per_s:,.2f} req/s, goodput "
            f"{payload.knee_goodput_per_s:,.2f} req/s (the least load within 95% of the most goodput).",
            highlight=False,
        )
    if any(v is not None for v in payload.targets.values()):
        best = payload.max_rate_meeting_targets_per_s
        out.print(
            "Highest rate meeting the TTFT/TPOT p90 targets: "
            + (f"{best:,.2f} req/s." if best is not None else "none of the points met them."),
            highlight=False,
        )


@handles_errors
def bench_sweep(
    url: Annotated[str, typer.Option(help="Server base URL, with or without /v1, e.g. http://127.0.0.1:8000")],
    model: Annotated[str, typer.Option(help="Model name the server serves.")],
    isl: Annotated[int, typer.Option(min=1, max=1_000_000)] = 512,
    osl: Annotated[int, typer.Option(min=1, max=1_000_000)] = 128,
    dataset: Annotated[Path | None, typer.Option(help="JSON lines with 'prompt' (and 'max_tokens').")] = None,
    num_requests: Annotated[int, typer.Option(min=1, max=1_000_000, help="Requests per point.")] = 100,
    points: Annotated[int, typer.Option(min=0, max=50, help="Rates between the two ends.")] = 6,
    find_max_rate: Annotated[
        bool, typer.Option("--find-max-rate", help="Bisect for the highest rate meeting --ttft/--tpot p90.")
    ] = False,
    steps: Annotated[int, typer.Option(min=1, max=50, help="Most bisection runs.")] = 6,
    ttft: Annotated[str | None, typer.Option(help="Target, e.g. 500ms: goodput per request, p90 for meets.")] = None,
    tpot: Annotated[str | None, typer.Option(help="Target, e.g. 50ms.")] = None,
    warmup: WarmupOpt = 0,
    seed: SeedOpt = 0,
    endpoint: EndpointOpt = "completions",
    timeout: TimeoutOpt = "120s",
    connect_timeout: ConnectTimeoutOpt = "10s",
    api_key: ApiKeyOpt = None,
    header: HeaderOpt = None,
    ignore_eos: IgnoreEosOpt = True,
    ray: RayOpt = None,
    workers: WorkersOpt = None,
    gpu: ServerGpuOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """From one request at a time to saturation: the synchronous baseline, the maximum throughput,
    then rates in between (or a bisection for the highest rate meeting the targets); stored as
    one sweep with its knee. Exit codes as bench serve."""
    serve = ServeSpec(
        url=url,
        model=model,
        concurrencies=(1,),
        isl=isl,
        osl=osl,
        dataset=dataset,
        num_requests=num_requests,
        warmup=warmup,
        seed=seed,
        endpoint=endpoint,
        timeouts=request_timeouts(timeout, connect_timeout, None, None),
        ignore_eos=ignore_eos,
        slo=Slo(
            parse_duration_s(ttft, default_unit="ms") if ttft else None,
            parse_duration_s(tpot, default_unit="ms") if tpot else None,
        ),
        headers=request_headers(api_key, header),
        server_gpu=server_gpu_id(gpu),
    )
    spec = SweepSpec(serve, points, find_max_rate, steps)
    serve.config(serve.points()[0])  # the URL and endpoint are checked before the database is opened
    n_workers = load_workers(ray, workers)
    store = ResultsStore(db, writable=True, check=True)
    capacity = stored_capacity(store)
    try:
        with ray_senders(ray, n_workers) as senders:
            sweep_id, results = run(run_saturation_sweep(spec, store, None, senders or LocalSender))
        payload = sweep_payload(store, sweep_id)
    except KeyboardInterrupt:
        err.print("interrupted: the sweep and every request measured so far are in the results database")
        raise typer.Exit(130) from None
    finally:
        store.close()
    report_storage(results, store)
    warn_after(results, n_workers, capacity)
    if as_json:
        emit_json(payload)
    else:
        print_sweep(payload)
        out.print(f"Stored in {escape(str(store.path))} as sweep {sweep_id}.", highlight=False)
    verdict(results, public_url(url))
