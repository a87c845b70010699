"""Disaggregated prefill/decode as payload parts: the pools and the KV transfer of a prediction
(``predict``), and the best splits set against the co-located choice in a plan (``plan``)."""

from __future__ import annotations

from inferplan.perf.disaggregation import DisaggSim, Transfer
from inferplan.perf.metrics import serving_metrics
from inferplan.plan.disagg_plan import DisaggPlan
from inferplan.plan.disagg_search import DisaggEvaluated
from inferplan.present.payload import Strict, finite
from inferplan.present.payload_metrics import MetricsPayload, metrics_payload
from inferplan.specs.deployment import Deployment
from inferplan.specs.disaggregation import Disaggregated
from inferplan.specs.rentals import Rental

__all__ = [
    "DisaggPlanPayload",
    "DisaggPredictPayload",
    "PoolPayload",
    "TransferPayload",
    "disagg_headline",
    "disagg_plan_payload",
    "disagg_predict_payload",
]


class PoolPayload(Strict):
    """One pool: its replicas' deployment and how many."""

    role: str
    """prefill or decode."""
    label: str
    gpu: str
    tp: int
    pp: int
    replicas: int
    num_gpus: int
    usd_per_hour: float | None = None
    """Cloud price of this pool's GPUs (plan only)."""
    offer: str | None = None
    max_rate_per_replica: float | None = None
    """Requests/s one replica of this pool takes within the targets (plan only; steady-state estimate)."""


class TransferPayload(Strict):
    """The KV transfer of one request of the mean input length."""

    kv_link: str
    connector: str
    """vLLM's kv_connector or SGLang's transfer backend."""
    overlap: str
    """none (after the prefill), chunk or layer: how the transfer overlaps the prefill."""
    bytes_per_request: int
    streams: int
    """NICs moving it in parallel: min(prefill GPUs, decode GPUs) per replica."""
    wire_s: float
    exposed_s: float
    """The part of the transfer that adds to TTFT."""


def _pool(role: str, dep: Deployment, rental: Rental | None = None, rate: float | None = None) -> PoolPayload:
    par = dep.parallelism
    return PoolPayload(
        role=role,
        label=dep.label(),
        gpu=dep.gpu.id,
        tp=par.tp,
        pp=par.pp,
        replicas=par.dp,
        num_gpus=dep.num_gpus,
        usd_per_hour=finite(rental.usd_per_hour) if rental else None,
        offer=rental.offer.id if rental else None,
        max_rate_per_replica=finite(rate),
    )


def _transfer(dis: Disaggregated, t: Transfer) -> TransferPayload:
    return TransferPayload(
        kv_link=dis.kv_link_id,
        connector=dis.engine_connector,
        overlap=dis.overlap_mode,
        bytes_per_request=int(t.num_bytes),
        streams=t.streams,
        wire_s=t.wire_s,
        exposed_s=t.exposed_s,
    )


class DisaggPredictPayload(Strict):
    """A disaggregated prediction: both pools, the transfer, and the prefill pool's own simulation
    (its TTFT is the prompt's prefill and first token there; the top-level metrics are the
    client's: arrival at the prefill pool to tokens from the decode pool)."""

    prefill: PoolPayload
    decode: PoolPayload
    transfer: TransferPayload
    exposed_transfer_s_mean: float | None
    prefill_pool: MetricsPayload


def disagg_predict_payload(dis: Disaggregated, sim: DisaggSim, t: Transfer) -> DisaggPredictPayload:
    mean = float(sim.transfer_s.mean()) if sim.transfer_s.size else None
    return DisaggPredictPayload(
        prefill=_pool("prefill", dis.prefill),
        decode=_pool("decode", dis.decode),
        transfer=_transfer(dis, t),
        exposed_transfer_s_mean=finite(mean),
        prefill_pool=metrics_payload(serving_metrics(sim.prefill)),
    )


class SplitPayload(Strict):
    """One prefill/decode split priced for the demand (steady-state estimate)."""

    label: str
    prefill: PoolPayload
    decode: PoolPayload
    num_gpus: int
    usd_per_hour: float | None
    meets_targets: bool
    miss: str | None
    ttft_p90_s: float | None
    tpot_p90_s: float | None
    e2e_p90_s: float | None
    prefill_utilization: float
    decode_batch: float
    transfer: TransferPayload


def _split(e: DisaggEvaluated) -> SplitPayload:
    op, at = e.at_demand.op, e.at_demand
    return SplitPayload(
        label=e.label(),
        prefill=_pool("prefill", e.disagg.prefill, e.prefill_rental, e.prefill_max_rate),
        decode=_pool("decode", e.disagg.decode, e.decode_rental, e.decode_max_rate),
        num_gpus=e.num_gpus,
        usd_per_hour=finite(e.usd_per_hour),
        meets_targets=e.meets,
        miss=e.miss or None,
        ttft_p90_s=finite(op.ttft_p90_s),
        tpot_p90_s=finite(op.tpot_p90_s),
        e2e_p90_s=finite(op.e2e_p90_s),
        prefill_utilization=at.prefill_utilization,
        decode_batch=at.decode_batch,
        transfer=_transfer(e.disagg, at.transfer),
    )


class DisaggPlanPayload(Strict):
    """Prefill/decode splits searched beside the co-located configurations."""

    wins: bool
    """Whether the best split beats the co-located recommendation at these targets."""
    verdict: str
    reasons: list[str]
    """The why, in numbers: the co-located choice and the best split."""
    best: SplitPayload | None
    ranked: list[SplitPayload]
    num_splits: int
    simulated: MetricsPayload | None
    """The simulator's check of the best split at the demand, after a warm-up."""
    simulated_note: str | None


def disagg_plan_payload(d: DisaggPlan, top: int) -> DisaggPlanPayload:
    return DisaggPlanPayload(
        wins=d.wins,
        verdict=d.verdict,
        reasons=d.reasons,
        best=_split(d.best) if d.best else None,
        ranked=[_split(e) for e in d.ranked[:top]],
        num_splits=len(d.ranked),
        simulated=metrics_payload(d.check.metrics) if d.check else None,
        simulated_note=d.check.note if d.check else None,
    )


def disagg_headline(d: DisaggPlan, colocated: list[str], colocated_meets: bool) -> list[str]:
    """The plan's headline with the split: it leads when it wins, else its verdict follows."""
    b = d.best
    if not d.wins or b is None:
        return [*colocated, d.verdict]
    op = b.at_demand.op
    price = f", ${b.usd_per_hour:,.2f}/hour" if b.usd_per_hour is not None else ""
    first = (
        f"Recommendation: disaggregated prefill/decode, {b.label()} = {b.num_gpus} GPUs{price}; TTFT p90 "
        f"{op.ttft_p90_s * 1e3:,.0f} ms, TPOT p90 {op.tpot_p90_s * 1e3:,.1f} ms (steady-state estimate)."
    )
    if not colocated_meets:
        return [first, d.verdict, "Co-located, no configuration meets the targets."]
    rest = [colocated[0].replace("Recommendation: ", "Co-located instead: ", 1), *colocated[1:]]
    return [first, d.verdict, *rest]
