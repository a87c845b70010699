"""Payloads of ``predict`` (``inferplan.predict/1``) and ``validate`` (``inferplan.validate/1``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from inferplan.perf.predict import Prediction, StepBreakdown
from inferplan.perf.roofline import OpTime
from inferplan.perf.validate import Outcome, summarize
from inferplan.perf.workload import Workload
from inferplan.present.payload import Payload, Strict, finite
from inferplan.present.payload_disagg import DisaggPredictPayload, disagg_predict_payload
from inferplan.present.payload_metrics import ErrorBandPayload, MetricsPayload, error_bands_payload, metrics_payload
from inferplan.present.payload_sizing import ParallelismPayload
from inferplan.present.payload_speculation import SpeculationPayload, speculation_payload
from inferplan.present.payload_workload import WorkloadFeaturesPayload, workload_features_payload
from inferplan.specs.calibration_profile import CalibrationProfile

__all__ = ["PredictPayload", "ValidatePayload", "op_rows", "predict_payload", "validate_payload"]


class OperatorRow(Strict):
    operator: str
    count: int
    flops: float
    bytes: float
    time_s: float
    share: float
    bound: str


class StepPayload(Strict):
    tokens: int | None = None
    batch: int | None = None
    context_tokens: int | None = None
    time_s: float
    operators: list[OperatorRow]


class WorkloadPayload(Strict):
    isl: int
    osl: int
    arrivals: str
    rate_per_s: float
    concurrency: int
    num_requests: int
    seed: int


class KvCachePayload(Strict):
    blocks_per_replica: float
    tokens_per_replica: float


class PredictPayload(Payload):
    schema_id: Literal["inferplan.predict/1"] = Field(default="inferplan.predict/1", serialization_alias="schema")
    model: str
    gpu: str
    engine: str
    precision: str
    kv_dtype: str
    parallelism: ParallelismPayload
    tp_link: str | None
    workload: WorkloadPayload
    kv_cache: KvCachePayload
    metrics: MetricsPayload
    prefill_step: StepPayload
    decode_step: StepPayload
    assumptions: dict[str, Any]
    error_bands: dict[str, ErrorBandPayload] = Field(
        description="The measured error of each kind of figure (ttft, tpot, e2e, throughput)."
    )
    notes: list[str] = Field(description="What resolving the names assumed.")
    speculation: SpeculationPayload | None = None
    """Speculative decoding (the decode pool's, when disaggregated), with its crossover batch."""
    disaggregation: DisaggPredictPayload | None = None
    """The prefill and decode pools and the KV transfer (then the top-level deployment is the decode pool)."""
    workload_features: WorkloadFeaturesPayload | None = None
    """Issue 13: lengths from data or a stated distribution, sessions and shared prompts with the prefix
    cache's hits, LoRA adapters, CPU offload (null: none of them)."""


def op_rows(ops: list[OpTime]) -> list[OperatorRow]:
    total = sum(op.time_s for op in ops) or 1.0
    return [
        OperatorRow(
            operator=op.name,
            count=op.count,
            flops=op.flops,
            bytes=op.bytes,
            time_s=op.time_s,
            share=op.time_s / total,
            bound=op.bound,
        )
        for op in ops
    ]


def _step(b: StepBreakdown) -> StepPayload:
    if b.kind == "prefill":
        return StepPayload(tokens=b.tokens, time_s=b.time_s, operators=op_rows(b.ops))
    return StepPayload(batch=b.tokens, context_tokens=b.context_tokens, time_s=b.time_s, operators=op_rows(b.ops))


def predict_payload(p: Prediction, wl: Workload, profile: CalibrationProfile | None = None) -> PredictPayload:
    dep = p.deployment
    par = dep.parallelism
    sched = p.replica.scheduler
    return PredictPayload(
        model=dep.model.name,
        gpu=dep.gpu.id,
        engine=dep.engine.name,
        precision=dep.precision.name,
        kv_dtype=dep.kv_dtype.name,
        parallelism=ParallelismPayload(tp=par.tp, pp=par.pp, dp=par.dp, num_gpus=par.num_gpus, ep=par.ep),
        tp_link=dep.tp_link.id if par.tp > 1 else None,
        workload=WorkloadPayload(
            isl=wl.input_tokens.mean,
            osl=wl.output_tokens.mean,
            arrivals=wl.arrivals.kind,
            rate_per_s=wl.arrivals.rate_per_s,
            concurrency=wl.arrivals.concurrency,
            num_requests=p.metrics.num_requests,
            seed=wl.seed,
        ),
        kv_cache=KvCachePayload(blocks_per_replica=sched.kv_blocks, tokens_per_replica=sched.kv_tokens),
        metrics=metrics_payload(p.metrics),
        prefill_step=_step(p.prefill),
        decode_step=_step(p.decode),
        assumptions=dep.environment.assumptions(),
        error_bands=error_bands_payload(profile, on_cpu=dep.gpu.is_cpu),
        notes=list(dep.notes),
        speculation=speculation_payload(dep.speculation, p.replica.memory.drafter_weights_bytes, p.crossover),
        disaggregation=(
            disagg_predict_payload(p.disagg, p.disagg_sim, p.transfer)
            if p.disagg and p.disagg_sim and p.transfer
            else None
        ),
        workload_features=workload_features_payload(p.replica, wl, p.features, p.metrics.mean_batch_size),
    )


class ValidationRow(Strict):
    id: str
    source: str
    model: str
    gpu: str
    gpu_id: str | None = Field(description="The catalog GPU the row's name resolved to.")
    engine: str | None = Field(description="The engine profile the row's engine column resolved to.")
    metric: str
    statistic: str | None = Field(description="mean, p50, p90, p95, p99, or value for throughputs.")
    category: str
    measured: float
    predicted: float | None
    ape_pct: float | None
    skipped: str | None = Field(description="Why the row was not predicted: the column and the reason.")
    assumed: list[str] = Field(description="What the row left unstated and the model assumed.")


class GroupRow(Strict):
    group: list[str]
    count: int
    median_ape_pct: float | None
    p90_ape_pct: float | None
    skipped: int = Field(0, description="Rows of this group that were not predicted.")


class SkippedRow(Strict):
    id: str
    reason: str


class ValidatePayload(Payload):
    schema_id: Literal["inferplan.validate/1"] = Field(default="inferplan.validate/1", serialization_alias="schema")
    rows: list[ValidationRow]
    by_category: list[GroupRow]
    by_category_statistic: list[GroupRow] = Field(description="Per category, metric and percentile.")
    by_gpu: list[GroupRow] = Field(description="Per category and resolved GPU.")
    by_engine: list[GroupRow] = Field(description="Per category and resolved engine profile.")
    by_source_gpu_metric: list[GroupRow]
    skipped: list[SkippedRow]
    assumed_rows: int = Field(description="Predicted rows that needed an assumption (listed per row).")


def validate_payload(outcomes: list[Outcome]) -> ValidatePayload:
    def groups(by: tuple[str, ...]) -> list[GroupRow]:
        return [
            GroupRow(
                group=list(g.key),
                count=g.count,
                median_ape_pct=finite(g.median_ape),
                p90_ape_pct=finite(g.p90_ape),
                skipped=g.skipped,
            )
            for g in summarize(outcomes, by)
        ]

    return ValidatePayload(
        rows=[
            ValidationRow(
                id=o.row.id,
                source=o.row["source_key"],
                model=o.row["model"],
                gpu=o.row["gpu"],
                gpu_id=o.gpu or None,
                engine=o.engine or None,
                metric=o.row["metric"],
                statistic=o.statistic or None,
                category=o.category,
                measured=o.measured,
                predicted=finite(o.predicted),
                ape_pct=finite(o.ape),
                skipped=o.skipped or None,
                assumed=list(o.assumptions),
            )
            for o in outcomes
        ],
        by_category=groups(("category",)),
        by_category_statistic=groups(("category", "metric", "statistic")),
        by_gpu=groups(("category", "gpu_id")),
        by_engine=groups(("category", "engine_profile")),
        by_source_gpu_metric=groups(("source_key", "gpu", "metric")),
        skipped=[SkippedRow(id=o.row.id, reason=o.skipped) for o in outcomes if o.skipped],
        assumed_rows=sum(1 for o in outcomes if o.predicted is not None and o.assumptions),
    )
