"""One prediction: simulate a workload on a deployment and explain one prefill and one
decode step operator by operator. The CLI's ``predict`` and the planner call this. With
speculative decoding the prediction also finds the crossover batch; a disaggregated deployment
(:func:`predict_disaggregated`) is simulated pool by pool."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inferplan.errors import InputError
from inferplan.perf.disaggregation import DisaggSim, Transfer, prefill_alone_s, simulate_disaggregated, transfer
from inferplan.perf.metrics import ServingMetrics, Slo, serving_metrics
from inferplan.perf.replica import Replica, build_replica
from inferplan.perf.roofline import OpTime, step_shape
from inferplan.perf.sim_result import FeatureStats
from inferplan.perf.simulator import simulate
from inferplan.perf.speculative import Crossover, crossover_batch, decode_shape
from inferplan.perf.workload import Requests, Workload, make_requests
from inferplan.specs.deployment import Deployment
from inferplan.specs.disaggregation import Disaggregated

__all__ = ["Prediction", "StepBreakdown", "predict", "predict_disaggregated", "step_breakdowns"]


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
    """The metrics and step breakdowns; ``replica`` is the decode pool's when disaggregated."""

    replica: Replica
    metrics: ServingMetrics
    prefill: StepBreakdown
    decode: StepBreakdown
    crossover: Crossover | None = None  # speculation: where it stops paying
    disagg: Disaggregated | None = None
    disagg_sim: DisaggSim | None = None
    transfer: Transfer | None = None  # the KV transfer at the mean input length
    features: FeatureStats | None = None  # issue 13: prefix-cache hits, adapter loads

    @property
    def deployment(self) -> Deployment:
        return self.replica.deployment


def step_breakdowns(replica: Replica, isl: int, osl: int, batch: int) -> tuple[StepBreakdown, StepBreakdown]:
    """A prefill step of the first chunk of an ``isl``-token prompt, and a decode step of
    ``batch`` sequences at the mean context of a request (``isl + osl / 2``); with speculation the
    decode step verifies k + 1 tokens per sequence and its drafter is one more row."""
    chunk = min(isl, replica.scheduler.max_num_batched_tokens)
    ctx = isl + osl // 2
    cost = replica.cost
    prefill_ops = cost.breakdown(step_shape([(chunk, 0)], [])) + _feature_ops(replica, chunk, 1)
    prefill = StepBreakdown("prefill", chunk, 0, prefill_ops)
    contexts = np.full(batch, float(ctx))
    ops = cost.breakdown(decode_shape(contexts, replica.scheduler.window, replica.draft_tokens))
    if replica.speculation:
        s = replica.speculation
        ops.append(OpTime(f"drafter_{s.method}", 0.0, 0.0, replica.drafter_time_s(contexts), "drafter", s.k))
    ops += _feature_ops(replica, batch * (1 + replica.draft_tokens), batch)
    return prefill, StepBreakdown("decode", batch, ctx, ops)


def _feature_ops(replica: Replica, tokens: int, sequences: int) -> list[OpTime]:
    """Issue 13's rows: the adapters' kernels and the offloaded weights read over the host link."""
    ops = []
    if replica.lora is not None:
        t = replica.lora.step_time_s(tokens, replica.lora.expected_adapters(sequences))
        ops.append(OpTime("lora_adapters", 0.0, 0.0, t, "lora"))
    if replica.stream_s:
        offloaded = replica.memory.offloaded_weights_bytes * replica.cost.pp
        ops.append(OpTime("offloaded_weights_host_read", 0.0, offloaded, replica.stream_s, "host link"))
    return ops


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
    isl, osl = int(workload.input_tokens.mean), int(workload.output_tokens.mean)
    prefill, decode = step_breakdowns(replica, isl, osl, batch)
    cross = crossover_batch(replica, isl + osl // 2) if replica.speculation else None
    return Prediction(replica, metrics, prefill, decode, cross, features=sim.features)


def predict_disaggregated(
    dis: Disaggregated,
    workload: Workload,
    *,
    slo: Slo | None = None,
    requests: Requests | None = None,
    max_steps: int = 5_000_000,
) -> Prediction:
    """Simulate ``workload`` on the prefill pool, the KV transfer and the decode pool; the prefill
    step comes from the prefill pool's replica, the decode step from the decode pool's."""
    if workload.arrivals.kind == "concurrency":
        raise InputError(
            "a disaggregated prediction needs arrival times: give --rate, --offline or --trace (a closed loop of "
            "--concurrency users is not simulated across two pools)"
        )
    reqs = requests if requests is not None else make_requests(workload)
    sim = simulate_disaggregated(dis, reqs, max_steps)
    metrics = serving_metrics(sim.result, slo)
    isl, osl = int(workload.input_tokens.mean), int(workload.output_tokens.mean)
    p_rep = build_replica(dis.prefill.with_replicas(1))
    d_rep = build_replica(dis.decode.with_replicas(1))
    prefill, _ = step_breakdowns(p_rep, isl, osl, 1)
    _, decode = step_breakdowns(d_rep, isl, osl, max(round(metrics.mean_batch_size), 1))
    cross = crossover_batch(d_rep, isl + osl // 2) if d_rep.speculation else None
    t = transfer(dis, isl, prefill_alone_s(p_rep, isl))
    return Prediction(d_rep, metrics, prefill, decode, cross, dis, sim, t)
