"""Disaggregated prefill/decode, predicted: the KV transfer between the pools, the simulation of
both pools, and their analytic steady state (issue 14).

* Transfer: every request moves its prompt's KV, ``bytes = kv bytes per token x input tokens``
  (all layers, every KV head once per decode rank that needs it), from its prefill replica to its
  decode replica over ``min(prefill GPUs, decode GPUs)`` NICs of the pools' link in parallel:
  ``t = latency + bytes / (streams x bandwidth x efficiency)`` (the link's measured collective
  efficiency stands in for RDMA's). Only the part the engine does not overlap with the prefill is
  exposed (:func:`exposed_transfer_s`). Transfers do not contend with one another in the
  simulation; the steady state refuses a decode replica whose inbound link would be over
  :data:`MAX_LINK_UTILIZATION` busy.
* TTFT = queueing in the prefill pool + prefill + exposed transfer + the decode replica's first
  step (it computes the last prompt token, whose logits it samples, holding the rest of the KV);
  TPOT = the decode pool's step, with no prefill chunk in it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from inferplan.perf.replica import Replica, build_replica
from inferplan.perf.simulator import SimResult, simulate
from inferplan.perf.steady_state import TTFT_P90_WAITS, Operating, SteadyState
from inferplan.perf.workload import Requests
from inferplan.sizing.memory import kv_bytes_per_sequence
from inferplan.specs.disaggregation import Disaggregated
from inferplan.specs.model import ModelSpec
from inferplan.specs.parallelism import Parallelism
from inferplan.specs.precision import KvDtype

__all__ = [
    "MAX_LINK_UTILIZATION",
    "DisaggOperating",
    "DisaggSim",
    "DisaggSteadyState",
    "Transfer",
    "exposed_transfer_s",
    "kv_transfer_bytes",
    "prefill_alone_s",
    "simulate_disaggregated",
    "transfer",
]

#: The busiest a decode replica's inbound KV link may be at steady state.
MAX_LINK_UTILIZATION = 0.9


def kv_transfer_bytes(dis: Disaggregated, input_tokens: int) -> float:
    """Bytes of one prompt's KV the decode replica receives: per decode GPU (its share of the KV
    heads, every layer) times its GPUs."""
    d = dis.decode
    return _kv_bytes(d.model, input_tokens, d.kv_dtype, d.parallelism.tp)


@lru_cache(maxsize=4096)
def _kv_bytes(model: ModelSpec, input_tokens: int, kv: KvDtype, tp: int) -> float:
    return kv_bytes_per_sequence(model, input_tokens, kv, Parallelism(tp=tp), block_size=1) * tp


def exposed_transfer_s(latency_s: float, wire_s: float, prefill_s: float, units: int) -> float:
    """Transfer time left after the prefill ends. The KV is produced in ``units`` equal parts over
    the prefill (1: all at its end; chunks; layers) and sent in order over one link: the last
    part leaves at the end of the prefill if the link keeps up, else the link's backlog is what
    remains: ``latency + max(wire / units, wire - prefill x (units - 1) / units)``."""
    if units <= 1:
        return latency_s + wire_s
    return latency_s + max(wire_s / units, wire_s - prefill_s * (units - 1) / units)


@dataclass(frozen=True, slots=True)
class Transfer:
    """The KV transfer of one prompt length: bytes, time on the wire, and the exposed part."""

    num_bytes: float
    streams: int
    wire_s: float
    exposed_s: float


def transfer(dis: Disaggregated, input_tokens: int, prefill_s: float) -> Transfer:
    """The KV transfer of a prompt of ``input_tokens`` whose prefill takes ``prefill_s``."""
    link = dis.kv_link
    streams = min(dis.prefill.gpus_per_replica, dis.decode.gpus_per_replica)
    num_bytes = kv_transfer_bytes(dis, input_tokens)
    wire = num_bytes / (streams * link.bw_bytes_per_s * link.allreduce_bus_efficiency)
    mode = dis.overlap_mode
    budget = dis.prefill.engine.max_num_batched_tokens
    units = {"none": 1, "chunk": math.ceil(input_tokens / budget), "layer": dis.prefill.model.num_layers}[mode]
    return Transfer(num_bytes, streams, wire, exposed_transfer_s(link.latency_s, wire, prefill_s, units))


def _replicas(dis: Disaggregated) -> tuple[Replica, Replica]:
    return build_replica(dis.prefill.with_replicas(1)), build_replica(dis.decode.with_replicas(1))


@dataclass(frozen=True, slots=True)
class DisaggSim:
    """A simulation of both pools: the requests as the client sees them (``result``: arrival at
    the prefill pool, first token and finish from the decode pool, the decode pool's steps), each
    pool's own simulation and each request's exposed transfer."""

    result: SimResult
    prefill: SimResult
    decode: SimResult
    transfer_s: np.ndarray


def simulate_disaggregated(dis: Disaggregated, req: Requests, max_steps: int = 5_000_000) -> DisaggSim:
    """Serve ``req`` (open loop) on the prefill pool, move each prompt's KV, then decode on the
    decode pool. The prefill pool computes each prompt and its first token (which the decode pool
    computes again from the transferred KV, as vLLM's and SGLang's decode instances do)."""
    p_rep, d_rep = _replicas(dis)
    prompts = Requests(req.arrival_s, req.input_tokens, np.ones(len(req), dtype=np.int64))
    pre = simulate(p_rep, prompts, replicas=dis.prefill_replicas, max_steps=max_steps)
    # the prefill alone of each length: the overlap needs how long the prompt's own prefill took
    alone = {int(n): prefill_alone_s(p_rep, int(n)) for n in np.unique(req.input_tokens)}
    exposed = np.array([transfer(dis, int(n), alone[int(n)]).exposed_s for n in req.input_tokens])
    ready = pre.finish_s + exposed  # NaN where the prefill did not finish
    ok = np.isfinite(ready)
    decode_req = Requests(
        np.where(ok, ready, np.inf), req.input_tokens, req.output_tokens, np.asarray(req.input_tokens, dtype=np.int64)
    )
    dec = simulate(d_rep, decode_req, replicas=dis.decode_replicas, max_steps=max_steps)
    first = np.where(ok, dec.first_token_s, np.nan)
    finish = np.where(ok, dec.finish_s, np.nan)
    combined = replace(dec, arrival_s=np.asarray(req.arrival_s, dtype=float), first_token_s=first, finish_s=finish)
    return DisaggSim(combined, pre, dec, exposed)


def prefill_alone_s(replica: Replica, input_tokens: int) -> float:
    """One prompt's prefill on an idle replica (its chunks one after another)."""
    return SteadyState(replica, input_tokens, 1).prefill_latency


@dataclass(frozen=True, slots=True)
class DisaggOperating:
    """Steady state of both pools at one request rate (the whole demand): ``op`` as the client sees
    it, and what makes it: the prefill pool's utilisation and prefill latency, the KV transfer,
    the decode pool's batch and step, and the decode link's utilisation."""

    op: Operating
    prefill_utilization: float
    prefill_latency_s: float
    transfer: Transfer
    decode_batch: float
    decode_step_s: float
    link_utilization: float


class DisaggSteadyState:
    """Analytic steady state of a disaggregated deployment serving ``isl`` / ``osl`` requests: the
    prefill pool as M/D/1 queues, the decode pool as continuous batching without prefill (Little's
    law ``b = lam x osl x tpot``, ``tpot = t(b) / E``). ``parts``: each pool's replica's steady
    state, when already built (the search builds one per candidate and pairs them)."""

    def __init__(
        self, dis: Disaggregated, isl: int, osl: int, parts: tuple[SteadyState, SteadyState] | None = None
    ) -> None:
        self.dis, self.isl, self.osl = dis, isl, osl
        if parts is None:
            p_rep, d_rep = _replicas(dis)
            parts = SteadyState(p_rep, isl, osl), SteadyState(d_rep, isl, osl)
        self.prefill, self.decode = parts
        self.transfer = transfer(dis, isl, self.prefill.prefill_latency)

    def decode_at(self, rate_per_replica: float) -> tuple[float, float, bool]:
        """(batch, time per output token, stable) of one decode replica at this rate."""
        dec = self.decode
        b = max(rate_per_replica * self.osl * dec.token_time(1.0), 1e-6)
        for _ in range(60):
            nb = rate_per_replica * self.osl * dec.token_time(b)
            if nb > dec.max_batch:
                return dec.max_batch, dec.token_time(dec.max_batch), False
            if abs(nb - b) < 1e-3 * max(b, 1.0):
                b = nb
                break
            b = nb
        return b, dec.token_time(b), True

    def prefill_wait_p90_s(self, rate_per_replica: float) -> tuple[float, float]:
        """(p90 queueing delay, utilisation) of one prefill replica (M/D/1)."""
        rho = rate_per_replica * self.prefill.prefill_work
        if rho >= 0.98:
            return math.inf, rho
        return TTFT_P90_WAITS * rho / (2.0 * (1.0 - rho)) * self.prefill.prefill_work, rho

    def at(
        self, prefill_rate: float, decode_rate: float, decoded: tuple[float, float, bool] | None = None
    ) -> DisaggOperating:
        """Both pools at these per-replica rates (the demand / each pool's replicas); ``decoded``:
        :meth:`decode_at` of ``decode_rate`` when already known."""
        wait, rho = self.prefill_wait_p90_s(prefill_rate)
        batch, tpot, stable = decoded or self.decode_at(decode_rate)
        link = decode_rate * self.transfer.wire_s
        stable = stable and math.isfinite(wait) and link <= MAX_LINK_UTILIZATION
        first_step = tpot * self.decode.replica.tokens_per_step
        ttft = self.prefill.prefill_latency + wait + self.transfer.exposed_s + first_step
        rate = prefill_rate * self.dis.prefill_replicas
        if not stable:
            op = Operating(rate, batch, math.inf, math.inf, math.inf, False)
        else:
            op = Operating(rate, batch, ttft, tpot, ttft + self.osl * tpot, True)
        return DisaggOperating(op, rho, self.prefill.prefill_latency, self.transfer, batch, tpot, link)

    def at_rate(self, rate_per_s: float) -> DisaggOperating:
        """The whole demand, split evenly over each pool's replicas."""
        return self.at(rate_per_s / self.dis.prefill_replicas, rate_per_s / self.dis.decode_replicas)
