"""The plan and cost payloads (schemas ``inferplan.plan/1`` and ``inferplan.cost/1``), with the
headline sentences every output prints word for word (CLI, Markdown, report, web)."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any, Literal

from pydantic import Field

from inferplan.perf.accuracy import error_band
from inferplan.plan.planner import Plan
from inferplan.plan.search import Evaluated, demand_tokens_per_s
from inferplan.plan.verify import Verification
from inferplan.present.payload import Payload, Strict, finite
from inferplan.present.payload_cost import CostPayload, cost_payload
from inferplan.present.payload_disagg import DisaggPlanPayload, disagg_headline, disagg_plan_payload
from inferplan.present.payload_metrics import ErrorBandPayload, MetricsPayload, error_bands_payload, metrics_payload
from inferplan.present.payload_speculation import SpeculationPayload, speculation_payload
from inferplan.specs.rentals import cards_needed
from inferplan.units import counted

__all__ = ["CostCommandPayload", "CostPayload", "PlanPayload", "cost_command_payload", "cost_payload", "plan_payload"]


class CandidatePayload(Strict):
    """One configuration: its figures are the steady-state estimate the search ranks with."""

    label: str
    gpu: str
    device: Literal["gpu", "cpu"] = Field(description="A GPU, or a CPU socket (then num_gpus counts sockets).")
    tp: int
    pp: int
    replicas: int
    num_gpus: int
    precision: str
    kv_dtype: str
    meets_targets: bool
    miss: str | None
    max_rate_per_replica: float | None
    ttft_p90_s: float | None
    tpot_p90_s: float | None
    e2e_p90_s: float | None
    usd_per_hour: float | None = Field(description="Cloud price of the GPUs these replicas use.")
    usd_per_mtok: float | None
    offer: str | None
    price_note: str | None = None
    estimate: Literal["steady-state"] = "steady-state"


class SimulationPayload(Strict):
    """The simulator's check of the recommendation, measured after a warm-up."""

    estimate: Literal["simulation"] = "simulation"
    replicas: int
    added_replicas: int
    num_requests: int
    simulated_s: float | None
    warmup_s: float | None
    window_s: float | None
    steady: bool
    note: str
    demand_output_tokens_per_s: float | None
    metrics: MetricsPayload


class StepPayload(Strict):
    title: str
    text: str
    numbers: dict[str, Any]


class ParetoPoint(Strict):
    output_tokens_per_s_per_gpu: float
    tokens_per_s_per_user: float
    label: str


class DemandPayload(Strict):
    isl: int
    osl: int
    rate_per_s: float | None
    concurrency: int | None


class TargetsPayload(Strict):
    ttft_p90_s: float | None
    tpot_p90_s: float | None
    e2e_p90_s: float | None
    min_output_tokens_per_s: float | None
    max_usd_per_hour: float | None


class PlanPayload(Payload):
    schema_id: Literal["inferplan.plan/1"] = Field(default="inferplan.plan/1", serialization_alias="schema")
    model: str
    engine: str
    environment: dict[str, Any]
    demand: DemandPayload
    targets: TargetsPayload
    margin: str = Field("none", description="none, median or p90: the model error the plan allows for.")
    planned_targets: TargetsPayload = Field(description="The targets the model's figures were held to (the margin in).")
    error_bands: dict[str, ErrorBandPayload] = Field(
        description="The measured error of each kind of figure (ttft, tpot, e2e, throughput)."
    )
    headline: list[str] = Field(description="The recommendation in words, as every output prints it.")
    recommendation: CandidatePayload
    verified_by_simulation: SimulationPayload | None
    cloud_replicas: int | None = Field(description="Replicas a cloud VM needs for the same load.")
    steps: list[StepPayload]
    cost: CostPayload | None
    ranked: list[CandidatePayload]
    pareto_front: list[ParetoPoint]
    search_time_s: float
    num_candidates: int
    speculation: SpeculationPayload | None = None
    """Speculative decoding every candidate runs, with the crossover of the recommendation."""
    disaggregation: DisaggPlanPayload | None = None
    """Prefill/decode splits searched beside the co-located configurations (--disagg)."""


class CostCommandPayload(Payload):
    schema_id: Literal["inferplan.cost/1"] = Field(default="inferplan.cost/1", serialization_alias="schema")
    model: str
    gpu: str
    tp: int
    pp: int
    precision: str
    kv_dtype: str
    engine: str
    demand: DemandPayload
    headline: list[str]
    cost: CostPayload


