"""The analytic steady state of one replica under continuous batching: what the planner's
search ranks with (the simulator then checks the best).

* decode step time ``d = t(b)`` at batch ``b`` and the time ``p(b)`` one prompt adds to a step
  that carries it (both interpolated from a few roofline evaluations: a prompt riding on a
  decode step shares its weight reads);
* prompts are gated into steps: those that arrive during a step go into the next one (as vLLM,
  SGLang and TensorRT-LLM schedule), so the number ``K`` of prompts in a step follows
  ``K' ~ Poisson(lam (d + K p))``: mean ``lam d / (1 - lam p)``, variance ``mean / (1 - (lam p)^2)``;
* TPOT: the mean step, ``d / (1 - lam p)``; ``b = lam osl TPOT`` (Little's law), solved by
  fixed-point iteration and capped by max sequences and KV capacity;
* TTFT (:func:`gated_ttft`): the rest of the step the request arrives in (length-biased) plus
  the next step, which carries it and every prompt that arrived with it; its p90 from the
  mean and variance (gamma approximation). Prompts longer than the token budget take several
  chunked steps, priced the same way per chunk.

The saturation knee: :meth:`SteadyState.capacity_per_s` is the rate at which prefill work or
the decode batch runs out; ``tests/test_steady_state.py`` holds the model to the simulator
within 10% on p90 TTFT from 10% to 95% of it, and the planner keeps :data:`KNEE_HEADROOM` below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from inferplan.perf.replica import Replica
from inferplan.perf.roofline import step_shape

__all__ = ["KNEE_HEADROOM", "TTFT_P90_WAITS", "Operating", "SteadyState", "gated_ttft"]

_BATCH_POINTS = (1, 4, 16, 64, 256, 1024)
#: The planner loads a replica to at most this share below its capacity (the knee): queues
#: there grow as 1 / (1 - load), and a few per cent of model error would move the knee past it.
KNEE_HEADROOM = 0.10
#: p90 of an M/D/1 queue's wait, in units of its mean wait (a prefill-only pool's queue).
TTFT_P90_WAITS = 2.3
_Z90 = 1.2816
_Z999 = 3.0902


@dataclass(frozen=True, slots=True)
class Operating:
    """Predicted steady state of one replica at ``rate_per_s``."""

    rate_per_s: float
    batch: float
    ttft_p90_s: float
    tpot_p90_s: float
    e2e_p90_s: float
    stable: bool
    tpot_mean_s: float = math.inf


_LOG_FACT = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, 4097)))])


def _count_pmf(mean: float, var: float) -> np.ndarray:
    """Probabilities of 0, 1, 2, ... for a count with this mean and variance: Poisson, or the
    negative binomial when over-dispersed (the tail beyond mean + 8 sd + 8 is dropped)."""
    size = min(int(mean + 8.0 * math.sqrt(max(var, mean, 1e-12)) + 9), 4096)
    n = np.arange(size)
    if mean <= 0:
        return np.asarray(n == 0, dtype=float)
    if var <= mean * 1.0001:
        pmf = np.exp(n * math.log(mean) - mean - _LOG_FACT[:size])
    else:
        r, q = mean * mean / (var - mean), mean / var
        log_ratios = np.log((n[:-1] + r) / (n[:-1] + 1) * (1.0 - q))
        log_pmf = np.concatenate([[0.0], np.cumsum(log_ratios)])  # in logs: no overflow at large means
        pmf = np.exp(log_pmf - log_pmf.max())
    return np.asarray(pmf / pmf.sum())


def step_lengths(d: float, p1: float, p2: float, size: int) -> np.ndarray:
    """``L_k``: a step with ``k`` prompts lasts ``d`` (none), ``d + p1`` (one: it hides the
    decode step's weight reads) and ``p2`` more for each further prompt."""
    k = np.arange(size, dtype=float)
    return np.where(k == 0, d, d + p1 + np.maximum(k - 1, 0) * p2)


def prompt_chain(rate: float, d: float, p1: float, p2: float) -> tuple[np.ndarray, np.ndarray]:
    """Stationary distribution of ``K``, the prompts a step carries, and the step lengths:
    prompts that arrive during a step go into the next, ``K' ~ Poisson(rate L_K)`` (power
    iteration on the chain, started from its negative-binomial approximation)."""
    rho = min(rate * p2, 0.995)
    mu = rate * (d + p1) / (1.0 - rho)
    pi = _count_pmf(mu, mu / (1.0 - rho * rho))
    size = len(pi) + 8
    pi = np.concatenate([pi, np.zeros(8)])
    lengths = step_lengths(d, p1, p2, size)
    lam = rate * lengths[:, None]
    n = np.arange(size)
    move = np.exp(n * np.log(np.maximum(lam, 1e-300)) - lam - _LOG_FACT[:size])
    move /= move.sum(axis=1, keepdims=True)
    for _ in range(40):
        pi = pi @ move
    return pi / pi.sum(), lengths


def gated_ttft(rate: float, d: float, p1: float, p2: float) -> tuple[float, float, float]:
    """(mean TTFT, p90 TTFT, mean step) for prompts gated into steps at ``rate``/s.

    ``K``, the prompts in a step, follows the chain of :func:`prompt_chain`. A request arrives in
    a step of ``L_k`` with the length-biased weight ``pi_k L_k / E[L]``, waits its uniform
    remainder ``R ~ U(0, L_k)``, then rides the next step with the ``N ~ Poisson(rate L_k)``
    prompts that arrived with it: ``TTFT = R + L_{1+N}``. The p90 by bisection on the exact
    mixture CDF."""
    pi, lengths = prompt_chain(rate, d, p1, p2)
    mean_step = float(np.dot(pi, lengths))
    w = pi * lengths / mean_step
    size = len(lengths)
    n = np.arange(size - 1)
    lam = rate * lengths[:, None]
    joint = w[:, None] * np.exp(n * np.log(np.maximum(lam, 1e-300)) - lam - _LOG_FACT[: size - 1])
    keep = joint > 1e-9 * joint.max()
    span = np.broadcast_to(lengths[:, None], joint.shape)[keep]
    ride = np.broadcast_to(lengths[None, 1:], joint.shape)[keep]
    weight = joint[keep]
    total = float(weight.sum())
    mean = float(np.dot(weight, span / 2 + ride)) / total
    lo, hi = float(ride.min()), float((span + ride).max())
    for _ in range(24):
        mid = (lo + hi) / 2
        if float(np.dot(weight, np.clip((mid - ride) / span, 0.0, 1.0))) < 0.9 * total:
            lo = mid
        else:
            hi = mid
    return mean, hi, mean_step


class SteadyState:
    """Analytic steady state of one replica serving requests of ``isl`` / ``osl`` tokens, of whose
    prompts ``cached_tokens`` are found in the prefix cache (issue 13: prefill computes the rest)."""

    def __init__(self, replica: Replica, isl: int, osl: int, cached_tokens: int = 0) -> None:
        cost, sched = replica.cost, replica.scheduler
        self.replica = replica
        ctx = isl + osl // 2
        kv_tokens = sched.kv_tokens / max(cost.pp, 1)
        self.max_batch = max(min(sched.max_num_seqs, kv_tokens / (isl + osl)), 0.0)
        points = [b for b in _BATCH_POINTS if b <= max(self.max_batch, 1)] or [1]
        if points[-1] < self.max_batch:
            points.append(int(self.max_batch))
        self.b_points = np.array(points, dtype=float)
        cached = min(max(cached_tokens, 0), isl - 1)  # issue 13: prefill computes the uncached rest
        fresh = isl - cached
        budget = sched.max_num_batched_tokens if sched.chunked_prefill else max(fresh, 1)
        self.chunks = max(math.ceil(fresh / max(budget, 1)), 1)
        chunk = math.ceil(fresh / self.chunks)
        step = replica.step_time_s
        # a decode step at batch b (speculation: verification of k + 1 tokens each and the drafter;
        # a sequence then emits ``tokens_per_step`` tokens a step)
        self.t_points = np.array([replica.decode_step_time_s(np.full(b, float(ctx))) for b in points])
        # a prompt's chunk riding on a decode step: the extra time it adds, and a second one's
        plain = np.array([step(step_shape([], [ctx] * b)) for b in points])
        one = np.array([step(step_shape([(chunk, isl - chunk)], [ctx] * b)) for b in points])
        two = np.array([step(step_shape([(chunk, isl - chunk)] * 2, [ctx] * b)) for b in points])
        self.p_points, self.p2_points = one - plain, two - one
        self.prefill_latency = sum(
            step(step_shape([(min(chunk, fresh - i * chunk), cached + i * chunk)], [])) for i in range(self.chunks)
        )
        overhead = replica.environment.step_time_s(replica.overhead_s, replica.overhead_s)
        # GPU time a prompt takes alone (a prefill-only pool): its chunks without the step overheads
        self.prefill_work = max(self.prefill_latency - self.chunks * overhead, 1e-9)
        self.per_step = replica.tokens_per_step
        self.osl = osl
        self.steps = osl / self.per_step  # decode steps a request takes
        self.pp = cost.pp

    def step(self, batch: float) -> float:
        """Decode step time at ``batch`` (0 gives the fixed part: weights and overhead)."""
        if batch <= 0.0:
            slope = (self.t_points[1] - self.t_points[0]) / 3.0 if len(self.t_points) > 1 else 0.0
            return float(self.t_points[0] - slope)
        return float(np.interp(max(batch, 1.0), self.b_points, self.t_points))

    def token_time(self, batch: float) -> float:
        """Decode time per output token at ``batch``: a step over the tokens it emits per sequence."""
        return self.step(batch) / self.per_step

    def chunk_time(self, batch: float) -> float:
        """Time one prompt chunk adds to a decode step at ``batch``."""
        return float(np.interp(max(batch, 1.0), self.b_points, self.p_points))

    def next_chunk_time(self, batch: float) -> float:
        """Time each further prompt chunk adds to a step that already carries one."""
        return float(np.interp(max(batch, 1.0), self.b_points, self.p2_points))

    def capacity_per_s(self) -> float:
        """Requests/s at which the replica saturates (the knee): the highest rate at which
        :meth:`at_rate` is stable, i.e. prompts take less than the whole of the steps and the
        batch, with its fluctuation (p99.9 of Poisson), fits the sequences and KV cache (bisection)."""
        b = max(self.max_batch, 1.0)
        hi = 1.05 * self.pp / max(self.chunks * self.chunk_time(b) + self.steps * self.step(b) / b, 1e-9)
        lo = 0.0
        for _ in range(30):
            mid = (lo + hi) / 2
            if self.max_batch >= 1 and self._solve(mid / self.pp) is not None:
                lo = mid
            else:
                hi = mid
        return lo

    def _solve(self, lam_v: float) -> tuple[float, float, float] | None:
        """(batch, mean TPOT, coefficient of variation of a request's TPOT) at ``lam_v``
        requests/s per virtual engine, or None when the batch outgrows the replica.

        The mean step is ``E[L] = (d + q (p1 - p2)) / (1 - lam p2)`` with ``q = P(K >= 1) =
        1 - exp(-lam E[L])`` (the first prompt of a step costs ``p1``, each further one ``p2``).
        A request's TPOT averages the steps of its own ``T = osl E[L]`` seconds, in which
        ``~Poisson(lam T)`` prompts arrive: the prompt share ``rho`` it sees has
        ``sd = rho / sqrt(lam T)``, so ``TPOT = E[L] (1 + cv^2)`` (Jensen), ``cv = sd / (1 - rho)``."""
        b = max(lam_v * self.steps * self.step(1.0), 1e-6)
        tpot = cv = 0.0
        rate = lam_v * self.chunks
        for _ in range(80):
            d, p1, p2 = self.step(b), self.chunk_time(b), self.next_chunk_time(b)
            rho = rate * p2
            if rho >= 0.98:
                return None
            mean_step = d / (1.0 - rho)
            for _ in range(4):
                mean_step = (d + (1.0 - math.exp(-rate * mean_step)) * (p1 - p2)) / (1.0 - rho)
            window = lam_v * self.steps * mean_step
            sd = rho / math.sqrt(max(window, 1e-9))
            cv = sd / (1.0 - rho)
            tpot = mean_step * (1.0 + cv * cv) / self.per_step
            nb = lam_v * self.osl * tpot
            # the batch must hold the mean number of requests and its fluctuation (M/G/inf:
            # Poisson, its p99.9 within the sequences and KV cache)
            if nb + _Z999 * math.sqrt(nb) > self.max_batch:
                return None
            if abs(nb - b) < 1e-4 * max(b, 1.0):
                return nb, tpot, cv
            b = nb
        return b, tpot, cv

    def at_rate(self, lam: float) -> Operating:
        """Steady state at ``lam`` requests/s (pipeline: ``pp`` interleaved virtual engines)."""
        lam_v = lam / self.pp
        solved = self._solve(lam_v) if self.max_batch >= 1 else None
        if solved is None:
            return Operating(lam, self.max_batch, math.inf, math.inf, math.inf, False)
        b, tpot, cv = solved
        d, p1, p2 = self.step(b), self.chunk_time(b), self.next_chunk_time(b)
        # a long prompt is gated chunk by chunk: its first chunk like a short prompt, then one
        # step per further chunk
        _, ttft_p90, mean_step = gated_ttft(lam_v * self.chunks, d, p1, p2)
        ttft_p90 += (self.chunks - 1) * mean_step + self.replica.deployment.engine.request_overhead_s
        tpot_p90 = tpot * (1.0 + _Z90 * cv)
        return Operating(lam, b, ttft_p90, tpot_p90, ttft_p90 + self.osl * tpot_p90, True, tpot)

    def at_concurrency(self, users: float) -> Operating:
        """Closed loop with ``users`` requests in flight on this replica."""
        lam = users / max(self.prefill_latency + self.steps * self.step(users), 1e-9)
        for _ in range(40):
            op = self.at_rate(lam)
            if not op.stable:
                lam *= 0.9
                continue
            new = users / max(op.e2e_p90_s - self.osl * (op.tpot_p90_s - op.tpot_mean_s), 1e-9)
            if abs(new - lam) < 1e-3 * lam:
                break
            lam = 0.5 * (lam + new)
        return self.at_rate(lam)
