"""The charts of a plan: memory per GPU, KV capacity against context, the operator roofline,
latency against request rate, the Pareto frontier, cumulative cost and measured against
predicted. ``report_charts`` gives them all; :mod:`inferplan.present.report_html` lays them out as
one self-contained page and the web UI shows the same SVG.
"""

from __future__ import annotations

import math

from inferplan.bench.runs import RUN_FIGURES, RunComparison
from inferplan.perf.replica import Replica, build_replica
from inferplan.perf.roofline import step_shape
from inferplan.plan.planner import Plan
from inferplan.plan.search import Evaluated, steady_state_curve
from inferplan.present.charts import Chart, ChartText, Ref, Series, line_chart, stacked_bar_chart
from inferplan.sizing.capacity import MemoryPlan
from inferplan.units import GIB

__all__ = ["report_charts"]

_CURVE_MAX_FRACTION = 1.3  # curves run to 1.3x the highest rate any shown configuration sustains


def _distinct_configs(plan: Plan, limit: int) -> list[Evaluated]:
    """The chosen configuration, then the next best distinct ones that meet the targets."""
    out = [plan.chosen]
    seen = {plan.chosen.label()}
    for e in plan.ranked:
        if len(out) >= limit:
            break
        if e.meets and e.label() not in seen:
            out.append(e)
            seen.add(e.label())
    return out


def _build(e: Evaluated) -> Replica:
    return build_replica(e.deployment.with_replicas(1))


def memory_chart(configs: list[Evaluated], mems: list[MemoryPlan]) -> Chart:
    parts = [
        ("weights", [m.weights_bytes for m in mems]),
        ("KV cache", [max(m.kv_cache_bytes, 0.0) for m in mems]),
        ("activations", [m.activation_bytes + m.logits_bytes for m in mems]),
        ("CUDA context, NCCL", [m.non_torch_bytes for m in mems]),
        ("left free (utilisation)", [m.visible_bytes - m.budget_bytes for m in mems]),
    ]
    chosen = mems[0]
    caption = (
        f"Read: where each GPU's memory goes. On the recommendation ({configs[0].label()}) the "
        f"weights take {chosen.weights_bytes / GIB:,.1f} GiB per GPU and the KV cache gets "
        f"{max(chosen.kv_cache_bytes, 0) / GIB:,.1f} GiB ({chosen.kv_tokens:,} tokens); the black tick is the "
        "memory the GPU shows to programs. A KV cache that is a thin sliver means few concurrent sequences."
    )
    return stacked_bar_chart(
        ChartText("memory", "Memory per GPU", caption, "memory per GPU (GiB, 2^30 bytes)"),
        [e.label() for e in configs],
        [(name, [v / GIB for v in values]) for name, values in parts],
        limits=[m.visible_bytes / GIB for m in mems],
        limit_label="visible memory",
    )


def _context_points(max_context: int) -> list[int]:
    points, c = [], 256
    while c < max_context:
        points.append(c)
        c *= 2
    return [*points, max_context]


def kv_capacity_chart(plan: Plan, configs: list[Evaluated], mems: list[MemoryPlan]) -> Chart:
    max_ctx = max(plan.setup.model.max_position_embeddings, plan.demand.isl + plan.demand.osl)
    series = []
    for e, mem in zip(configs, mems, strict=True):
        pts = [(float(c), float(mem.max_sequences(c))) for c in _context_points(max_ctx)]
        series.append(Series(e.label(), [(x, y) for x, y in pts if y >= 1]))
    ctx = plan.demand.isl + plan.demand.osl
    first = mems[0].max_sequences(ctx)
    caption = (
        f"Read: how many sequences one replica holds at once, by context length (prompt + output). At this "
        f"workload's {ctx:,} tokens the recommendation holds {first:,} sequences. Where a line ends, one "
        "sequence no longer fits; lines halve as context doubles (sliding-window layers bend them). The engine "
        f"also caps a batch at {plan.setup.engine.max_num_seqs} sequences (max-num-seqs), whatever the memory holds."
    )
    refs = [Ref("x", float(ctx), f"workload {ctx:,} tokens")]
    return line_chart(
        ChartText(
            "kv_capacity",
            "KV-cache capacity against context length",
            caption,
            "context length (tokens, log scale)",
            "concurrent sequences per replica (sequences, log scale)",
        ),
        series,
        log_x=True,
        log_y=True,
        refs=refs,
    )


