"""One prediction: simulate a workload on a deployment and explain one prefill and one
decode step operator by operator. The CLI's ``predict`` and the planner call this."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inferplan.perf.metrics import ServingMetrics, Slo, serving_metrics
from inferplan.perf.replica import Built, build
from inferplan.perf.roofline import OpTime, step_shape
from inferplan.perf.simulator import simulate_replicas
from inferplan.perf.workload import Requests, Workload, make_requests
from inferplan.sizing.memory import Parallelism
from inferplan.specs.engines import EngineProfile
from inferplan.specs.environment import EnvironmentProfile
from inferplan.specs.hardware import GpuSpec
from inferplan.specs.model import ModelSpec
from inferplan.specs.precision import KvDtype, Precision

__all__ = ["Prediction", "op_rows", "predict"]


@dataclass(frozen=True, slots=True)
class Prediction:
    built: Built
    metrics: ServingMetrics
    prefill_ops: list[OpTime]
    decode_ops: list[OpTime]
    prefill_tokens: int
    decode_batch: int
    decode_context: int
    environment: EnvironmentProfile

    @property
    def num_gpus(self) -> int:
        return self.built.deployment.parallelism.num_gpus


def predict(
    model: ModelSpec,
    gpu: GpuSpec,
    precision: Precision,
    kv_dtype: KvDtype,
    par: Parallelism,
    engine: EngineProfile,
    workload: Workload,
    *,
    env: EnvironmentProfile,
    slo: Slo | None = None,
    requests: Requests | None = None,
    max_steps: int = 5_000_000,
) -> Prediction:
    """Simulate ``workload`` (or explicit ``requests``) on ``dp`` replicas of the deployment;
    pipeline stages run as ``pp`` interleaved virtual engines sharing the KV cache."""
    built = build(model, gpu, precision, kv_dtype, par, engine, env=env)
    reqs = requests if requests is not None else make_requests(workload)
    sched = built.scheduler
    if par.pp > 1:
        from dataclasses import replace

        sched = replace(
            sched,
            kv_blocks=sched.kv_blocks / par.pp,
            max_num_seqs=max(sched.max_num_seqs // par.pp, 1),
        )
    concurrency = workload.arrivals.concurrency if workload.arrivals.kind == "concurrency" else None
    sim = simulate_replicas(
        built.cost, sched, reqs, par.dp * par.pp, concurrency=concurrency, env=env, max_steps=max_steps
    )
    metrics = serving_metrics(sim, slo)
    isl = int(workload.input_tokens.mean)
    osl = int(workload.output_tokens.mean)
    chunk = min(isl, sched.max_num_batched_tokens)
    batch = max(round(metrics.mean_batch_size), 1)
    ctx = isl + osl // 2
    return Prediction(
        built=built,
        metrics=metrics,
        prefill_ops=built.cost.breakdown(step_shape([(chunk, 0)], [])),
        decode_ops=built.cost.breakdown(step_shape([], [ctx] * batch)),
        prefill_tokens=chunk,
        decode_batch=batch,
        decode_context=ctx,
        environment=env,
    )


def op_rows(ops: list[OpTime]) -> list[dict[str, Any]]:
    total = sum(op.time_s for op in ops) or 1.0
    return [
        {
            "operator": op.name,
            "count": op.count,
            "flops": op.flops,
            "bytes": op.bytes,
            "time_s": op.time_s,
            "share": op.time_s / total,
            "bound": op.bound,
        }
        for op in ops
    ]
