"""Serving metrics as payload parts (shared by ``predict``, ``plan`` and the benchmarks)."""

from __future__ import annotations

from inferplan.perf.metrics import Percentiles, ServingMetrics
from inferplan.present.payload import Strict, finite

__all__ = ["MetricsPayload", "PercentilesPayload", "SloPayload", "metrics_payload", "percentiles_payload"]


class PercentilesPayload(Strict):
    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None


class SloPayload(Strict):
    ttft_s: float | None
    tpot_s: float | None
    e2e_s: float | None


class MetricsPayload(Strict):
    """Latency percentiles (seconds), throughput and goodput of a simulated or measured run."""

    num_requests: int
    num_completed: int
    duration_s: float | None
    ttft_s: PercentilesPayload
    tpot_s: PercentilesPayload
    itl_s: PercentilesPayload
    e2e_s: PercentilesPayload
    request_throughput_per_s: float | None
    output_token_throughput_per_s: float | None
    total_token_throughput_per_s: float | None
    goodput_requests_per_s: float | None
    mean_batch_size: float | None
    mean_kv_usage: float | None
    num_preemptions: int
    slo: SloPayload


def percentiles_payload(p: Percentiles) -> PercentilesPayload:
    return PercentilesPayload(mean=finite(p.mean), p50=finite(p.p50), p90=finite(p.p90), p99=finite(p.p99))


def metrics_payload(m: ServingMetrics) -> MetricsPayload:
    return MetricsPayload(
        num_requests=m.num_requests,
        num_completed=m.num_completed,
        duration_s=finite(m.duration_s),
        ttft_s=percentiles_payload(m.ttft_s),
        tpot_s=percentiles_payload(m.tpot_s),
        itl_s=percentiles_payload(m.itl_s),
        e2e_s=percentiles_payload(m.e2e_s),
        request_throughput_per_s=finite(m.request_throughput_per_s),
        output_token_throughput_per_s=finite(m.output_token_throughput_per_s),
        total_token_throughput_per_s=finite(m.total_token_throughput_per_s),
        goodput_requests_per_s=finite(m.goodput_requests_per_s),
        mean_batch_size=finite(m.mean_batch_size),
        mean_kv_usage=finite(m.mean_kv_usage),
        num_preemptions=m.num_preemptions,
        slo=SloPayload(ttft_s=m.slo.ttft_s, tpot_s=m.slo.tpot_s, e2e_s=m.slo.e2e_s),
    )
