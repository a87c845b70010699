"""The speculative-decoding step of a plan's explanation (issue 14): the figures it assumes and
their source, what it does to the chosen configuration against the same configuration without it,
what it costs in memory, and the batch past which it stops paying."""

from __future__ import annotations

from dataclasses import dataclass

from inferplan.perf.replica import build_replica
from inferplan.perf.speculative import Crossover, crossover_batch
from inferplan.plan.context import PlanContext
from inferplan.plan.explain import PlanStep
from inferplan.plan.search import Evaluated
from inferplan.units import GB

__all__ = ["SpeculationSummary", "speculation_step", "summarize_speculation"]


@dataclass(frozen=True, slots=True)
class SpeculationSummary:
    """The chosen configuration with and without speculation, and the crossover."""

    with_spec: Evaluated
    without: Evaluated | None
    crossover: Crossover
    drafter_weights_bytes: float
    kv_scale: float


def summarize_speculation(ctx: PlanContext, chosen: Evaluated) -> SpeculationSummary | None:
    """None when the plan runs no speculation."""
    dep = chosen.deployment
    if dep.speculation is None:
        return None
    replica = build_replica(dep.with_replicas(1))
    ctx_tokens = ctx.demand.isl + ctx.demand.osl // 2
    cross = crossover_batch(replica, ctx_tokens)
    without = ctx.evaluate(dep.with_speculation(None))
    return SpeculationSummary(chosen, without, cross, replica.memory.drafter_weights_bytes, replica.memory.kv_scale)


def _comparison(s: SpeculationSummary) -> str:
    e, o = s.with_spec, s.without
    op = e.per_replica or e.best_latency
    mine = f"{e.fleet()}, TPOT p90 {op.tpot_p90_s * 1e3:,.1f} ms" if op else "no estimate"
    if o is None:
        return f"With speculation: {mine}; without it this configuration does not run."
    oop = o.per_replica or o.best_latency
    theirs = o.fleet() if o.meets else f"it misses the targets ({o.miss})"
    tpot = f", TPOT p90 {oop.tpot_p90_s * 1e3:,.1f} ms" if oop and o.meets else ""
    return f"With speculation: {mine}; without it, on the same GPUs: {theirs}{tpot} (steady-state estimates)."


def _crossover_text(s: SpeculationSummary) -> str:
    c = s.crossover
    at = f"at {c.context_tokens:,} tokens of context"
    if c.batch == 1:
        return f"It never pays here {at}: even one sequence decodes slower with it (speedup x{c.speedup_at_1:.2f})."
    first = f"One sequence decodes x{c.speedup_at_1:.2f} faster with it {at}"
    if c.batch is None:
        return f"{first}, and it still pays at the engine's largest batch ({c.max_batch} sequences)."
    return (
        f"{first}; past a batch of {c.batch} sequences (the crossover) verifying k + 1 tokens per sequence makes "
        "the step compute-bound and speculation lowers each sequence's token rate."
    )


def speculation_step(s: SpeculationSummary) -> PlanStep:
    spec = s.with_spec.deployment.speculation
    assert spec is not None
    op = s.with_spec.per_replica
    batch = op.batch if op else 0.0
    past = s.crossover.batch is not None and batch >= s.crossover.batch
    text = (
        f"Assumed: {spec.describe()}. {_comparison(s)} The drafter holds {s.drafter_weights_bytes / GB:,.2f} GB of "
        f"weights per GPU and adds {(s.kv_scale - 1) * 100:,.0f}% to each token's KV. {_crossover_text(s)}"
        + (
            f" The planned batch ({batch:,.0f}) is past the crossover: turn speculation off or lower k."
            if past
            else (f" The planned batch is {batch:,.0f}." if op else "")
        )
    )
    numbers = {
        "method": spec.method,
        "num_speculative_tokens": spec.num_tokens,
        "acceptance": list(spec.acceptance),
        "expected_tokens_per_step": spec.expected_tokens,
        "source": spec.source,
        "crossover_batch": s.crossover.batch,
        "speedup_at_batch_1": s.crossover.speedup_at_1,
        "planned_batch": batch,
        "replicas_without": s.without.replicas if s.without and s.without.meets else None,
        "drafter_weights_gb_per_gpu": s.drafter_weights_bytes / GB,
    }
    return PlanStep("Speculative decoding", text, numbers)
