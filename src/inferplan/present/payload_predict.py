"""Dicts and rich output for predictions and validation (the ``predict`` and ``validate``
JSON schemas, ``inferplan.predict/1`` and ``inferplan.validate/1``)."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from inferplan.perf.predict import Prediction, op_rows
from inferplan.perf.validate import Outcome, summarize
from inferplan.perf.workload import Workload
from inferplan.present.payload_fit import table

__all__ = ["prediction_dict", "print_prediction", "print_validation", "validation_dict"]


def prediction_dict(p: Prediction, wl: Workload) -> dict[str, Any]:
    dep = p.built.deployment
    par = dep.parallelism
    m = p.metrics
    return {
        "schema": "inferplan.predict/1",
        "model": dep.model.name,
        "gpu": dep.gpu.id,
        "engine": dep.engine.name,
        "precision": dep.precision.name,
        "kv_dtype": dep.kv_dtype.name,
        "parallelism": {"tp": par.tp, "pp": par.pp, "dp": par.dp, "num_gpus": par.num_gpus},
        "tp_link": dep.tp_link.id if dep.tp_link else None,
        "workload": {
            "isl": wl.input_tokens.mean,
            "osl": wl.output_tokens.mean,
            "arrivals": wl.arrivals.kind,
            "rate_per_s": wl.arrivals.rate_per_s,
            "concurrency": wl.arrivals.concurrency,
            "num_requests": m.num_requests,
            "seed": wl.seed,
        },
        "kv_cache": {
            "blocks_per_replica": p.built.scheduler.kv_blocks,
            "tokens_per_replica": p.built.scheduler.kv_blocks * p.built.scheduler.block_size,
        },
        "metrics": m.as_dict(),
        "prefill_step": {
            "tokens": p.prefill_tokens,
            "time_s": sum(o.time_s for o in p.prefill_ops),
            "operators": op_rows(p.prefill_ops),
        },
        "decode_step": {
            "batch": p.decode_batch,
            "context_tokens": p.decode_context,
            "time_s": sum(o.time_s for o in p.decode_ops),
            "operators": op_rows(p.decode_ops),
        },
        "assumptions": p.environment.assumptions(),
    }


def _ms(x: float) -> str:
    return f"{x * 1e3:,.1f}"


def print_prediction(out: Console, d: dict[str, Any]) -> None:
    m, par = d["metrics"], d["parallelism"]
    out.print(
        f"[bold]{d['model']}[/bold] on {par['num_gpus']} x {d['gpu']} (TP {par['tp']}, PP {par['pp']}, "
        f"DP {par['dp']}), {d['precision']} weights, {d['kv_dtype']} KV, engine {d['engine']}"
    )
    rows = [
        [name, _ms(m[key]["mean"]), _ms(m[key]["p50"]), _ms(m[key]["p90"]), _ms(m[key]["p99"])]
        for name, key in (
            ("TTFT", "ttft_s"),
            ("TPOT", "tpot_s"),
            ("ITL", "itl_s"),
            ("E2E", "e2e_s"),
        )
    ]
    out.print(table("Latency (ms)", ["metric", "mean", "p50", "p90", "p99"], rows))
    out.print(
        f"Throughput: {m['request_throughput_per_s']:,.2f} req/s, {m['output_token_throughput_per_s']:,.0f} "
        f"output tok/s, {m['total_token_throughput_per_s']:,.0f} total tok/s; goodput "
        f"{m['goodput_requests_per_s']:,.2f} req/s; mean batch {m['mean_batch_size']:,.1f}, KV use "
        f"{m['mean_kv_usage'] * 100:,.0f}%, preemptions {m['num_preemptions']}; "
        f"{m['num_completed']}/{m['num_requests']} requests completed."
    )
    for label, key in (("Prefill step", "prefill_step"), ("Decode step", "decode_step")):
        step = d[key]
        what = (
            f"{step['tokens']:,} tokens"
            if key == "prefill_step"
            else f"batch {step['batch']} at {step['context_tokens']:,} tokens of context"
        )
        rows = [[o["operator"], _ms(o["time_s"]), f"{o['share'] * 100:.0f}%", o["bound"]] for o in step["operators"]]
        out.print(
            table(
                f"{label}: {what}, {_ms(step['time_s'])} ms",
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


def validation_dict(outcomes: list[Outcome]) -> dict[str, Any]:
    rows = [
        {
            "id": o.row.id,
            "source": o.row["source_key"],
            "model": o.row["model"],
            "gpu": o.row["gpu"],
            "metric": o.row["metric"],
            "category": o.category,
            "measured": o.measured,
            "predicted": o.predicted,
            "ape_pct": o.ape,
            "skipped": o.skipped or None,
        }
        for o in outcomes
    ]

    def groups(by: tuple[str, ...]) -> list[dict[str, Any]]:
        return [
            {
                "group": list(g.key),
                "count": g.count,
                "median_ape_pct": g.median_ape,
                "p90_ape_pct": g.p90_ape,
            }
            for g in summarize(outcomes, by)
        ]

    return {
        "schema": "inferplan.validate/1",
        "rows": rows,
        "by_category": groups(("category",)),
        "by_source_gpu_metric": groups(("source_key", "gpu", "metric")),
        "skipped": [{"id": o.row.id, "reason": o.skipped} for o in outcomes if o.skipped],
    }


def print_validation(out: Console, d: dict[str, Any], show_rows: bool) -> None:
    if show_rows:
        rows = [
            [
                r["id"],
                r["model"],
                r["metric"],
                f"{r['measured']:,.1f}",
                f"{r['predicted']:,.1f}" if r["predicted"] is not None else "-",
                f"{r['ape_pct']:.1f}%" if r["ape_pct"] is not None else "skipped",
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
                    f"{g['median_ape_pct']:.1f}%",
                    f"{g['p90_ape_pct']:.1f}%",
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
                    f"{g['median_ape_pct']:.1f}%",
                    f"{g['p90_ape_pct']:.1f}%",
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
            out.print(f"  {reason}: rows {', '.join(ids)}")
