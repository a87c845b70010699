"""``inferplan plan``: search, check the best with the simulator at steady state, explain, cost.

:func:`make_plan` takes a resolved question (:class:`~inferplan.plan.context.PlanSetup`) and
returns a :class:`Plan` whose figures tell one story: the recommendation's replicas and GPUs
are those the ranking lists (after the simulator's check), the cost compares that fleet owned
with the fleet a cloud VM needs for the same load, and each figure says whether it is the
steady-state estimate or the simulation.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

from inferplan.errors import DoesNotFitError, InfeasibleError, InputError
from inferplan.plan.context import PlanContext, PlanSetup
from inferplan.plan.cost import CostComparison, Fleet, compare_costs
from inferplan.plan.disagg_plan import DisaggPlan, disagg_step, plan_disaggregated
from inferplan.plan.explain import PlanStep, explain
from inferplan.plan.question import Demand
from inferplan.plan.search import RANKINGS, Evaluated, pareto_front
from inferplan.plan.speculation import SpeculationSummary, speculation_step, summarize_speculation
from inferplan.plan.verify import Verification, verify
from inferplan.plan.workload_plan import workload_steps
from inferplan.specs.environment import BARE_METAL, EnvironmentProfile, get_environment, with_mig
from inferplan.specs.hardware import gpu_catalog
from inferplan.specs.rentals import cheapest_rental

__all__ = ["Plan", "PlanStep", "make_plan"]

#: The cloud environment owning is compared with.
CLOUD_ENV = "vm"


@dataclass(frozen=True, slots=True)
class Plan:
    """A plan: the ranked configurations (steady-state estimates), the chosen one after the
    simulator's check, the explanation and the cost."""

    setup: PlanSetup
    ranked: list[Evaluated]
    chosen: Evaluated
    verification: Verification | None
    steps: list[PlanStep]
    cost: CostComparison | None
    cloud_replicas: int | None  # replicas a cloud VM needs for the same load (None: not priced)
    pareto: list[tuple[float, float, str]]
    search_time_s: float
    speculation: SpeculationSummary | None = None  # issue 14: with and without, the crossover
    disaggregation: DisaggPlan | None = None  # issue 14: the best prefill/decode split against `chosen`

    @property
    def demand(self) -> Demand:
        return self.setup.demand

    @property
    def environment(self) -> EnvironmentProfile:
        return self.setup.env


def make_plan(setup: PlanSetup) -> Plan:
    """Find, verify and explain the best deployment of ``setup.model`` for its demand."""
    if setup.rank_by not in RANKINGS:
        raise InputError(f"--rank must be one of {', '.join(RANKINGS)}")
    model, demand = setup.model, setup.demand
    if demand.context_tokens > model.max_position_embeddings:
        # engines refuse a max model length beyond the config's (vLLM: max_model_len)
        what = f"{demand.isl:,} input + {demand.osl:,} output = {demand.context_tokens:,} tokens"
        if demand.traffic.shape is not None:  # issue 13: a session's last turn is the longest request
            what = f"{demand.context_tokens:,} tokens (the longest request's prompt and output)"
        raise InputError(
            f"{what} exceeds {model.name}'s "
            f"context of {model.max_position_embeddings:,} tokens (max_position_embeddings); shorten the requests or "
            "choose a longer-context model"
        )
    ctx = PlanContext(setup)
    start = time.perf_counter()
    ranked = ctx.search(setup.space)
    elapsed = time.perf_counter() - start
    if not ranked:
        raise DoesNotFitError(_fits_nothing(ctx))
    feasible = [e for e in ranked if e.meets]
    priced = [e for e in feasible if e.usd_per_hour is not None] or feasible
    chosen, checked = (priced or ranked)[0], None
    if feasible and setup.verify:
        checked = verify(chosen, demand, setup.targets)
        if checked.added_replicas:
            chosen = _with_replicas(chosen, checked.replicas, setup)
    # issue 14: prefill/decode splits set against the co-located choice (or its nearest miss)
    split = plan_disaggregated(ctx, chosen, setup.pools) if setup.pools else None
    if not feasible and not (split and split.wins):
        raise InfeasibleError(_nearest_miss(ctx, ranked))
    spec = summarize_speculation(ctx, chosen)
    extra = ([speculation_step(spec)] if spec else []) + ([disagg_step(split)] if split else [])
    extra += workload_steps(ctx, chosen, checked, ranked)  # issue 13
    extra = [replace(s, title=f"{5 + i}. {s.title}") for i, s in enumerate(extra)]
    cost, cloud_replicas = _cost(ctx, chosen, checked)
    return Plan(
        setup=setup,
        ranked=ranked,
        chosen=chosen,
        verification=checked,
        steps=explain(ctx, chosen) + extra,
        cost=cost,
        cloud_replicas=cloud_replicas,
        pareto=pareto_front(ranked),
        search_time_s=elapsed,
        speculation=spec,
        disaggregation=split,
    )