def roofline_chart(plan: Plan, built: Replica) -> Chart:
    """The operators of the recommendation, ``built`` as it is deployed."""
    c = plan.chosen.deployment
    cost = built.cost
    ctx = plan.demand.isl + plan.demand.osl // 2
    batch = max(round(plan.chosen.per_replica.batch), 1) if plan.chosen.per_replica else 1
    chunk = min(plan.demand.isl, built.scheduler.max_num_batched_tokens)
    steps = {
        f"prefill ({chunk:,} tokens)": cost.breakdown(step_shape([(chunk, 0)], [])),
        f"decode (batch {batch}, context {ctx:,})": cost.breakdown(step_shape([], [ctx] * batch)),
    }
    peak = c.gpu.flops_for(c.precision.compute_dtype)
    bw = c.gpu.mem_bw_bytes_per_s
    series, intensities, skipped = [], [], []
    for name, ops in steps.items():
        pts = []
        for op in ops:
            if op.flops > 0 and op.bytes > 0 and op.time_s > 0:
                ai = op.flops / op.bytes
                pts.append((ai, op.flops / op.time_s / 1e12))
                intensities.append(ai)
            else:
                skipped.append(op.name)
        series.append(Series(name, pts, mode="points"))
    lo = min([*intensities, 0.5]) / 2
    hi = max([*intensities, peak / bw]) * 2
    knee = peak / bw
    roof = [(lo, lo * bw / 1e12), (knee, peak / 1e12), (hi, peak / 1e12)]
    series.append(Series(f"roof: {peak / 1e12:,.0f} TFLOP/s, {bw / 1e12:,.2f} TB/s", roof, mode="line", color="#000"))
    caption = (
        f"Read: each point is one operator of a prefill or decode step on one {c.gpu.id} at {c.precision.name} "
        f"(attained FLOP/s against arithmetic intensity). Points under the sloped roof are memory-bound, under the "
        f"flat roof compute-bound; the knee is at {knee:,.0f} FLOP/byte. Decode GEMMs sit far left: "
        "batching more sequences moves them right."
    )
    skipped_note = sorted(set(skipped))
    chart = line_chart(
        ChartText(
            "roofline",
            f"Roofline on {c.gpu.id}",
            caption + (f" Not drawn (no FLOPs or bytes): {', '.join(skipped_note)}." if skipped_note else ""),
            "arithmetic intensity (FLOP/byte, log scale)",
            "attained compute per GPU (TFLOP/s, log scale)",
        ),
        series,
        log_x=True,
        log_y=True,
    )
    return chart


def _curve(plan: Plan, e: Evaluated, total_rates: list[float]) -> list[tuple[float, float, float]]:
    """(total rate, TTFT p90 s, TPOT p90 s) of ``e``'s replicas sharing each total rate."""
    replicas = max(e.replicas, 1)
    ops = steady_state_curve(e.deployment, plan.demand, [r / replicas for r in total_rates])
    return [(r, op.ttft_p90_s, op.tpot_p90_s) for r, op in zip(total_rates, ops, strict=True) if op.stable]


def latency_charts(plan: Plan, configs: list[Evaluated], num_points: int = 24) -> list[Chart]:
    d = plan.demand
    top = max([e.max_rate_per_replica * max(e.replicas, 1) for e in configs] + [d.rate_per_s or 0.0])
    rates = [top * _CURVE_MAX_FRACTION * (i + 1) / num_points for i in range(num_points)] if top > 0 else []
    curves = {f"{e.label()} x{e.replicas}": _curve(plan, e, rates) for e in configs}
    check = plan.verification
    demand_ref = [Ref("x", d.rate_per_s, f"demand {d.rate_per_s:g} req/s")] if d.rate_per_s else []
    charts = []
    for key, idx, target, name in (
        ("ttft", 1, plan.setup.targets.ttft_p90_s, "TTFT"),
        ("tpot", 2, plan.setup.targets.tpot_p90_s, "TPOT"),
    ):
        series = [Series(label, [(p[0], p[idx] * 1e3) for p in pts], mode="line") for label, pts in curves.items()]
        if check is not None:
            v = check.metrics
            simulated = (v.ttft_s if key == "ttft" else v.tpot_s).p90 * 1e3
            series.append(
                Series(
                    f"simulated check ({check.replicas} replicas, {check.num_requests:,} requests)",
                    [(v.request_throughput_per_s if d.rate_per_s is None else d.rate_per_s, simulated)],
                    mode="points",
                    color="#000",
                )
            )
        refs = list(demand_ref)
        if target:
            refs.append(Ref("y", target * 1e3, f"target {target * 1e3:,.0f} ms"))
        caption = (
            f"Read: {name} p90 as the total request rate grows ({d.isl:,} input / {d.osl:,} output tokens), for "
            "each configuration with its replica count, from the steady-state queueing model the search ranks "
            "with; the black point is the full simulator's check of the recommendation. A curve ends where the "
            "replicas can no longer keep up (the queue grows without bound); where it crosses the target line is "
            "the most that configuration serves within the target."
        )
        charts.append(
            line_chart(
                ChartText(
                    f"{key}_vs_rate",
                    f"{name} p90 against request rate",
                    caption,
                    "request rate (requests/s, all replicas)",
                    f"{name} p90 (ms, log scale)",
                ),
                series,
                log_y=True,
                refs=refs,
            )
        )
    return charts


