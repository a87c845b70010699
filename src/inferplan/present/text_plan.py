"""Plans and cost comparisons as terminal tables and Markdown, from their payloads."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from inferplan.present.text import NO_PRICE, money, ms, num, table

__all__ = [
    "COST_COLUMNS",
    "RANK_COLUMNS",
    "assumptions_line",
    "bands_caption",
    "cost_caption",
    "cost_notes",
    "cost_rows",
    "plan_markdown",
    "print_cost",
    "print_plan",
    "rank_columns",
    "ranked_rows",
]

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
COST_COLUMNS = ["option", "offer", "fleet", "per month", "$/Mtok", "12 months", "36 months"]
SPLIT_COLUMNS = ["prefill pool", "decode pool", "GPUs", "TTFT p90 ms", "TPOT p90 ms", "KV ms", "$/hour", "meets"]


def split_rows(d: dict[str, Any]) -> list[list[str]]:
    """The prefill/decode splits of a plan searched with --disagg (steady-state estimates)."""
    rows = []
    for r in (d.get("disaggregation") or {}).get("ranked", []):
        p, dec = r["prefill"], r["decode"]
        rows.append(
            [
                f"{p['replicas']} x {p['label']}",
                f"{dec['replicas']} x {dec['label']}",
                str(r["num_gpus"]),
                ms(r["ttft_p90_s"], 0),
                ms(r["tpot_p90_s"], 1),
                ms(r["transfer"]["exposed_s"], 1),
                f"{r['usd_per_hour']:,.2f}" if r["usd_per_hour"] is not None else "no price",
                "yes" if r["meets_targets"] else (r["miss"] or "no"),
            ]
        )
    return rows


def rank_columns(d: dict[str, Any]) -> list[str]:
    """The ranking's columns: the device count says 'sockets' when every row is a CPU socket."""
    rows = d.get("ranked") or []
    if rows and all(r.get("device") == "cpu" for r in rows):
        return ["sockets" if c == "GPUs" else c for c in RANK_COLUMNS]
    return RANK_COLUMNS


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


def _fleet_cell(o: dict[str, Any]) -> str:
    """'peak: 2 on 1x8 GPUs' (replicas on servers x GPUs each) or 'per token'."""
    if o["fleet"] == "tokens":
        return "per token"
    return f"{o['fleet']}: {o['replicas']} on {o['servers']}x{o['gpus_per_server']} GPUs"


def cost_rows(c: dict[str, Any]) -> list[list[str]]:
    """One row per priced option; the cheapest with a latency target is marked."""
    rows = []
    for o in c["options"]:
        mark = " (cheapest)" if o["key"] == c["cheapest"] else ""
        offer = (o["provider"] if o["key"] == "api" else o["offer"]) or "-"
        rows.append(
            [
                o["option"].removeprefix("bare metal, ").removeprefix("cloud, ") + mark,
                offer + (" (estimate)" if o["estimate"] else ""),
                _fleet_cell(o),
                money(o["usd_per_month"]),
                f"{o['usd_per_million_output_tokens']:,.3f}" if o["usd_per_million_output_tokens"] is not None else "-",
                money(o["total_12_months_usd"]),
                money(o["total_36_months_usd"]),
            ]
        )
    return rows


def cost_notes(c: dict[str, Any]) -> list[str]:
    """Each option's caveats (estimate formula, spare GPUs, spot, commitment, API prices)."""
    return [f"{o['option']}: {o['note']}" for o in c["options"] if o["note"]]


def assumptions_line(c: dict[str, Any]) -> str:
    """Every cost assumption as NAME=VALUE, as --cost-set takes them."""
    values = ", ".join(f"{k}={v:g}" for k, v in c["assumptions"].items())
    return f"Cost assumptions (edit with --cost-set NAME=VALUE or a price file's assumptions:): {values}."


def cost_caption(c: dict[str, Any]) -> str:
    """The priced story in one paragraph (the Markdown and HTML caption)."""
    return " ".join(c["story"])


def bands_caption(d: dict[str, Any]) -> str:
    """The measured error of the table's figures, one phrase per kind."""
    bands = d.get("error_bands") or {}
    parts = [
        f"{name} {bands[kind]['text']}"
        for name, kind in (("TTFT", "ttft"), ("TPOT", "tpot"), ("E2E", "e2e"), ("throughput", "throughput"))
        if kind in bands
    ]
    return ("Error of these estimates: " + "; ".join(parts) + ".") if parts else ""


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
            rank_columns(d),
            ranked_rows(d),
        )
    )
    if bands_caption(d):
        out.print(escape(bands_caption(d)))
    split = d.get("disaggregation")
    if split and split["ranked"]:
        title = f"Top {len(split['ranked'])} of {split['num_splits']} prefill/decode splits (steady-state estimates)"
        out.print(table(title, SPLIT_COLUMNS, split_rows(d)))
    out.print(f"Search over the catalog took {d['search_time_s'] * 1e3:,.0f} ms.")


def print_cost(out: Console, c: dict[str, Any]) -> None:
    out.print(table("Cost: every way to pay for this load (USD)", COST_COLUMNS, cost_rows(c)))
    for line in c["story"]:
        out.print(escape(line), highlight=False)
    for line in cost_notes(c):
        out.print(f"  {escape(line)}", highlight=False)
    out.print(escape(assumptions_line(c)), highlight=False)


def plan_markdown(d: dict[str, Any]) -> str:
    lines = [f"# Plan for {d['model']}", ""]
    lines += [" ".join(d["headline"]), ""]
    for step in d["steps"]:
        lines += [f"## {step['title']}", "", step["text"], ""]
    if d["cost"]:
        lines += ["## Cost", "", "| " + " | ".join(COST_COLUMNS) + " |", "|" + "---|" * len(COST_COLUMNS)]
        lines += ["| " + " | ".join(row) + " |" for row in cost_rows(d["cost"])]
        lines += ["", *[f"- {line}" for line in d["cost"]["story"]], ""]
        lines += [*[f"- {line}" for line in cost_notes(d["cost"])], "", assumptions_line(d["cost"]), ""]
    lines += [
        "## Ranked configurations (steady-state estimates)",
        "",
        "| " + " | ".join(rank_columns(d)) + " |",
        "|" + "---|" * len(RANK_COLUMNS),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in ranked_rows(d)]
    if bands_caption(d):
        lines += ["", bands_caption(d)]
    if split_rows(d):
        lines += ["", "## Prefill/decode splits (steady-state estimates)", "", "| " + " | ".join(SPLIT_COLUMNS) + " |"]
        lines += ["|" + "---|" * len(SPLIT_COLUMNS)] + ["| " + " | ".join(row) + " |" for row in split_rows(d)]
    return "\n".join(lines) + "\n"