def _candidate(e: Evaluated, demand_tokens: float) -> CandidatePayload:
    dep, op = e.deployment, e.per_replica
    par = dep.parallelism
    return CandidatePayload(
        label=dep.label(),
        gpu=dep.gpu.id,
        device="cpu" if dep.gpu.is_cpu else "gpu",
        tp=par.tp,
        pp=par.pp,
        replicas=e.replicas,
        num_gpus=e.num_gpus,
        precision=dep.precision.name,
        kv_dtype=dep.kv_dtype.name,
        meets_targets=e.meets,
        miss=e.miss or None,
        max_rate_per_replica=finite(e.max_rate_per_replica),
        ttft_p90_s=finite(op.ttft_p90_s) if op else None,
        tpot_p90_s=finite(op.tpot_p90_s) if op else None,
        e2e_p90_s=finite(op.e2e_p90_s) if op else None,
        usd_per_hour=finite(e.usd_per_hour),
        usd_per_mtok=finite(e.usd_per_mtok(demand_tokens)),
        offer=e.offer.id if e.offer else None,
        price_note=e.rental.note or None if e.rental else None,
    )


def _simulation(v: Verification) -> SimulationPayload:
    return SimulationPayload(
        replicas=v.replicas,
        added_replicas=v.added_replicas,
        num_requests=v.num_requests,
        simulated_s=finite(v.simulated_s),
        warmup_s=finite(v.warmup_s),
        window_s=finite(v.window_s),
        steady=v.steady,
        note=v.note,
        demand_output_tokens_per_s=finite(v.demand_tokens_per_s),
        metrics=metrics_payload(v.metrics),
    )


def _ms(x: float | None, digits: int = 0) -> str:
    return f"{x * 1e3:,.{digits}f} ms" if x is not None else "-"


def headline(p: Plan) -> list[str]:
    """The recommendation in sentences: fleet, price, the cloud's fleet, and the check."""
    e, dep, env = p.chosen, p.chosen.deployment, p.environment
    par = dep.parallelism
    tokens = demand_tokens_per_s(p.demand, p.ranked)
    first = f"Recommendation: {e.replicas} x ({dep.label()}) = {dep.gpu.count(e.num_gpus)} on {env.name}"
    if dep.gpu.mig_profile:
        first += f", on {cards_needed(dep.gpu, 1, e.replicas)} x {dep.gpu.card_id}"
    elif par.tp > 1 or par.pp > 1:
        first += f" (TP {par.tp}, PP {par.pp} per replica)"
    lines = [first + _spare_clause(p) + "."]
    if e.rental is not None:
        mtok = e.usd_per_mtok(tokens)
        lines.append(
            f"Renting these GPUs costs ${e.rental.usd_per_hour:,.2f}/hour on {e.rental.offer.id}"
            + (f" ({e.rental.note})" if e.rental.note else "")
            + (f", ${mtok:,.3f} per million output tokens." if mtok is not None else ".")
        )
    else:
        lines.append(f"No cloud price for {dep.gpu.card_id} in the price catalog: add one with --prices.")
    if p.cloud_replicas is not None and p.cost is not None:
        lines.append(_cloud_sentence(p))
        if p.cost.peak_to_mean > 1:
            lines.append(_peak_sentence(p))
    v = p.verification
    if v is not None:
        m = v.metrics
        lines.append(
            f"Simulated check at {counted(v.replicas, 'replica')} ({v.num_requests:,} requests, "
            f"{v.window_s:,.0f} s measured after {v.warmup_s:,.0f} s of warm-up): TTFT p90 "
            f"{_ms(finite(m.ttft_s.p90))}{_band('ttft', p)}, TPOT p90 {_ms(finite(m.tpot_s.p90), 1)}"
            f"{_band('tpot', p)}; {v.note}. The ranking's figures are steady-state estimates."
        )
    if p.setup.margin != "none":
        lines.append(
            f"Planned with a {p.setup.margin} margin: the targets hold even if the model errs on the bad side by its "
            f"{p.setup.margin} error on public measurements."
        )
    if not e.meets:
        lines = [f"Co-located, the nearest configuration is {e.replicas} x ({dep.label()}): it misses ({e.miss})."]
    return disagg_headline(p.disaggregation, lines, e.meets) if p.disaggregation else lines


def _band(kind: str, p: Plan) -> str:
    """' (typically within 18%, 9 in 10 within 40%, on public measurements of this kind)'."""
    band = error_band(kind, p.setup.calibration, on_cpu=p.chosen.deployment.gpu.is_cpu)
    return f" ({band.text()})" if band else ""


def _spare_clause(p: Plan) -> str:
    """Why the fleet holds more replicas than the load needs, when whole rented instances do it."""
    e, rate = p.chosen, p.demand.rate_per_s
    if rate is None or e.rental is None or e.max_rate_per_replica <= 0:
        return ""
    needed = max(math.ceil(rate / e.max_rate_per_replica - 1e-9), 1)
    if e.replicas <= needed or e.rental.replicas_held != e.replicas:
        return ""
    spare = e.replicas - needed
    return (
        f"; {needed} serve the load and {spare} more {'fills' if spare == 1 else 'fill'} the whole instances rented "
        "at no extra cost (the cost table sizes each option for the load itself)"
    )


