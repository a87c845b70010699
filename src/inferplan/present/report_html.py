"""One self-contained HTML page for a plan: the recommendation and its reasoning, tables and
every chart of :mod:`inferplan.present.report_charts` as inline SVG. Nothing is fetched when it is opened:
no scripts, fonts, images or style sheets from elsewhere."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from inferplan import __version__
from inferplan.errors import InputError
from inferplan.plan.planner import Plan
from inferplan.present.charts import Chart
from inferplan.present.report_charts import RUN_FIGURES, RunComparison, report_charts

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
    """The recommendation, the simulator's check and the four reasoning steps."""
    r, v = d["recommendation"], d["verified_by_simulation"]
    rec = f"<strong>{r['replicas']} x ({escape(r['label'])})</strong> = {r['num_gpus']} GPUs"
    if r["usd_per_hour"] is not None:
        rec += f", {_usd(r['usd_per_hour'], 2)}/hour on {escape(str(r['offer']))}"
    if r["usd_per_mtok"] is not None:
        rec += f", {_usd(r['usd_per_mtok'], 3)} per million output tokens"
    parts = [f'<p class="rec" id="recommendation">Recommendation: {rec}.</p>']
    if v:
        parts.append(
            f"<p>Checked by simulating {v['num_requests']} requests"
            + (
                f" ({v['num_completed']} finished within the simulation budget)"
                if v["num_completed"] < v["num_requests"]
                else ""
            )
            + f": TTFT p90 {_ms(v['ttft_s']['p90'])} ms, "
            f"TPOT p90 {_ms(v['tpot_s']['p90'], 1)} ms, end-to-end p90 {v['e2e_s']['p90']:,.2f} s, "
            f"{v['output_token_throughput_per_s']:,.0f} output tokens/s.</p>"
        )
    for step in d["steps"]:
        parts.append(f"<h3>{escape(step['title'])}</h3><p>{escape(step['text'])}</p>")
    return "\n".join(parts)


def ranked_table(d: dict[str, Any]) -> str:
    rows = [
        [
            r["label"],
            str(r["replicas"]),
            str(r["num_gpus"]),
            _ms(r["ttft_p90_s"]),
            _ms(r["tpot_p90_s"], 1),
            _usd(r["usd_per_hour"], 2) if r["usd_per_hour"] is not None else "no price",
            _usd(r["usd_per_mtok"], 3),
            "yes" if r["meets_targets"] else (r["miss"] or "no"),
        ]
        for r in d["ranked"]
    ]
    headers = ["configuration", "replicas", "GPUs", "TTFT p90 ms", "TPOT p90 ms", "$/hour", "$/Mtok", "meets targets"]
    return _table(headers, rows)


def cost_table(c: dict[str, Any]) -> str:
    options = (
        ("bare metal (owned, sized for peak)", "bare_metal", c["bare_metal_monthly_usd"]),
        ("cloud, elastic (pays the hours used)", "cloud_elastic", c["cloud_elastic_monthly_usd"]),
        ("cloud, always on (sized for peak)", "cloud_always_on", c["cloud_always_on_monthly_usd"]),
    )
    rows = [
        [
            label,
            _usd(monthly),
            _usd(c["usd_per_million_output_tokens"].get(key), 3),
            _usd(c["totals_usd"]["12_months"].get(key)),
            _usd(c["totals_usd"]["36_months"].get(key)),
        ]
        for label, key, monthly in options
    ]
    return _table(["option", "per month", "$/Mtok", "12 months", "36 months"], rows)


def measured_table(comparisons: list[RunComparison]) -> str:
    rows = []
    for comp in comparisons:
        errs = comp.errors()
        for key, label, scale, unit in RUN_FIGURES:
            m, p = comp.measured.get(key), comp.predicted.get(key)
            if m is None or p is None:
                continue
            err = f"{errs[key]:+.1%}" if key in errs else "-"
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
) -> str:
    """The whole report page for a ``plan_dict`` payload and its charts."""
    when = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    body = [_header(payload), "<h2>Recommendation</h2>", recommendation_html(payload)]
    body += ["<h2>Charts</h2>", *[chart_figure(c) for c in charts]]
    if payload.get("cost"):
        body += ["<h2>Cost: bare metal against cloud (USD)</h2>", cost_table(payload["cost"])]
    body += [
        f"<h2>Top {len(payload['ranked'])} of {payload['num_candidates']} configurations</h2>",
        ranked_table(payload),
    ]
    if comparisons:
        body += ["<h2>Measured against predicted</h2>", measured_table(comparisons)]
    env = payload["environment"]
    body += [
        "<h2>Assumptions</h2>",
        _table(["assumption", "value"], [[str(k), str(v)] for k, v in env.items()]),
        f"<footer>Generated by inferplan {escape(__version__)} on {when}. Predictions come from a roofline of "
        "every operator and a simulation of continuous batching; check them on your hardware with "
        "'inferplan bench serve' and 'inferplan calibrate'.</footer>",
    ]
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


def write_report(
    path: Path, plan: Plan, payload: dict[str, Any], comparisons: list[RunComparison] | None = None
) -> Path:
    """Compute the charts and write the report page to ``path``."""
    check_output_path(path)
    page = render_report_html(payload, report_charts(plan, comparisons), comparisons)
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write the report to {path}: {exc.strerror}; choose another --output") from None
    return path
