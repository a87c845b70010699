"""Plans and cost comparisons as terminal tables and Markdown, from their payloads."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from inferplan.present.text import NO_PRICE, money, ms, num, table

__all__ = ["RANK_COLUMNS", "cost_rows", "plan_markdown", "print_cost", "print_plan", "ranked_rows"]

RANK_COLUMNS = [
    "configuration",
    "replicas",
    "GPUs",
    "TTFT p90 ms",
    "TPOT p90 ms",
    "$/hour (cloud)",
    "$/Mtok",
    "meets",
]
COST_COLUMNS = ["option", "replicas", "per month", "$/Mtok", "12 months", "36 months"]


def ranked_rows(d: dict[str, Any]) -> list[list[str]]:
    return [
        [
            r["label"],
            str(r["replicas"]),
            str(r["num_gpus"]),
            ms(r["ttft_p90_s"], 0),
            ms(r["tpot_p90_s"], 1),
            num(r["usd_per_hour"], ",.2f", missing=NO_PRICE),
            num(r["usd_per_mtok"], ",.3f", missing=NO_PRICE),
            "yes" if r["meets_targets"] else (r["miss"] or "no"),
        ]
        for r in d["ranked"]
    ]


def cost_rows(c: dict[str, Any]) -> list[list[str]]:
    """One row per option: bare metal owned, cloud elastic, cloud always on."""
    per_mtok, totals = c["usd_per_million_output_tokens"], c["totals_usd"]

    def mtok(key: str) -> str:
        return f"{per_mtok[key]:,.3f}" if key in per_mtok else "-"

    return [
        [
            "bare metal (owned, sized for peak)",
            f"{c['bare_metal_replicas']} ({c['bare_metal_gpus']} GPUs)",
            money(c["bare_metal_monthly_usd"]),
            mtok("bare_metal"),
            money(totals["12_months"].get("bare_metal")),
            money(totals["36_months"].get("bare_metal")),
        ],
        [
            "cloud, elastic (pays the hours used)",
            f"{c['cloud_replicas']} ({c['cloud_gpus']} GPUs)",
            money(c["cloud_elastic_monthly_usd"]),
            mtok("cloud_elastic"),
            money(totals["12_months"].get("cloud_elastic")),
            money(totals["36_months"].get("cloud_elastic")),
        ],
        [
            "cloud, always on (sized for peak)",
            "peak fleet",
            money(c["cloud_always_on_monthly_usd"]),
            mtok("cloud_always_on"),
            money(totals["12_months"].get("cloud_always_on")),
            money(totals["36_months"].get("cloud_always_on")),
        ],
    ]


def cost_caption(c: dict[str, Any]) -> str:
    be = c["break_even_hours_fraction"]
    if c["bare_metal_offer"] is None:
        text = "No bare-metal price for this GPU: add a purchase or lease entry with --prices."
    elif be is None:
        text = "No cloud price for this GPU to compare with."
    elif be > 1:
        text = "Owning never pays at this load: even around the clock the cloud costs less."
    else:
        text = f"Break-even: owning wins when the demand runs more than {be * 100:,.0f}% of the hours."
    return (
        f"{c['configuration']}. {text} Peak-to-mean {c['peak_to_mean']:g}; "
        f"egress {money(c['cloud_egress_monthly_usd'])}/month."
    )


def print_plan(out: Console, d: dict[str, Any]) -> None:
    dm = d["demand"]
    load = f"{dm['rate_per_s']:g} req/s" if dm["rate_per_s"] is not None else f"{dm['concurrency']} concurrent users"
    out.print(
        f"[bold]Plan for {escape(d['model'])}[/bold]: {dm['isl']:,} input / {dm['osl']:,} output tokens at {load}, "
        f"engine {escape(d['engine'])}, {escape(d['environment']['environment'])}."
    )
    first, *rest = d["headline"]
    out.print(f"[green]{escape(first)}[/green]")
    for line in rest:
        out.print(escape(line))
    for step in d["steps"]:
        out.print(f"[bold]{escape(step['title'])}[/bold]: {escape(step['text'])}")
    if d["cost"]:
        print_cost(out, d["cost"])
    out.print(
        table(
            f"Top {len(d['ranked'])} of {d['num_candidates']} configurations (steady-state estimates)",
            RANK_COLUMNS,
            ranked_rows(d),
        )
    )
    out.print(f"Search over the catalog took {d['search_time_s'] * 1e3:,.0f} ms.")


def print_cost(out: Console, c: dict[str, Any]) -> None:
    out.print(table("Cost: bare metal against cloud (USD)", COST_COLUMNS, cost_rows(c), caption=cost_caption(c)))


def plan_markdown(d: dict[str, Any]) -> str:
    lines = [f"# Plan for {d['model']}", ""]
    lines += [" ".join(d["headline"]), ""]
    for step in d["steps"]:
        lines += [f"## {step['title']}", "", step["text"], ""]
    if d["cost"]:
        lines += ["## Cost", "", "| " + " | ".join(COST_COLUMNS) + " |", "|" + "---|" * len(COST_COLUMNS)]
        lines += ["| " + " | ".join(row) + " |" for row in cost_rows(d["cost"])]
        lines += ["", cost_caption(d["cost"]), ""]
    lines += [
        "## Ranked configurations (steady-state estimates)",
        "",
        "| " + " | ".join(RANK_COLUMNS) + " |",
        "|" + "---|" * len(RANK_COLUMNS),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in ranked_rows(d)]
    return "\n".join(lines) + "\n"