def _cloud_sentence(p: Plan) -> str:
    assert p.cost is not None and p.cloud_replicas is not None
    c, e = p.cost, p.chosen
    gpus = e.deployment.gpu.count(c.gpus_per_replica * p.cloud_replicas)
    hourly = f" at ${c.cloud_hourly_usd:,.2f}/hour" if c.cloud_hourly_usd is not None else ""
    cloud = p.setup.env.cpu_overhead > 0 or p.setup.env.jitter_loss > 0 or p.setup.env.gpu_overhead > 0
    if cloud:
        return (
            f"On bare metal the same load needs {counted(c.bare_replicas, 'replica')}; the cost table compares "
            f"owning them with renting these {p.cloud_replicas}{hourly}."
        )
    if p.cloud_replicas == e.replicas:
        verb = "suffices" if p.cloud_replicas == 1 else "suffice"
        return f"In a cloud VM the same {counted(p.cloud_replicas, 'replica')} {verb}{hourly}."
    return (
        f"In a cloud VM the same load needs {counted(p.cloud_replicas, 'replica')} = {gpus}{hourly} (hypervisor and "
        "scheduler overheads, see the assumptions); the cost table prices owned bare metal for "
        f"{c.bare_replicas} and the cloud for {p.cloud_replicas}."
    )


def _peak_sentence(p: Plan) -> str:
    """The peak's fleet beside the mean's, and which price belongs to which."""
    assert p.cost is not None
    c, gpu = p.cost, p.chosen.deployment.gpu
    s = c.sizes
    return (
        f"Peaks of {c.peak_to_mean:g}x the mean ({c.fleet.requests_per_s * c.peak_to_mean:,.3g} requests/s) need "
        f"{counted(s.bare_peak, 'replica')} = {gpu.count(s.bare_peak * c.gpus_per_replica)} on bare metal and "
        f"{s.cloud_peak} in a cloud VM: owned and committed capacity is priced for that peak fleet, the elastic "
        "cloud for the mean fleet scaling up to it (the cost table says which fleet each price is for)."
    )


def plan_payload(p: Plan, top: int) -> PlanPayload:
    d, t = p.demand, p.setup.targets
    tokens = demand_tokens_per_s(d, p.ranked)
    label = p.chosen.deployment.label()
    return PlanPayload(
        model=p.setup.model.name,
        engine=p.setup.engine.name,
        environment=p.environment.assumptions(),
        demand=DemandPayload(isl=d.isl, osl=d.osl, rate_per_s=d.rate_per_s, concurrency=d.concurrency),
        targets=TargetsPayload(**asdict(p.setup.stated_targets or t)),
        margin=p.setup.margin,
        planned_targets=TargetsPayload(**asdict(t)),
        error_bands=error_bands_payload(p.setup.calibration, on_cpu=p.chosen.deployment.gpu.is_cpu),
        headline=headline(p),
        recommendation=_candidate(p.chosen, tokens),
        verified_by_simulation=_simulation(p.verification) if p.verification else None,
        cloud_replicas=p.cloud_replicas,
        steps=[StepPayload(title=s.title, text=s.text, numbers=s.numbers) for s in p.steps],
        cost=cost_payload(p.cost, label) if p.cost else None,
        ranked=[_candidate(e, tokens) for e in p.ranked[:top]],
        pareto_front=[
            ParetoPoint(output_tokens_per_s_per_gpu=x, tokens_per_s_per_user=y, label=lab) for x, y, lab in p.pareto
        ],
        search_time_s=p.search_time_s,
        num_candidates=len(p.ranked),
        speculation=speculation_payload(
            p.chosen.deployment.speculation,
            p.speculation.drafter_weights_bytes if p.speculation else None,
            p.speculation.crossover if p.speculation else None,
        ),
        disaggregation=disagg_plan_payload(p.disaggregation, top) if p.disaggregation else None,
    )


def cost_command_payload(p: Plan) -> CostCommandPayload:
    """``inferplan cost``: the plan's cost section for its one configuration."""
    if p.cost is None:
        from inferplan.errors import InfeasibleError

        raise InfeasibleError(f"{p.chosen.deployment.label()} cannot be priced: it meets the targets in no environment")
    dep, d = p.chosen.deployment, p.demand
    return CostCommandPayload(
        model=p.setup.model.name,
        gpu=dep.gpu.id,
        tp=dep.parallelism.tp,
        pp=dep.parallelism.pp,
        precision=dep.precision.name,
        kv_dtype=dep.kv_dtype.name,
        engine=dep.engine.name,
        demand=DemandPayload(isl=d.isl, osl=d.osl, rate_per_s=d.rate_per_s, concurrency=d.concurrency),
        headline=headline(p),
        cost=cost_payload(p.cost, dep.label()),
    )
