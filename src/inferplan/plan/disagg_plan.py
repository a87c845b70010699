"""The disaggregated half of a plan (issue 14): the best prefill/decode split set against the best
co-located configuration, the verdict with its reasons in numbers, both priced, and the
simulator's check of the split at the demand.

Why either wins, in the planner's own terms: a co-located replica interleaves prefill chunks with
its decode steps, so at prefill utilisation ``rho`` every token waits ``1 / (1 - rho)`` times a
decode step (the steady state's ``tpot = t(b) / (1 - rho)``): long prompts and a strict TPOT force
co-located fleets to run nearly empty. A split decodes without prefill interference, but each pool
rounds up to whole replicas on its own, and each request's KV crosses the link between them,
which adds to TTFT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from inferplan.perf.disaggregation import simulate_disaggregated
from inferplan.perf.metrics import ServingMetrics, Slo, serving_metrics
from inferplan.perf.workload import Arrivals, LengthDist, Workload, make_requests
from inferplan.plan.context import PlanContext
from inferplan.plan.disagg_search import DisaggEvaluated, PoolSetup, rank_splits, search_disaggregated
from inferplan.plan.explain import PlanStep
from inferplan.plan.search import Evaluated, steady_state
from inferplan.plan.verify import VERIFY_MAX_STEPS, plan_requests, steadiness

__all__ = ["DisaggCheck", "DisaggPlan", "disagg_step", "plan_disaggregated"]


@dataclass(frozen=True, slots=True)
class DisaggCheck:
    """The simulator's check of the best split at the demand, measured after a warm-up."""

    metrics: ServingMetrics
    num_requests: int
    warmup_s: float
    steady: bool
    note: str


@dataclass(frozen=True, slots=True)
class DisaggPlan:
    """The splits searched, the best, whether it beats the co-located choice, and why."""

    ranked: list[DisaggEvaluated]
    best: DisaggEvaluated | None
    wins: bool
    verdict: str
    reasons: list[str]
    check: DisaggCheck | None
    kv_link_id: str


def _usd(x: float | None) -> str:
    return f"${x:,.2f}/hour" if x is not None else "no cloud price"


def _colocated_rho(ctx: PlanContext, e: Evaluated) -> float | None:
    """The prefill utilisation of one co-located replica at its share of the demand."""
    model = steady_state(e.deployment, ctx.demand)
    if model is None or e.per_replica is None:
        return None
    return e.per_replica.rate_per_s / model.pp * model.prefill_work


def _colocated_reason(ctx: PlanContext, e: Evaluated | None) -> str:
    if e is None:
        return "No co-located configuration fits this model."
    op = e.per_replica or e.best_latency
    rho = _colocated_rho(ctx, e)
    where = f"{e.replicas} x ({e.label()}) = {e.num_gpus} GPUs at {_usd(e.usd_per_hour)}"
    if not e.meets or op is None:
        return f"Co-located, nothing meets the targets: the nearest, {e.label()}, misses them ({e.miss or 'unstable'})."
    stretch = f"; each decode step waits 1/(1-rho) = x{1 / (1 - rho):.2f} for prefill" if rho is not None else ""
    share = f" spends {rho:.0%} of its time in prefill{stretch}" if rho is not None else ""
    return (
        f"Co-located: {where}; each replica{share}: TTFT p90 {op.ttft_p90_s * 1e3:,.0f} ms, "
        f"TPOT p90 {op.tpot_p90_s * 1e3:,.1f} ms (steady-state estimate)."
    )


def _split_reason(b: DisaggEvaluated, ctx: PlanContext) -> str:
    at = b.at_demand
    t = at.transfer
    op = at.op
    exposed_share = t.exposed_s / op.ttft_p90_s if math.isfinite(op.ttft_p90_s) and op.ttft_p90_s > 0 else 0.0
    return (
        f"Disaggregated: {b.label()} = {b.num_gpus} GPUs at {_usd(b.usd_per_hour)} (prefill "
        f"{_usd(b.prefill_rental.usd_per_hour if b.prefill_rental else None)}, decode "
        f"{_usd(b.decode_rental.usd_per_hour if b.decode_rental else None)}); the prefill pool runs at "
        f"{at.prefill_utilization:.0%} utilisation ({at.prefill_latency_s * 1e3:,.0f} ms per {ctx.demand.isl:,}-token "
        f"prompt), the decode pool at batch {at.decode_batch:,.1f} with no prefill in its steps: TTFT p90 "
        f"{op.ttft_p90_s * 1e3:,.0f} ms, TPOT p90 {op.tpot_p90_s * 1e3:,.1f} ms. Each request moves "
        f"{t.num_bytes / 1e9:,.2f} GB of KV over {t.streams} x {b.disagg.kv_link.name} in "
        f"{t.wire_s * 1e3:,.1f} ms ({t.exposed_s * 1e3:,.1f} ms not overlapped with the prefill, "
        f"{exposed_share:.0%} of TTFT; overlap '{b.disagg.overlap_mode}' for {b.disagg.engine_connector})."
    )


