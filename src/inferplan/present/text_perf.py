"""Predictions and validation results as terminal tables, from their payloads."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from inferplan.present.text import ms, num, table

__all__ = ["print_prediction", "print_validation"]


def print_prediction(out: Console, d: dict[str, Any]) -> None:
    m, par = d["metrics"], d["parallelism"]
    out.print(
        f"[bold]{d['model']}[/bold] on {par['num_gpus']} x {d['gpu']} (TP {par['tp']}, PP {par['pp']}, "
        f"DP {par['dp']}), {d['precision']} weights, {d['kv_dtype']} KV, engine {d['engine']}"
    )
    rows = [
        [name, ms(m[key]["mean"]), ms(m[key]["p50"]), ms(m[key]["p90"]), ms(m[key]["p99"])]
        for name, key in (
            ("TTFT", "ttft_s"),
            ("TPOT", "tpot_s"),
            ("ITL", "itl_s"),
            ("E2E", "e2e_s"),
        )
    ]
    out.print(table("Latency (ms)", ["metric", "mean", "p50", "p90", "p99"], rows))
    bands = d.get("error_bands", {})
    for name, kind in (("TTFT", "ttft"), ("TPOT and ITL", "tpot"), ("E2E", "e2e"), ("Throughput", "throughput")):
        if kind in bands:
            out.print(f"{name}: {bands[kind]['text']}.")
    for note in d.get("notes", []):
        out.print(f"note: {note}")
    out.print(
        f"Throughput: {num(m['request_throughput_per_s'])} req/s, {num(m['output_token_throughput_per_s'], ',.0f')} "
        f"output tok/s, {num(m['total_token_throughput_per_s'], ',.0f')} total tok/s; goodput "
        f"{num(m['goodput_requests_per_s'])} req/s; mean batch {num(m['mean_batch_size'], ',.1f')}, KV use "
        f"{num(m['mean_kv_usage'], ',.0f', 100)}%, preemptions {m['num_preemptions']}; "
        f"{m['num_completed']}/{m['num_requests']} requests completed."
    )
    for label, key in (("Prefill step", "prefill_step"), ("Decode step", "decode_step")):
        step = d[key]
        what = (
            f"{step['tokens']:,} tokens"
            if key == "prefill_step"
            else f"batch {step['batch']} at {step['context_tokens']:,} tokens of context"
        )
        rows = [[o["operator"], ms(o["time_s"]), f"{o['share'] * 100:.0f}%", o["bound"]] for o in step["operators"]]
        out.print(
            table(
                f"{label}: {what}, {ms(step['time_s'])} ms",
                ["operator", "ms", "share", "bound"],
                rows,
            )
        )
    a = d["assumptions"]
    if a["environment"] != "bare-metal":
        out.print(
            f"Assumptions ({a['environment']}): hypervisor CPU +{a['cpu_overhead'] * 100:.0f}%, "
            f"GPU virtualisation +{a['gpu_overhead'] * 100:.0f}%, scheduler jitter "
            f"-{a['jitter_loss'] * 100:.0f}% batching efficiency. Source: {a['source']}. "
            "Edit with --env-set NAME=VALUE."
        )


def _pct(value: float | None) -> str:
    return f"{value:.1f}%" if value is not None else "-"


def _group_table(out: Console, title: str, head: str, groups: list[dict[str, Any]]) -> None:
    rows = [
        [" / ".join(g["group"]), str(g["count"]), str(g["skipped"]), _pct(g["median_ape_pct"]), _pct(g["p90_ape_pct"])]
        for g in groups
    ]
    out.print(table(title, [head, "rows", "skipped", "median APE", "p90 APE"], rows))


def print_validation(out: Console, d: dict[str, Any], show_rows: bool) -> None:
    if show_rows:
        rows = [
            [
                r["id"],
                r["model"],
                r["gpu_id"] or r["gpu"],
                r["engine"] or "-",
                r["metric"],
                f"{r['measured']:,.1f}",
                f"{r['predicted']:,.1f}" if r["predicted"] is not None else "-",
                _pct(r["ape_pct"]) if r["ape_pct"] is not None else "skipped",
                "yes" if r["assumed"] else "",
            ]
            for r in d["rows"]
        ]
        out.print(
            table(
                "Predicted vs measured",
                ["row", "model", "GPU", "engine", "metric", "measured", "predicted", "APE", "assumed"],
                rows,
            )
        )
    _group_table(out, "By source, GPU and metric", "source / GPU / metric", d["by_source_gpu_metric"])
    _group_table(out, "By category, metric and percentile", "category / metric / statistic", d["by_category_statistic"])
    _group_table(out, "By category and GPU", "category / GPU", d["by_gpu"])
    _group_table(out, "By category and engine", "category / engine", d["by_engine"])
    _group_table(out, "By category", "category", d["by_category"])
    if d["assumed_rows"]:
        out.print(f"{d['assumed_rows']} predicted row(s) needed an assumption (--json lists them per row).")
    if d["skipped"]:
        out.print(f"Skipped {len(d['skipped'])} row(s):")
        reasons: dict[str, list[str]] = {}
        for s in d["skipped"]:
            reasons.setdefault(s["reason"], []).append(s["id"])
        for reason, ids in reasons.items():
            out.print(f"  {reason}: rows {', '.join(ids)}")