def _with_replicas(e: Evaluated, replicas: int, setup: PlanSetup) -> Evaluated:
    """``e`` with the replicas the simulator's check needed, re-priced."""
    dep = e.deployment
    rental = cheapest_rental(setup.offers, dep.gpu, dep.gpus_per_replica, replicas)
    return replace(e, replicas=replicas, rental=rental)


def _fits_nothing(ctx: PlanContext) -> str:
    s = ctx.setup
    split = "".join(f" with {k.upper()} {v}" for k, v in (("tp", s.space.tp), ("pp", s.space.pp)) if v)
    return (
        f"{s.model.name} does not fit: it fits none of the GPUs considered ({', '.join(g.id for g in s.space.gpus)}) "
        f"at {', '.join(p.name for p in s.space.precisions)}{split}"
        + (f" in {s.env.name}" if s.env.mig_profile else "")
        + "; allow more GPU types, more GPUs per replica or a lower precision (inferplan fit sizes it)"
    )


def _nearest_miss(ctx: PlanContext, ranked: list[Evaluated]) -> str:
    s = ctx.setup
    best = ranked[0]
    op = best.best_latency
    where = best.label()
    if op is None or not math.isfinite(op.ttft_p90_s):
        return f"no configuration is stable at this load; the nearest is {where}"
    relax = [
        f"--{name} {math.ceil(value * 1e3 / 10) * 10:.0f}ms"
        for name, value, _ in ctx.targets.exceeded(op.ttft_p90_s, op.tpot_p90_s, op.e2e_p90_s)
    ]
    msg = (
        f"no configuration meets the targets; the best reaches TTFT p90 {op.ttft_p90_s * 1e3:,.0f} ms, "
        f"TPOT p90 {op.tpot_p90_s * 1e3:,.1f} ms on {where} (steady-state estimate)"
    )
    if relax:
        msg += f"; relax to {' '.join(relax)}"
    others = tuple(g for g in gpu_catalog().values() if g.id not in {p.id for p in s.space.gpus})
    if others:
        wider = replace(s.space, gpus=others)
        winners = sorted({e.deployment.gpu.card_id for e in ctx.search(wider) if e.meets})
        if winners:
            msg += f" or allow {', '.join(winners[:3])} (--gpus)"
    return msg


def _is_cloud(env: EnvironmentProfile) -> bool:
    return env.cpu_overhead > 0 or env.gpu_overhead > 0 or env.jitter_loss > 0


def _cost(
    ctx: PlanContext, chosen: Evaluated, checked: Verification | None
) -> tuple[CostComparison | None, int | None]:
    """Every way to pay for the chosen configuration's load: what one replica sustains within
    the targets on bare metal and in a cloud VM sizes each fleet; where the simulator's check
    added replicas, the planned environment keeps that margin (spare GPUs of a rented instance
    are not a margin: each option places the fleet on its own servers)."""
    s, dep = ctx.setup, chosen.deployment
    cloud_env, bare_env = get_environment(CLOUD_ENV), BARE_METAL
    if dep.gpu.mig_profile:
        cloud_env, bare_env = with_mig(cloud_env, dep.gpu.mig_profile), with_mig(bare_env, dep.gpu.mig_profile)
    bare = ctx.in_environment(dep, bare_env)
    cloud = ctx.in_environment(dep, cloud_env)
    if not bare or not cloud or bare.max_rate_per_replica <= 0 or cloud.max_rate_per_replica <= 0:
        return None, None
    op = chosen.per_replica
    rate = s.demand.rate_per_s
    if rate is None:  # a closed loop of users: the rate the chosen fleet serves them at
        rate = op.rate_per_s * chosen.replicas if op else 0.0
    if rate <= 0:
        return None, None
    planned = checked.replicas if checked is not None and checked.added_replicas else 0
    fleet = Fleet(
        gpu=dep.gpu,
        gpus_per_replica=dep.gpus_per_replica,
        requests_per_s=rate,
        isl=s.demand.isl,
        osl=s.demand.osl,
        bare_rate_per_replica=bare.max_rate_per_replica,
        cloud_rate_per_replica=cloud.max_rate_per_replica,
        bare_replicas=0 if _is_cloud(s.env) else planned,
        cloud_replicas=planned if _is_cloud(s.env) else 0,
        model=s.model.name,
    )
    comparison = compare_costs(fleet, s.offers, s.costing)
    return comparison, comparison.cloud_replicas
