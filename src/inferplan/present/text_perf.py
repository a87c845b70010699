"""Predictions and validation results as terminal tables, from their payloads."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from inferplan.present.text import ms, num, table
from inferplan.present.text_workload import print_workload_features

__all__ = ["print_prediction", "print_validation"]


def print_prediction(out: Console, d: dict[str, Any]) -> None:
    m, par = d["metrics"], d["parallelism"]
    out.print(
        f"[bold]{escape(d['model'])}[/bold] on {par['num_gpus']} x {escape(d['gpu'])} (TP {par['tp']}, PP {par['pp']}, "
        f"DP {par['dp']}), {escape(d['precision'])} weights, {escape(d['kv_dtype'])} KV, engine {escape(d['engine'])}"
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
        rows = [
            [o["operator"], ms(o["time_s"]), f"{num(o['share'], '.0f', 100)}%", o["bound"]] for o in step["operators"]
        ]
        out.print(
            table(
                f"{label}: {what}, {ms(step['time_s'])} ms",
                ["operator", "ms", "share", "bound"],
                rows,
            )
        )
    print_serving_architecture(out, d)
    print_workload_features(out, d.get("workload_features"))
    a = d["assumptions"]
    if a["environment"] != "bare-metal":
        out.print(
            f"Assumptions ({escape(a['environment'])}): hypervisor CPU +{num(a['cpu_overhead'], '.0f', 100)}%, "
            f"GPU virtualisation +{num(a['gpu_overhead'], '.0f', 100)}%, scheduler jitter "
            f"-{num(a['jitter_loss'], '.0f', 100)}% batching efficiency. Source: {escape(a['source'])}. "
            "Edit with --env-set NAME=VALUE."
        )


def print_serving_architecture(out: Console, d: dict[str, Any]) -> None:
    """Speculative decoding's figures and source, and the disaggregated pools with their transfer."""
    s = d.get("speculation")
    if s:
        rates = ", ".join(f"{a:.2f}" for a in s["acceptance"])
        out.print(
            f"Speculative decoding: {s['method']}, k={s['num_speculative_tokens']}, acceptance per position {rates} "
            f"= {s['expected_tokens_per_step']:.2f} tokens per step; source: {s['source']}."
        )
        c = s.get("crossover")
        if c:
            where = (
                f"it stops paying past a batch of {c['crossover_batch']}"
                if c["crossover_batch"]
                else f"it pays up to a batch of {c['max_batch']}"
            )
            out.print(
                f"At {c['context_tokens']:,} tokens of context one sequence decodes x{num(c['speedup_at_batch_1'])} "
                f"faster with it; {where} (the crossover)."
            )
    g = d.get("disaggregation")
    if g:
        p, dec, t = g["prefill"], g["decode"], g["transfer"]
        out.print(
            f"Disaggregated: {p['replicas']} prefill x ({p['label']}) + {dec['replicas']} decode x ({dec['label']}); "
            f"each request's KV, {t['bytes_per_request'] / 1e9:,.2f} GB, crosses {t['streams']} x {t['kv_link']} in "
            f"{ms(t['wire_s'])} ms ({ms(t['exposed_s'])} ms after the prefill, overlap '{t['overlap']}', "
            f"{t['connector']}). TTFT = prefill-pool queueing + prefill + transfer + the decode pool's first step."
        )


def print_validation(out: Console, d: dict[str, Any], show_rows: bool) -> None:
    if show_rows:
        rows = [
            [
                r["id"],
                r["model"],
                r["metric"],
                num(r["measured"], ",.1f"),
                num(r["predicted"], ",.1f"),
                f"{num(r['ape_pct'], '.1f')}%" if r["ape_pct"] is not None else "skipped",
            ]
            for r in d["rows"]
        ]
        out.print(
            table(
                "Predicted vs measured",
                ["row", "model", "metric", "measured", "predicted", "APE"],
                rows,
            )
        )
    out.print(
        table(
            "By source, GPU and metric",
            ["source / GPU / metric", "n", "median APE", "p90 APE"],
            [
                [
                    " / ".join(g["group"]),
                    str(g["count"]),
                    f"{num(g['median_ape_pct'], '.1f')}%",
                    f"{num(g['p90_ape_pct'], '.1f')}%",
                ]
                for g in d["by_source_gpu_metric"]
            ],
        )
    )
    out.print(
        table(
            "By category",
            ["category", "n", "median APE", "p90 APE"],
            [
                [
                    g["group"][0],
                    str(g["count"]),
                    f"{num(g['median_ape_pct'], '.1f')}%",
                    f"{num(g['p90_ape_pct'], '.1f')}%",
                ]
                for g in d["by_category"]
            ],
        )
    )
    if d["skipped"]:
        out.print(f"Skipped {len(d['skipped'])} row(s):")
        reasons: dict[str, list[str]] = {}
        for s in d["skipped"]:
            reasons.setdefault(s["reason"], []).append(s["id"])
        for reason, ids in reasons.items():
            out.print(f"  {reason}: rows {', '.join(ids)}", markup=False, highlight=False)
