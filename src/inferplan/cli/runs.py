"""``inferplan runs``: list, show, export and import benchmark runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from inferplan.bench.compare import compare, run_figures
from inferplan.bench.import_formats import import_result_file
from inferplan.bench.store import ResultsStore, RunInfo
from inferplan.cli.bench import DbOpt, JsonOpt, out, print_summary
from inferplan.cli.common import emit_json, handles_errors
from inferplan.cli.runs_compare import compare_payload, print_comparison
from inferplan.errors import InputError
from inferplan.present.payload_bench import RunRow, RunsPayload, RunSummary, RunSummaryPayload
from inferplan.present.text import ms, table

__all__ = ["runs_app"]

runs_app = typer.Typer(help="The results database: list, show, export, import.", invoke_without_command=True)


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
                ms(ttft) if isinstance(ttft, float) else "-",
                f"sweep {r.sweep_id}" if r.sweep_id is not None else "-",
            ]
        )
    return rows


@runs_app.callback()
@handles_errors
def runs_list(ctx: typer.Context, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """List the runs (with no subcommand)."""
    if ctx.invoked_subcommand is not None:
        return
    store = ResultsStore(db, writable=False)
    try:
        runs = store.runs()
    finally:
        store.close()
    if as_json:
        emit_json(
            RunsPayload(
                runs=[
                    RunRow(
                        id=r.id,
                        kind=r.kind,
                        status=r.status,
                        started_at=r.started_at,
                        model=r.model,
                        url=r.url,
                        num_requests=r.num_requests,
                        sweep_id=r.sweep_id,
                    )
                    for r in runs
                ]
            )
        )
        return
    out.print(
        table(
            f"Runs in {store.path}",
            ["id", "kind", "status", "started", "model", "requests", "TTFT p90 ms", "in"],
            _run_rows(runs),
        )
    )
    for sweep_id in sorted({r.sweep_id for r in runs if r.sweep_id is not None}):
        ids = [r.id for r in runs if r.sweep_id == sweep_id]
        out.print(f"sweep {sweep_id}: runs {', '.join(map(str, ids))} (inferplan runs compare s{sweep_id})")


@runs_app.command("show")
@handles_errors
def runs_show(run_id: int, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """One run: its settings, machine, summary and telemetry."""
    store = ResultsStore(db, writable=False)
    try:
        info = store.run(run_id)
        summary = run_figures(store, info)
        telemetry = store.telemetry(run_id)
    finally:
        store.close()
    if as_json:
        emit_json(
            RunSummaryPayload(
                id=info.id,
                kind=info.kind,
                status=info.status,
                config=info.config,
                machine=info.machine,
                summary=RunSummary.model_validate({k: v for k, v in summary.items() if k in RunSummary.model_fields}),
                stored_summary=info.summary,
                telemetry_samples=len(telemetry),
            )
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
    store = ResultsStore(db, writable=False)
    try:
        if fmt == "json":
            output.write_text(json.dumps(store.export_json(run_id), indent=2, default=str), encoding="utf-8")
        else:
            store.export_csv(run_id, output)
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc.strerror or exc}") from exc
    finally:
        store.close()
    out.print(f"wrote run {run_id} to {output}")


@runs_app.command("import")
@handles_errors
def runs_import(path: Path, db: DbOpt = None) -> None:
    """Import another client's result file as runs: vllm bench serve --save-result (best with
    --save-detailed), GuideLLM's benchmarks.json, AIPerf's profile_export_aiperf.json or
    profile_export.jsonl; the format is detected."""
    store = ResultsStore(db, writable=True)
    try:
        run_ids = import_result_file(store, path)
        kind = store.run(run_ids[0]).kind
    finally:
        store.close()
    ids = ", ".join(str(i) for i in run_ids)
    out.print(f"imported {path} ({kind}) as run{'s' if len(run_ids) > 1 else ''} {ids}", highlight=False)


@runs_app.command("compare")
@handles_errors
def runs_compare(
    refs: Annotated[list[str], typer.Argument(help="Run ids, or sweeps as s3 (their knee): 3 7 s2.")],
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The same figures of several runs side by side, labelled by engine, version, model, GPU and
    load, with each one's difference from the first (imported vllm bench serve, GuideLLM and
    AIPerf runs too)."""
    store = ResultsStore(db, writable=False)
    try:
        found = compare(store, refs)
    finally:
        store.close()
    payload = compare_payload(found)
    if as_json:
        emit_json(payload)
        return
    print_comparison(payload)
