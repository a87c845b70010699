"""One self-contained HTML page for a plan: the recommendation and its reasoning, tables and
every chart of :mod:`inferplan.present.report_charts` as inline SVG. Nothing is fetched when it is opened:
no scripts, fonts, images or style sheets from elsewhere."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from inferplan import __version__
from inferplan.bench.runs import RUN_FIGURES, RunComparison
from inferplan.errors import InputError
from inferplan.plan.planner import Plan
from inferplan.present.charts import Chart
from inferplan.present.report_charts import report_charts
from inferplan.present.report_measured import Measured, measured_charts, measured_html
from inferplan.present.text_plan import (
    COST_COLUMNS,
    bands_caption,
    cost_notes,
    cost_rows,
    rank_columns,
    ranked_rows,
)
from inferplan.specs.cost_assumptions import ASSUMPTIONS

__all__ = ["STYLE_CSS", "chart_figure", "check_output_path", "render_report_html", "write_report"]

STYLE_CSS = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 980px; padding: 1rem 1.5rem; color: #222; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; }
.sub { color: #555; margin-top: 0; }
.rec { background: #eef6ee; border-left: 5px solid #009E73; padding: .8rem 1rem; font-size: 1.05rem; }
figure { margin: 1.5rem 0; } figure svg { width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: .92rem; margin-top: .3rem; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .9rem; }
th, td { border: 1px solid #ddd; padding: .25rem .5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f5f5f5; } .miss { color: #a33; } footer { color: #777; font-size: .8rem; margin: 2rem 0; }
"""


def _ms(x: float | None, digits: int = 0) -> str:
    return f"{x * 1e3:,.{digits}f}" if x is not None and math.isfinite(x) else "-"


def _usd(x: float | None, digits: int = 0) -> str:
    return f"${x:,.{digits}f}" if x is not None and math.isfinite(x) else "-"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def chart_figure(chart: Chart) -> str:
    """A chart as a <figure> with its caption (shared with the web UI)."""
    return (
        f'<figure id="chart-{escape(chart.id)}" data-chart="{escape(chart.id)}">'
        f"<h3>{escape(chart.title)}</h3>{chart.svg}<figcaption>{escape(chart.caption)}</figcaption></figure>"
    )


def recommendation_html(d: dict[str, Any]) -> str:
    """The headline (recommendation, price, the cloud's fleet, the simulator's check) and the
    four reasoning steps: the same sentences the CLI prints."""
    first, *rest = d["headline"]
    parts = [f'<p class="rec" id="recommendation">{escape(first)}</p>']
    parts += [f"<p>{escape(line)}</p>" for line in rest]
    for step in d["steps"]:
        parts.append(f"<h3>{escape(step['title'])}</h3><p>{escape(step['text'])}</p>")
    return "\n".join(parts)


def ranked_table(d: dict[str, Any]) -> str:
    caption = bands_caption(d)
    return _table(rank_columns(d), ranked_rows(d)) + (f'<p class="bands">{escape(caption)}</p>' if caption else "")


def cost_table(c: dict[str, Any]) -> str:
    """The cost table, the priced story and each option's caveats (shared with the web UI)."""
    story = "".join(f"<p>{escape(line)}</p>" for line in c["story"])
    notes = "".join(f"<li>{escape(line)}</li>" for line in cost_notes(c))
    return _table(COST_COLUMNS, cost_rows(c)) + story + (f'<ul class="notes">{notes}</ul>' if notes else "")


def cost_assumptions_table(c: dict[str, Any]) -> str:
    """Every cost assumption with its value, unit and meaning (edit: --cost-set, a price file, the web form)."""
    rows = [
        [name, f"{value:g}", ASSUMPTIONS[name].unit, ASSUMPTIONS[name].meaning]
        for name, value in c["assumptions"].items()
        if name in ASSUMPTIONS
    ]
    return _table(["cost assumption", "value", "unit", "meaning"], rows)


