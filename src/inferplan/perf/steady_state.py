"""The analytic steady state of one replica under continuous batching: what the planner's
search ranks with (the simulator then checks the best).

* prefill occupancy per request ``P`` (chunks of the token budget, interleaved with decode),
* decode step time ``t(b)`` at batch ``b`` (interpolated from a few roofline evaluations),
* at ``lam`` requests/s: ``rho_p = lam * P``, ``tpot = t(b) / (1 - rho_p)``,
  ``b = lam * osl * tpot`` (Little's law), solved by fixed-point iteration, capped by
  max sequences and KV capacity;
* TTFT = prefill service + queueing: ``W = rho / (2 (1 - rho)) * P`` (M/D/1), p90 ~ + 2.3 W.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from inferplan.perf.replica import Replica
from inferplan.perf.roofline import step_shape

__all__ = ["TPOT_P90_OVER_MEAN", "TTFT_P90_WAITS", "Operating", "SteadyState"]

_BATCH_POINTS = (1, 4, 16, 64, 256, 1024)
#: p90 of an M/D/1 queue's wait, in units of its mean wait.
TTFT_P90_WAITS = 2.3
#: p90 of TPOT over its mean: steps carrying prefill chunks slow some tokens.
TPOT_P90_OVER_MEAN = 1.1


@dataclass(frozen=True, slots=True)
class Operating:
    """Predicted steady state of one replica at ``rate_per_s``."""

    rate_per_s: float
    batch: float
    ttft_p90_s: float
    tpot_p90_s: float
    e2e_p90_s: float
    stable: bool


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
        # decode time per output token at batch b (speculation: a step emits E tokens per sequence)
        per_token = replica.tokens_per_step
        self.t_points = np.array([replica.decode_step_time_s(np.full(b, float(ctx))) / per_token for b in points])
        budget = sched.max_num_batched_tokens
        chunks, left = [], isl - min(max(cached_tokens, 0), isl - 1)
        while left > 0:
            chunks.append((min(left, budget), isl - left))
            left -= budget
        self.prefill_latency = sum(replica.step_time_s(step_shape([c], [])) for c in chunks)
        self.chunks = len(chunks)
        overhead = replica.environment.step_time_s(replica.overhead_s, replica.overhead_s)
        self.prefill_work = max(self.prefill_latency - len(chunks) * overhead, 1e-9)
        self.osl = osl
        self.pp = cost.pp

    def step(self, batch: float) -> float:
        """Decode step time at ``batch`` (0 gives the fixed part: weights and overhead)."""
        if batch <= 0.0:
            slope = (self.t_points[1] - self.t_points[0]) / 3.0 if len(self.t_points) > 1 else 0.0
            return float(self.t_points[0] - slope)
        return float(np.interp(max(batch, 1.0), self.b_points, self.t_points))

    def capacity_per_s(self) -> float:
        """Requests/s at which the replica saturates (prefill work plus decode at the largest batch)."""
        per_request = self.prefill_work + self.osl * self.step(self.max_batch) / max(self.max_batch, 1.0)
        return self.pp / max(per_request, 1e-9)

    def at_rate(self, lam: float) -> Operating:
        """Steady state at ``lam`` requests/s (pipeline: ``pp`` interleaved virtual engines)."""
        lam_v = lam / self.pp
        rho_p = lam_v * self.prefill_work
        if rho_p >= 0.98 or self.max_batch < 1:
            return Operating(lam, self.max_batch, math.inf, math.inf, math.inf, False)
        b = max(lam_v * self.osl * self.step(1.0), 1e-6)
        stable = True
        for _ in range(60):
            tpot = self.step(b) / (1.0 - rho_p)
            nb = lam_v * self.osl * tpot
            if nb > self.max_batch:
                stable = False
                b = self.max_batch
                break
            if abs(nb - b) < 1e-3 * max(b, 1.0):
                b = nb
                break
            b = nb
        tpot = self.step(b) / (1.0 - rho_p)
        if not stable:
            return Operating(lam, b, math.inf, math.inf, math.inf, False)
        # prompts queue only behind other prompts (chunked prefill schedules them first);
        # each prefill chunk also carries the running decode batch
        wait = rho_p / (2.0 * (1.0 - rho_p)) * self.prefill_work
        service = self.prefill_latency + self.chunks * (self.step(b) - self.step(0.0))
        ttft_p90 = service + self.step(b) + TTFT_P90_WAITS * wait
        tpot_p90 = tpot * TPOT_P90_OVER_MEAN
        return Operating(lam, b, ttft_p90, tpot_p90, ttft_p90 + self.osl * tpot_p90, True)

    def at_concurrency(self, users: float) -> Operating:
        """Closed loop with ``users`` requests in flight on this replica."""
        lam = users / max(self.prefill_latency + self.osl * self.step(users), 1e-9)
        for _ in range(40):
            op = self.at_rate(lam)
            if not op.stable:
                lam *= 0.9
                continue
            new = users / max(op.e2e_p90_s / TPOT_P90_OVER_MEAN, 1e-9)
            if abs(new - lam) < 1e-3 * lam:
                break
            lam = 0.5 * (lam + new)
        return self.at_rate(lam)
