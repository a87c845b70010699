"""Serving metrics from a simulation (or a benchmark), with vLLM bench's definitions:
TTFT = first token - arrival; TPOT = (E2E - TTFT) / (output tokens - 1), first token
excluded; ITL = gaps between consecutive tokens of a request; E2E = finish - arrival."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from inferplan.perf.simulator import SimResult

__all__ = ["Percentiles", "ServingMetrics", "Slo", "output_tokens_in_window", "percentiles", "serving_metrics"]


@dataclass(frozen=True, slots=True)
class Percentiles:
    mean: float
    p50: float
    p90: float
    p99: float

    def as_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "p50": self.p50, "p90": self.p90, "p99": self.p99}


@dataclass(frozen=True, slots=True)
class Slo:
    """Per-request targets for goodput (seconds; None = no target)."""

    ttft_s: float | None = None
    tpot_s: float | None = None
    e2e_s: float | None = None


def percentiles(values: np.ndarray, weights: np.ndarray | None = None) -> Percentiles:
    """Mean and percentiles; with ``weights`` each value counts that many times."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return Percentiles(float("nan"), float("nan"), float("nan"), float("nan"))
    if weights is None:
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        return Percentiles(float(values.mean()), float(p50), float(p90), float(p99))
    w = np.asarray(weights, dtype=float)
    keep = w > 0
    values, w = values[keep], w[keep]
    if values.size == 0:
        return Percentiles(float("nan"), float("nan"), float("nan"), float("nan"))
    idx = np.argsort(values)
    v, cw = values[idx], np.cumsum(w[idx])
    total = cw[-1]

    def q(p: float) -> float:
        return float(v[min(int(np.searchsorted(cw, p / 100 * total)), len(v) - 1)])

    return Percentiles(float(np.average(values, weights=w)), q(50), q(90), q(99))


@dataclass(frozen=True, slots=True)
class ServingMetrics:
    num_requests: int
    num_completed: int
    duration_s: float
    ttft_s: Percentiles
    tpot_s: Percentiles
    itl_s: Percentiles
    e2e_s: Percentiles
    request_throughput_per_s: float
    output_token_throughput_per_s: float
    total_token_throughput_per_s: float
    goodput_requests_per_s: float
    mean_batch_size: float
    mean_kv_usage: float
    num_preemptions: int
    slo: Slo = field(default_factory=Slo)

    def as_dict(self) -> dict[str, object]:
        return {
            "num_requests": self.num_requests,
            "num_completed": self.num_completed,
            "duration_s": self.duration_s,
            "ttft_s": self.ttft_s.as_dict(),
            "tpot_s": self.tpot_s.as_dict(),
            "itl_s": self.itl_s.as_dict(),
            "e2e_s": self.e2e_s.as_dict(),
            "request_throughput_per_s": self.request_throughput_per_s,
            "output_token_throughput_per_s": self.output_token_throughput_per_s,
            "total_token_throughput_per_s": self.total_token_throughput_per_s,
            "goodput_requests_per_s": self.goodput_requests_per_s,
            "mean_batch_size": self.mean_batch_size,
            "mean_kv_usage": self.mean_kv_usage,
            "num_preemptions": self.num_preemptions,
            "slo": {"ttft_s": self.slo.ttft_s, "tpot_s": self.slo.tpot_s, "e2e_s": self.slo.e2e_s},
        }


def output_tokens_in_window(sim: SimResult, start_s: float, end_s: float) -> float:
    """Output tokens generated between ``start_s`` and ``end_s``: each request's first token at
    its first-token time, the rest spread evenly until it finishes (unfinished requests count
    up to the end of the simulation's records, which is when they stopped)."""
    ok = np.isfinite(sim.first_token_s)
    first, out = sim.first_token_s[ok], sim.output_tokens[ok].astype(float)
    finish = np.where(np.isfinite(sim.finish_s[ok]), sim.finish_s[ok], first)
    firsts = float(np.sum((first >= start_s) & (first < end_s)))
    span = np.maximum(finish - first, 1e-12)
    overlap = np.clip(np.minimum(finish, end_s) - np.maximum(first, start_s), 0.0, None)
    rest = np.where(finish > first, (out - 1) * overlap / span, 0.0)
    return firsts + float(rest.sum())