def measured_table(comparisons: list[RunComparison]) -> str:
    rows = []
    for comp in comparisons:
        errs = comp.errors()
        for key, label, scale, unit in RUN_FIGURES:
            m, p = comp.measured.get(key), comp.predicted.get(key)
            if m is None or p is None or not (math.isfinite(m) and math.isfinite(p)):
                continue
            e = errs.get(key)
            err = f"{e:+.1%}" if e is not None and math.isfinite(e) else "-"
            rows.append([comp.label, label, f"{m * scale:,.2f} {unit}", f"{p * scale:,.2f} {unit}", err])
    return _table(["run", "figure", "measured", "predicted", "error"], rows)


def _header(d: dict[str, Any]) -> str:
    dm, t = d["demand"], d["targets"]
    load = f"{dm['rate_per_s']:g} requests/s" if dm["rate_per_s"] is not None else f"{dm['concurrency']} users"
    goals = [
        f"{name} p90 &le; {_ms(t[key])} ms"
        for key, name in (("ttft_p90_s", "TTFT"), ("tpot_p90_s", "TPOT"), ("e2e_p90_s", "E2E"))
        if t.get(key)
    ]
    return (
        f"<h1>Deployment plan: {escape(d['model'])}</h1>"
        f'<p class="sub">{dm["isl"]:,} input / {dm["osl"]:,} output tokens at {load}; '
        f"targets: {', '.join(goals) or 'none'}; engine {escape(d['engine'])}; "
        f"{escape(str(d['environment'].get('environment', '')))}.</p>"
    )


def render_report_html(
    payload: dict[str, Any],
    charts: list[Chart],
    comparisons: list[RunComparison] | None = None,
    generated_at: datetime | None = None,
    measured_sections: list[str] | None = None,
) -> str:
    """The whole report page for a ``plan_dict`` payload and its charts (``measured_sections``:
    HTML of a sweep and of runs compared, :mod:`inferplan.present.report_measured`)."""
    when = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    body = [_header(payload), "<h2>Recommendation</h2>", recommendation_html(payload)]
    body += ["<h2>Charts</h2>", *[chart_figure(c) for c in charts]]
    if payload.get("cost"):
        body += ["<h2>Cost: every way to pay for this load (USD)</h2>", cost_table(payload["cost"])]
    body += [
        f"<h2>Top {len(payload['ranked'])} of {payload['num_candidates']} configurations</h2>",
        ranked_table(payload),
    ]
    if comparisons:
        body += ["<h2>Measured against predicted</h2>", measured_table(comparisons)]
    body += measured_sections or []
    env = payload["environment"]
    body += [
        "<h2>Assumptions</h2>",
        _table(["assumption", "value"], [[str(k), str(v)] for k, v in env.items()]),
        *(
            [
                "<p>Cost assumptions: edit any with --cost-set NAME=VALUE, a price file's assumptions: or the "
                "web form.</p>",
                cost_assumptions_table(payload["cost"]),
            ]
            if payload.get("cost")
            else []
        ),
        f"<footer>Generated by inferplan {escape(__version__)} on {when}. Predictions come from a roofline of "
        "every operator and a simulation of continuous batching; check them on your hardware with "
        "'inferplan bench serve' and 'inferplan calibrate'.</footer>",
    ]
    body.append(
        '<script type="application/json" id="inferplan-plan">'
        + json.dumps(payload, allow_nan=False).replace("</", "<\\/")
        + "</script>"
    )
    title = escape(f"inferplan report: {payload['model']}")
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>'
        f"<style>{STYLE_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def check_output_path(path: Path) -> None:
    """Fail before any work if the report could not be written there."""
    if path.is_dir():
        raise InputError(f"--output {path} is a folder; give a file name such as {path / 'report.html'}")
    if not path.parent.is_dir():
        raise InputError(f"cannot write the report to {path}: folder {path.parent} does not exist")


def write_report(path: Path, plan: Plan, payload: dict[str, Any], measured: Measured | None = None) -> Path:
    """Compute the charts and write the report page to ``path``."""
    check_output_path(path)
    m = measured or Measured()
    charts = report_charts(plan, m.replays) + measured_charts(m)
    page = render_report_html(payload, charts, m.replays, None, measured_html(m))
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write the report to {path}: {exc.strerror}; choose another --output") from None
    return path