def pareto_chart(plan: Plan) -> Chart:
    others = [pt for e in plan.ranked for pt in e.frontier]
    front = [(x, y) for x, y, _ in plan.pareto]
    chosen = plan.chosen.frontier
    series = [
        Series("every configuration", others, mode="points", color="#bbbbbb"),
        Series("Pareto frontier", front),
        Series(f"recommendation: {plan.chosen.label()}", chosen, color="#D55E00"),
    ]
    caption = (
        "Read: each configuration trades throughput per GPU (cost) against speed per user (1 / TPOT) as its "
        "load changes. The frontier is the best of both any configuration reaches; a recommendation on or near "
        f"it wastes nothing. {len(plan.ranked)} configurations searched, {len(front)} points on the frontier."
    )
    return line_chart(
        ChartText(
            "pareto",
            "Throughput per GPU against speed per user",
            caption,
            "throughput per GPU (output tokens/s)",
            "speed per user (tokens/s, 1 / TPOT p90)",
        ),
        series,
    )


def cost_chart(plan: Plan, months: int = 36) -> Chart | None:
    """Cumulative spend of every priced option over ``months``, with dots where an owned
    option's line crosses another's and the month a purchase has paid for itself."""
    c = plan.cost
    if c is None or not c.options:
        return None
    by_key = {o.key: o for o in c.options}
    series = [
        Series(
            o.label + (f" ({o.offer.id})" if o.offer else ""),
            [(float(m), o.cumulative_usd(m) / 1e3) for m in range(months + 1)],
            mode="line",
            dashed=not o.is_owned,
        )
        for o in c.options
    ]
    crossings = c.crossings()
    if crossings:
        dots = [(m, by_key[own].cumulative_usd(m) / 1e3) for m, own, _ in crossings]
        series.append(Series("lines cross", dots, mode="points", color="#000"))
    be = c.break_even.payoff_months
    refs = [Ref("x", be, f"purchase paid off: {be:,.1f} months")] if be is not None and 0 < be <= months else []
    crossed = "; ".join(
        f"{by_key[own].label} = {by_key[other].label} at {m:,.1f} months" for m, own, other in crossings[:3]
    )
    caption = (
        "Read: total spend since day one, in thousands of USD; owned lines are solid, rented ones dashed. A purchase "
        "starts at its price, then pays power, colocation and support; leases and cloud bills accrue monthly. Owned "
        "and committed capacity holds the peak fleet, elastic cloud the mean. "
        + (f"Lines cross (dots): {crossed}. " if crossed else "No two lines cross within the chart. ")
        + " ".join(x for x in (c.break_even.payoff_sentence, c.break_even.front_loaded) if x)
    )
    return line_chart(
        ChartText(
            "cost",
            f"Cumulative cost over {months} months",
            caption.strip(),
            "time since start (months)",
            "cumulative cost (thousand USD)",
        ),
        series,
        refs=refs,
    )


def measured_chart(comparisons: list[RunComparison]) -> Chart:
    series, values = [], []
    for key, label, _, _ in RUN_FIGURES:
        pts = [(c.measured[key], c.predicted[key]) for c in comparisons if key in c.measured and key in c.predicted]
        pts = [(m, p) for m, p in pts if m > 0 and p > 0 and math.isfinite(p)]
        values += [v for pt in pts for v in pt]
        series.append(Series(label, pts, mode="points"))
    lo, hi = (min(values) / 2, max(values) * 2) if values else (0.1, 10.0)
    series.append(Series("predicted = measured", [(lo, lo), (hi, hi)], mode="line", color="#000"))
    series.append(Series("+-20%", [(lo, lo * 1.2), (hi, hi * 1.2)], mode="line", dashed=True, color="#999"))
    series.append(Series("", [(lo, lo * 0.8), (hi, hi * 0.8)], mode="line", dashed=True, color="#999"))
    errs = [abs(e) for c in comparisons for e in c.errors().values()]
    median = sorted(errs)[len(errs) // 2] if errs else math.nan
    caption = (
        f"Read: each point is one measured run's figure against the simulator's replay of the same requests "
        f"(seconds for TTFT and TPOT, tokens/s for throughput). On the diagonal the model is exact; inside the "
        f"dashed lines it is within 20%. Median absolute error over {len(comparisons)} run(s): {median:.0%}."
    )
    return line_chart(
        ChartText(
            "measured",
            "Measured against predicted",
            caption,
            "measured (s or tokens/s, log scale)",
            "predicted (s or tokens/s, log scale)",
        ),
        series,
        log_x=True,
        log_y=True,
    )


def report_charts(plan: Plan, comparisons: list[RunComparison] | None = None, *, num_configs: int = 3) -> list[Chart]:
    """Every chart of the report, in reading order."""
    configs = _distinct_configs(plan, num_configs)  # the recommendation first
    builts = [_build(e) for e in configs]
    mems = [b.memory for b in builts]
    charts = [memory_chart(configs, mems), kv_capacity_chart(plan, configs, mems), roofline_chart(plan, builts[0])]
    charts += latency_charts(plan, configs)
    charts.append(pareto_chart(plan))
    cost = cost_chart(plan)
    if cost is not None:
        charts.append(cost)
    if comparisons:
        charts.append(measured_chart(comparisons))
    return charts
