"""Dicts, rich tables and Markdown for plans and cost comparisons
(schemas ``inferplan.plan/1`` and ``inferplan.cost/1``)."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from rich.console import Console

from inferplan.plan.cost import CostComparison
from inferplan.plan.planner import Plan
from inferplan.plan.search import Evaluated
from inferplan.present.payload_fit import table

__all__ = ["cost_dict", "plan_dict", "plan_markdown", "print_cost", "print_plan"]


def _fin(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _candidate(e: Evaluated, demand_tokens: float) -> dict[str, Any]:
    c, op = e.candidate, e.per_replica
    return {
        "label": c.label(),
        "gpu": c.gpu.id,
        "tp": c.tp,
        "pp": c.pp,
        "replicas": e.replicas,
        "num_gpus": e.num_gpus,
        "precision": c.precision.name,
        "kv_dtype": c.kv_dtype.name,
        "meets_targets": e.meets,
        "miss": e.miss or None,
        "max_rate_per_replica": e.max_rate_per_replica,
        "ttft_p90_s": _fin(op.ttft_p90_s) if op else None,
        "tpot_p90_s": _fin(op.tpot_p90_s) if op else None,
        "e2e_p90_s": _fin(op.e2e_p90_s) if op else None,
        "usd_per_hour": e.usd_per_hour,
        "usd_per_mtok": e.usd_per_mtok(demand_tokens),
        "offer": e.offer.id if e.offer else None,
    }


def cost_dict(c: CostComparison | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {
        "gpus_per_replica": c.gpus_per_replica,
        "bare_metal_replicas": c.bare_replicas,
        "cloud_replicas": c.cloud_replicas,
        "hours_fraction": c.hours_fraction,
        "peak_to_mean": c.peak_to_mean,
        "demand_output_tokens_per_s": c.demand_tokens_per_s,
        "cloud_offer": c.cloud_offer.id if c.cloud_offer else None,
        "cloud_hourly_usd": c.cloud_hourly_usd,
        "cloud_elastic_monthly_usd": c.cloud_elastic_monthly_usd,
        "cloud_always_on_monthly_usd": c.cloud_always_on_monthly_usd,
        "cloud_egress_monthly_usd": c.cloud_egress_monthly_usd,
        "bare_metal_offer": c.bare_offer.id if c.bare_offer else None,
        "bare_metal_monthly_usd": c.bare_monthly_usd,
        "bare_metal_parts_usd": c.bare_parts,
        "break_even_hours_fraction": c.break_even_hours_fraction,
        "usd_per_million_output_tokens": c.usd_per_mtok,
        "totals_usd": c.totals_usd,
        "assumptions": asdict(c.assumptions),
    }


def plan_dict(p: Plan, top: int) -> dict[str, Any]:
    d = p.demand
    demand_tokens = (d.rate_per_s or 0.0) * d.osl
    v = p.verified
    return {
        "schema": "inferplan.plan/1",
        "model": p.model.name,
        "engine": p.engine.name,
        "environment": p.environment.assumptions(),
        "demand": {
            "isl": d.isl,
            "osl": d.osl,
            "rate_per_s": d.rate_per_s,
            "concurrency": d.concurrency,
        },
        "targets": {k: v for k, v in asdict(p.targets).items()},
        "recommendation": _candidate(p.chosen, demand_tokens),
        "verified_by_simulation": v.as_dict() if v else None,
        "steps": [{"title": s.title, "text": s.text, "numbers": s.numbers} for s in p.steps],
        "cost": cost_dict(p.cost),
        "ranked": [_candidate(e, demand_tokens) for e in p.ranked[:top]],
        "pareto_front": [
            {"output_tokens_per_s_per_gpu": x, "tokens_per_s_per_user": y, "label": label} for x, y, label in p.pareto
        ],
        "search_time_s": p.search_time_s,
        "num_candidates": len(p.ranked),
    }


def _money(x: float | None) -> str:
    return f"${x:,.0f}" if x is not None else "-"


def _ranked_rows(d: dict[str, Any]) -> list[list[str]]:
    return [
        [
            r["label"],
            str(r["replicas"]),
            str(r["num_gpus"]),
            f"{r['ttft_p90_s'] * 1e3:,.0f}" if r["ttft_p90_s"] is not None else "-",
            f"{r['tpot_p90_s'] * 1e3:,.1f}" if r["tpot_p90_s"] is not None else "-",
            f"{r['usd_per_hour']:,.2f}" if r["usd_per_hour"] is not None else "no price",
            f"{r['usd_per_mtok']:,.3f}" if r["usd_per_mtok"] is not None else "-",
            "yes" if r["meets_targets"] else (r["miss"] or "no"),
        ]
        for r in d["ranked"]
    ]


_RANK_COLUMNS = [
    "configuration",
    "replicas",
    "GPUs",
    "TTFT p90 ms",
    "TPOT p90 ms",
    "$/hour",
    "$/Mtok",
    "meets",
]


def print_plan(out: Console, d: dict[str, Any]) -> None:
    r, dm = d["recommendation"], d["demand"]
    load = f"{dm['rate_per_s']} req/s" if dm["rate_per_s"] is not None else f"{dm['concurrency']} concurrent users"
    out.print(
        f"[bold]Plan for {d['model']}[/bold]: {dm['isl']:,} input / {dm['osl']:,} output tokens at {load}, "
        f"engine {d['engine']}, {d['environment']['environment']}."
    )
    out.print(
        f"[green]Recommendation:[/green] {r['replicas']} x ({r['label']}) = {r['num_gpus']} GPUs"
        + (f", ${r['usd_per_hour']:,.2f}/hour on {r['offer']}" if r["usd_per_hour"] is not None else "")
        + (f", ${r['usd_per_mtok']:,.3f} per million output tokens." if r["usd_per_mtok"] is not None else ".")
    )
    v = d["verified_by_simulation"]
    if v:
        done = v["num_completed"]
        partial = f", {done} finished within the simulation budget" if done < v["num_requests"] else ""
        out.print(
            f"Simulated ({v['num_requests']} requests{partial}): TTFT p90 {v['ttft_s']['p90'] * 1e3:,.0f} ms, "
            f"TPOT p90 {v['tpot_s']['p90'] * 1e3:,.1f} ms, E2E p90 {v['e2e_s']['p90']:,.2f} s, "
            f"{v['output_token_throughput_per_s']:,.0f} output tok/s."
        )
    for step in d["steps"]:
        out.print(f"[bold]{step['title']}[/bold]: {step['text']}")
    c = d["cost"]
    if c:
        print_cost(out, c)
    out.print(
        table(
            f"Top {len(d['ranked'])} of {d['num_candidates']} configurations",
            _RANK_COLUMNS,
            _ranked_rows(d),
        )
    )
    out.print(f"Search over the catalog took {d['search_time_s'] * 1e3:,.0f} ms.")


def print_cost(out: Console, c: dict[str, Any]) -> None:
    rows = [
        [
            "bare metal (owned, sized for peak)",
            _money(c["bare_metal_monthly_usd"]),
            f"{c['usd_per_million_output_tokens'].get('bare_metal', math.nan):,.3f}",
            _money(c["totals_usd"]["12_months"].get("bare_metal")),
            _money(c["totals_usd"]["36_months"].get("bare_metal")),
        ],
        [
            "cloud, elastic (pays the hours used)",
            _money(c["cloud_elastic_monthly_usd"]),
            f"{c['usd_per_million_output_tokens'].get('cloud_elastic', math.nan):,.3f}",
            _money(c["totals_usd"]["12_months"].get("cloud_elastic")),
            _money(c["totals_usd"]["36_months"].get("cloud_elastic")),
        ],
        [
            "cloud, always on (sized for peak)",
            _money(c["cloud_always_on_monthly_usd"]),
            f"{c['usd_per_million_output_tokens'].get('cloud_always_on', math.nan):,.3f}",
            _money(c["totals_usd"]["12_months"].get("cloud_always_on")),
            _money(c["totals_usd"]["36_months"].get("cloud_always_on")),
        ],
    ]
    be = c["break_even_hours_fraction"]
    caption = (
        f"Break-even: owning wins when the demand runs more than {be * 100:,.0f}% of the hours."
        if be is not None
        else "No bare-metal price for this GPU: add a purchase or lease entry with --prices."
    )
    caption += f" Peak-to-mean {c['peak_to_mean']:g}; egress ${c['cloud_egress_monthly_usd']:,.0f}/month."
    out.print(
        table(
            "Cost: bare metal against cloud (USD)",
            ["option", "per month", "$/Mtok", "12 months", "36 months"],
            rows,
            caption=caption,
        )
    )


def plan_markdown(d: dict[str, Any]) -> str:
    r = d["recommendation"]
    lines = [
        f"# Plan for {d['model']}",
        "",
        f"**Recommendation:** {r['replicas']} x ({r['label']}) = {r['num_gpus']} GPUs"
        + (f", ${r['usd_per_hour']:,.2f}/hour" if r["usd_per_hour"] is not None else ""),
        "",
    ]
    for step in d["steps"]:
        lines += [f"## {step['title']}", "", step["text"], ""]
    lines += [
        "## Ranked configurations",
        "",
        "| " + " | ".join(_RANK_COLUMNS) + " |",
        "|" + "---|" * len(_RANK_COLUMNS),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in _ranked_rows(d)]
    return "\n".join(lines) + "\n"