def serving_metrics(
    sim: SimResult, slo: Slo | None = None, window: tuple[float, float] | None = None
) -> ServingMetrics:
    """Latency percentiles, throughput and goodput of a finished simulation; with ``window``
    (start, end seconds) only the requests that arrived in it count, and throughput is what
    was generated in it (a warm-up excluded)."""
    slo = slo or Slo()
    if window is not None:
        return _windowed(sim, slo, window)
    ok = np.isfinite(sim.finish_s)
    ttft = sim.first_token_s[ok] - sim.arrival_s[ok]
    e2e = sim.finish_s[ok] - sim.arrival_s[ok]
    out = sim.output_tokens[ok]
    multi = out > 1
    tpot = (e2e[multi] - ttft[multi]) / (out[multi] - 1)
    start = float(np.min(sim.arrival_s)) if sim.arrival_s.size else 0.0
    end = float(np.max(sim.finish_s[ok])) if ok.any() else start
    duration = max(end - start, 1e-12)
    good = np.ones(int(ok.sum()), dtype=bool)
    if slo.ttft_s is not None:
        good &= ttft <= slo.ttft_s
    if slo.e2e_s is not None:
        good &= e2e <= slo.e2e_s
    if slo.tpot_s is not None:
        tpot_all = np.zeros(len(out))
        tpot_all[multi] = tpot
        good &= tpot_all <= slo.tpot_s
    rep = sim.repeats
    busy = float(np.sum(sim.step_s * rep))
    return ServingMetrics(
        num_requests=len(sim.arrival_s),
        num_completed=int(ok.sum()),
        duration_s=duration,
        ttft_s=percentiles(ttft),
        tpot_s=percentiles(tpot),
        itl_s=percentiles(sim.step_s, sim.step_decode_tokens * rep),
        e2e_s=percentiles(e2e),
        request_throughput_per_s=ok.sum() / duration,
        output_token_throughput_per_s=float(out.sum()) / duration,
        total_token_throughput_per_s=float(out.sum() + sim.input_tokens[ok].sum()) / duration,
        goodput_requests_per_s=float(good.sum()) / duration,
        mean_batch_size=float(np.average(sim.step_num_seqs, weights=sim.step_s * rep)) if busy else 0.0,
        mean_kv_usage=float(np.average(sim.step_kv_fraction, weights=sim.step_s * rep)) if busy else 0.0,
        num_preemptions=sim.num_preemptions,
        slo=slo,
    )


def _windowed(sim: SimResult, slo: Slo, window: tuple[float, float]) -> ServingMetrics:
    start, end = window
    inside = (sim.arrival_s >= start) & (sim.arrival_s < end)
    sub = SimResult(
        sim.arrival_s[inside],
        sim.first_token_s[inside],
        sim.finish_s[inside],
        sim.input_tokens[inside],
        sim.output_tokens[inside],
        sim.step_s,
        sim.step_decode_tokens,
        sim.step_num_seqs,
        sim.step_kv_fraction,
        sim.num_preemptions,
        sim.step_repeat,
    )
    m = serving_metrics(sub, slo)
    span = max(end - start, 1e-12)
    out_tokens = output_tokens_in_window(sim, start, end)
    done = np.isfinite(sim.finish_s) & (sim.finish_s >= start) & (sim.finish_s < end)
    in_tokens = float(sim.input_tokens[done].sum())
    return replace(
        m,
        duration_s=span,
        request_throughput_per_s=float(done.sum()) / span,
        output_token_throughput_per_s=out_tokens / span,
        total_token_throughput_per_s=(out_tokens + in_tokens) / span,
        goodput_requests_per_s=m.goodput_requests_per_s * m.duration_s / span,
    )
