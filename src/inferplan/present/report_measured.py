"""What the report adds from the results database: a sweep's measured curves with the
predicted curve of the same deployment over them (``report --sweep ID --runs-on ...``), and
runs side by side (``report --compare 3,7,s2``): charts and tables."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

from inferplan.bench.compare import LABELS, Comparison
from inferplan.bench.runs import RunComparison
from inferplan.bench.sweep import SweepView
from inferplan.plan.question import Demand
from inferplan.plan.search import steady_state_curve
from inferplan.present.charts import Chart, ChartText, Ref, Series, line_chart
from inferplan.specs.deployment import Deployment

__all__ = ["Measured", "compare_charts", "measured_charts", "measured_html", "sweep_charts"]

_CURVE_POINTS = 40
_PROFILE = ("p50", "p90", "p99")


@dataclass(frozen=True, slots=True)
class Measured:
    """Everything measured the report shows: replays of runs (--runs), one sweep and the
    deployment it ran on (--sweep, --runs-on), and runs compared (--compare)."""

    replays: list[RunComparison] | None = None
    sweep: SweepView | None = None
    sweep_on: Deployment | None = None
    compared: Comparison | None = None


def _predicted(sweep: SweepView, dep: Deployment, top_per_s: float) -> list[tuple[float, float, float]]:
    """(rate, TTFT p90 s, TPOT p90 s) of the steady-state model of ``dep`` up to ``top_per_s``."""
    rates = [top_per_s * (i + 1) / _CURVE_POINTS for i in range(_CURVE_POINTS)]
    demand = Demand(sweep.isl, sweep.osl, rate_per_s=max(top_per_s, 1e-6))
    ops = steady_state_curve(dep, demand, rates)
    return [(op.rate_per_s, op.ttft_p90_s, op.tpot_p90_s) for op in ops if op.stable]


def sweep_charts(sweep: SweepView, dep: Deployment | None) -> list[Chart]:
    """TTFT p90 and TPOT p90 against the rate completed: measured points, the predicted curve
    of ``dep`` over them, the knee and the targets marked; then goodput against that rate."""
    measured = [p for p in sweep.points if p.achieved_per_s > 0]
    top = 1.3 * max((p.achieved_per_s for p in measured), default=1.0)
    predicted = _predicted(sweep, dep, top) if dep is not None else []
    knee = next((p for p in measured if p.run_id == sweep.knee_run_id), None)
    refs = [Ref("x", knee.achieved_per_s, f"knee {knee.achieved_per_s:,.2f} req/s")] if knee else []
    where = f"{dep.label()}, one replica" if dep is not None else "no deployment given (--runs-on)"
    charts = []
    for key, idx, name in (("ttft", 1, "TTFT"), ("tpot", 2, "TPOT")):
        series = [
            Series(
                f"measured, sweep {sweep.id}",
                [(p.achieved_per_s, (p.figures.get(f"{key}_p90_s") or math.nan) * 1e3) for p in measured],
                color="#D55E00",
            )
        ]
        if predicted:
            series.append(Series(f"predicted: {where}", [(r, v[idx - 1] * 1e3) for r, *v in predicted], mode="line"))
        target = sweep.targets.get(f"{key}_s")
        marks = refs + ([Ref("y", target * 1e3, f"target {target * 1e3:,.0f} ms")] if target else [])
        caption = (
            f"Read: {name} p90 of each point of sweep {sweep.id} ({sweep.isl:,} input / {sweep.osl:,} output tokens) "
            "against the requests per second it completed, from one request at a time to every request at once; "
            f"the line is the steady-state model of {where} for the same workload. Where the measured points leave "
            "the line, the model is off; the knee is the least load within 95% of the most goodput."
        )
        text = ChartText(
            f"sweep_{key}",
            f"Sweep {sweep.id}: {name} p90, measured and predicted",
            caption,
            "requests completed per second",
            f"{name} p90 (ms, log scale)",
        )
        charts.append(line_chart(text, series, log_y=True, refs=marks))
    goodput = [Series("goodput", [(p.rate_per_s, p.goodput_per_s) for p in measured])]
    caption = (
        "Read: requests per second that met every target (without targets: that succeeded) against the load "
        "offered (the two ends: the rate they reached); goodput stops rising at the knee."
    )
    text = ChartText(
        "sweep_goodput", f"Sweep {sweep.id}: goodput", caption, "requests offered per second", "goodput (requests/s)"
    )
    charts.append(line_chart(text, goodput, refs=refs))
    return charts


def compare_charts(found: Comparison) -> list[Chart]:
    """TTFT, TPOT and ITL at p50, p90 and p99 of each compared run: one line per run."""
    charts = []
    for metric, name in (("ttft", "TTFT"), ("tpot", "TPOT"), ("itl", "ITL")):
        series = []
        for c in found.columns:
            pts = [(float(q[1:]), (c.figures.get(f"{metric}_{q}_s") or math.nan) * 1e3) for q in _PROFILE]
            series.append(Series(f"{c.ref}: {c.label}"[:90], pts))
        caption = (
            f"Read: {name} at p50, p90 and p99 of each run, one line per run; a line above another is slower at "
            "that percentile, a steeper one has the longer tail. Figures recomputed from each run's requests with "
            "inferplan's definitions (imported runs say where their client's differ)."
        )
        text = ChartText(
            f"compare_{metric}", f"{name} by percentile, run by run", caption, "percentile", f"{name} (ms, log scale)"
        )
        charts.append(line_chart(text, series, log_y=True))
    return charts


def measured_charts(m: Measured) -> list[Chart]:
    return (sweep_charts(m.sweep, m.sweep_on) if m.sweep else []) + (compare_charts(m.compared) if m.compared else [])


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _num(x: float | None, scale: float = 1.0) -> str:
    return f"{x * scale:,.2f}" if x is not None and math.isfinite(x) else "-"


def _delta(value: float | None, rel: float | None, first: bool) -> str:
    return _num(value) + ("" if first or rel is None else f" ({rel:+.1%})")


def measured_html(m: Measured) -> list[str]:
    """The sweep's points and the comparison as tables."""
    out = []
    if m.sweep:
        rows = [
            [
                str(p.run_id) + (" (knee)" if p.run_id == m.sweep.knee_run_id else ""),
                p.kind,
                _num(p.offered_per_s),
                _num(p.achieved_per_s),
                _num(p.goodput_per_s),
                _num(p.figures.get("ttft_p90_s"), 1e3),
                _num(p.figures.get("tpot_p90_s"), 1e3),
            ]
            for p in m.sweep.points
        ]
        heads = ["run", "point", "offered req/s", "completed req/s", "goodput req/s", "TTFT p90 ms", "TPOT p90 ms"]
        out += [f"<h2>Sweep {m.sweep.id}</h2>", _table(heads, rows)]
    if m.compared:
        cols = m.compared.columns
        rows = []
        for key, unit, vals, rel in m.compared.rows():
            cells = [_delta(v, d, i == 0) for i, (v, d) in enumerate(zip(vals, rel, strict=True))]
            rows.append([f"{LABELS.get(key, key)} ({unit})", *cells])
        labels = "".join(f"<li>{escape(c.ref)}: run {c.run.id}, {escape(c.label)}</li>" for c in cols)
        out += ["<h2>Runs compared</h2>", _table(["metric", *(c.ref for c in cols)], rows), f"<ul>{labels}</ul>"]
    return out