def _cheaper(b: DisaggEvaluated, e: Evaluated | None) -> bool:
    if e is None or not e.meets:
        return True
    bc = b.usd_per_hour if b.usd_per_hour is not None else math.inf
    ec = e.usd_per_hour if e.usd_per_hour is not None else math.inf
    return (bc, b.num_gpus) < (ec, e.num_gpus)


def _verdict(b: DisaggEvaluated | None, e: Evaluated | None) -> tuple[bool, str]:
    if b is None:
        return False, "Disaggregation: no prefill/decode split holds this model and load."
    if not b.meets:
        return False, f"Disaggregation loses: no split meets the targets; the nearest, {b.label()}, misses ({b.miss})."
    if e is None or not e.meets:
        return True, (
            "Disaggregation wins: it meets the targets where no co-located configuration does, because its decode "
            "steps carry no prefill."
        )
    if _cheaper(b, e):
        return True, (
            f"Disaggregation wins: {b.num_gpus} GPUs at {_usd(b.usd_per_hour)} against {e.num_gpus} GPUs at "
            f"{_usd(e.usd_per_hour)} co-located for the same targets."
        )
    return False, (
        f"Disaggregation loses: the best split needs {b.num_gpus} GPUs at {_usd(b.usd_per_hour)} against "
        f"{e.num_gpus} GPUs at {_usd(e.usd_per_hour)} co-located: the co-located replicas absorb the prefill "
        "within the targets, while separate pools each round up to whole replicas and add the KV transfer to TTFT."
    )


def _check(ctx: PlanContext, b: DisaggEvaluated, seed: int = 1) -> DisaggCheck:
    demand, targets = ctx.demand, ctx.targets
    e2e = b.at_demand.op.e2e_p90_s if math.isfinite(b.at_demand.op.e2e_p90_s) else 10.0
    n, warmup = plan_requests(demand, e2e)
    rate = demand.rate_per_s or 1.0
    wl = Workload(LengthDist(demand.isl), LengthDist(demand.osl), Arrivals("poisson", rate_per_s=rate), n, seed)
    sim = simulate_disaggregated(b.disagg, make_requests(wl), max_steps=VERIFY_MAX_STEPS)
    result = sim.result
    window = (warmup, float(result.arrival_s.max()))
    metrics = serving_metrics(result, Slo(targets.ttft_p90_s, targets.tpot_p90_s, targets.e2e_p90_s), window)
    finished = bool((result.finish_s == result.finish_s).all())
    steady, note = steadiness(result, demand, window, finished)
    return DisaggCheck(metrics, n, warmup, steady, note)


def plan_disaggregated(ctx: PlanContext, colocated: Evaluated | None, pools: PoolSetup) -> DisaggPlan:
    """Search the splits, set the best against ``colocated`` (the co-located choice or nearest
    miss) and check the best with the simulator."""
    s = ctx.setup
    if ctx.demand.rate_per_s is None:
        reason = "Disaggregated splits are sized for a request rate: give --rate instead of --concurrency."
        return DisaggPlan([], None, False, "Disaggregation was not searched.", [reason], None, pools.kv_link_id)
    ranked = rank_splits(search_disaggregated(ctx.candidates(s.space), s.demand, s.targets, s.offers, pools), s.rank_by)
    best = ranked[0] if ranked else None
    wins, verdict = _verdict(best, colocated)
    reasons = [_colocated_reason(ctx, colocated)]
    if best is not None:
        reasons.append(_split_reason(best, ctx))
    check = _check(ctx, best) if best is not None and best.meets and s.verify else None
    return DisaggPlan(ranked, best, wins, verdict, reasons, check, pools.kv_link_id)


def disagg_step(d: DisaggPlan) -> PlanStep:
    """The explanation step: the verdict, the reasons and the simulated check."""
    text = " ".join([d.verdict, *d.reasons])
    numbers: dict[str, object] = {"wins": d.wins, "kv_link": d.kv_link_id, "splits_searched": len(d.ranked)}
    if d.check is not None:
        m = d.check.metrics
        text += (
            f" Simulated check of the split ({d.check.num_requests:,} requests after {d.check.warmup_s:,.0f} s of "
            f"warm-up): TTFT p90 {m.ttft_s.p90 * 1e3:,.0f} ms, TPOT p90 {m.tpot_s.p90 * 1e3:,.1f} ms; {d.check.note}."
        )
        numbers |= {"simulated_ttft_p90_s": m.ttft_s.p90, "simulated_tpot_p90_s": m.tpot_s.p90}
    return PlanStep("Disaggregated prefill/decode", text, numbers)
