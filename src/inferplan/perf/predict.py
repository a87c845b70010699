"""One prediction: simulate a workload on a deployment and explain one prefill and one
decode step operator by operator. The CLI's ``predict`` and the planner call this."""

from __future__ import annotations

from dataclasses import dataclass

from inferplan.perf.metrics import ServingMetrics, Slo, serving_metrics
from inferplan.perf.replica import Replica, build_replica
from inferplan.perf.roofline import OpTime, step_shape
from inferplan.perf.simulator import simulate
from inferplan.perf.workload import Requests, Workload, make_requests
from inferplan.specs.deployment import Deployment

__all__ = ["Prediction", "StepBreakdown", "predict", "step_breakdowns"]


@dataclass(frozen=True, slots=True)
class StepBreakdown:
    """One engine step priced operator by operator."""

    kind: str  # prefill or decode
    tokens: int  # prefill chunk tokens, or the decode batch
    context_tokens: int
    ops: list[OpTime]

    @property
    def time_s(self) -> float:
        return sum(op.time_s for op in self.ops)


@dataclass(frozen=True, slots=True)
class Prediction:
    replica: Replica
    metrics: ServingMetrics
    prefill: StepBreakdown
    decode: StepBreakdown

    @property
    def deployment(self) -> Deployment:
        return self.replica.deployment


def step_breakdowns(replica: Replica, isl: int, osl: int, batch: int) -> tuple[StepBreakdown, StepBreakdown]:
    """A prefill step of the first chunk of an ``isl``-token prompt, and a decode step of
    ``batch`` sequences at the mean context of a request (``isl + osl / 2``)."""
    chunk = min(isl, replica.scheduler.max_num_batched_tokens)
    ctx = isl + osl // 2
    cost = replica.cost
    prefill = StepBreakdown("prefill", chunk, 0, cost.breakdown(step_shape([(chunk, 0)], [])))
    decode = StepBreakdown("decode", batch, ctx, cost.breakdown(step_shape([], [ctx] * batch)))
    return prefill, decode


def predict(
    dep: Deployment,
    workload: Workload,
    *,
    slo: Slo | None = None,
    requests: Requests | None = None,
    max_steps: int = 5_000_000,
) -> Prediction:
    """Simulate ``workload`` (or explicit ``requests``) on ``dp`` replicas of the deployment."""
    replica = build_replica(dep)
    reqs = requests if requests is not None else make_requests(workload)
    concurrency = workload.arrivals.concurrency if workload.arrivals.kind == "concurrency" else None
    sim = simulate(replica, reqs, replicas=dep.parallelism.dp, concurrency=concurrency, max_steps=max_steps)
    metrics = serving_metrics(sim, slo)
    batch = max(round(metrics.mean_batch_size), 1)
    prefill, decode = step_breakdowns(replica, int(workload.input_tokens.mean), int(workload.output_tokens.mean), batch)
    return Prediction(replica, metrics, prefill, decode)
