"""``inferplan runs compare``'s payload and table (:mod:`inferplan.bench.compare`)."""

from __future__ import annotations

from inferplan.bench.compare import LABELS, Comparison
from inferplan.cli.common import out
from inferplan.present.payload_sweep import CompareColumn, CompareRow, RunsComparePayload
from inferplan.present.text import num, table

__all__ = ["compare_payload", "print_comparison"]


def compare_payload(found: Comparison) -> RunsComparePayload:
    return RunsComparePayload(
        columns=[
            CompareColumn(ref=c.ref, run_id=c.run.id, kind=c.run.kind, label=c.label, notes=c.notes, **c.who())
            for c in found.columns
        ],
        rows=[
            CompareRow(metric=metric, unit=unit, values=values, relative_to_first=rel)
            for metric, unit, values, rel in found.rows()
        ],
    )


def _cell(value: float | None, rel: float | None, first: bool) -> str:
    text = num(value, ",.2f")
    return text if first or rel is None else f"{text} ({rel:+.1%})"


def print_comparison(payload: RunsComparePayload) -> None:
    heads = ["metric"] + [f"{c.ref}" for c in payload.columns]
    rows = [
        [f"{LABELS.get(r.metric, r.metric)} ({r.unit})"]
        + [_cell(v, d, i == 0) for i, (v, d) in enumerate(zip(r.values, r.relative_to_first, strict=True))]
        for r in payload.rows
    ]
    out.print(table("Runs compared (each against the first)", heads, rows))
    for c in payload.columns:
        out.print(f"{c.ref}: run {c.run_id} ({c.kind}) {c.label}", highlight=False)
        for note in c.notes:
            out.print(f"   {note}", highlight=False)
