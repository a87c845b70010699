"""What speculative decoding costs and gives, step by step (issue 14).

One speculative decode step of a batch of ``B`` sequences with ``k`` draft tokens:

* the drafter proposes: a draft model runs ``k`` sequential decode passes of its own (its roofline,
  at its own TP); an EAGLE / EAGLE-3 head or an MTP module runs ``k`` passes of one layer and its LM
  head; n-gram lookup runs on the CPU, overlapped with the GPU (priced as free);
* the target verifies: one pass over ``B x (k + 1)`` tokens, each sequence a chunk of ``k + 1``
  queries attending its context (:func:`decode_part`): at small B the weights are read once for
  all of them (memory-bound, nearly free), at large B the GEMMs are compute-bound and cost k + 1
  times a plain step;
* each sequence emits ``E = 1 + sum_i prod_{j<=i} a_j`` tokens on average.

The per-sequence token rate with speculation is ``E / (t_verify(B) + t_draft(B))`` against
``1 / t_decode(B)`` without; :func:`crossover_batch` finds the batch past which speculation stops
paying. Drafter passes run inside the engine's step: they pay per-layer launch costs, not the
engine's per-step scheduling overhead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from inferplan.perf.roofline import StepCostModel, StepShape, roofline_time_s
from inferplan.sizing.drafter import drafter_deployment
from inferplan.specs.deployment import Deployment

if TYPE_CHECKING:
    from inferplan.perf.replica import Replica

__all__ = ["Crossover", "SpeculativeCost", "crossover_batch", "decode_part", "decode_shape", "speedup_at"]

DecodePart = tuple[int, int, float, float, float, float]


def decode_part(contexts: np.ndarray, window: int | None, k: int = 0) -> DecodePart:
    """(tokens, sampled, attention pairs, pairs within the window, KV reads, KV reads within the
    window) of the decoding sequences of one step. Each sequence of context ``c`` runs ``k + 1``
    queries (the last token and ``k`` drafts; k = 0 without speculation): query j attends ``c + j``
    keys, so pairs = sum_j (c + j) and the KV read once is ``c + k`` tokens."""
    n = len(contexts)
    total = float(contexts.sum())
    pairs = (k + 1) * total + n * k * (k + 1) / 2.0
    kv = total + n * k
    if not window:
        return n * (k + 1), n * (k + 1), pairs, 0.0, kv, 0.0
    pairs_w = sum(float(np.minimum(contexts + j, window).sum()) for j in range(k + 1))
    kv_w = float(np.minimum(contexts + k, window).sum())
    return n * (k + 1), n * (k + 1), pairs, pairs_w, kv, kv_w


def decode_shape(contexts: np.ndarray, window: int | None, k: int = 0) -> StepShape:
    """A step of decoding sequences only (see :func:`decode_part`)."""
    return StepShape(*decode_part(contexts, window, k))


class SpeculativeCost:
    """The drafter's price and the expected tokens per step of one deployment with speculation."""

    def __init__(self, dep: Deployment) -> None:
        spec = dep.speculation
        assert spec is not None
        self.method = spec.method
        self.k = spec.num_tokens
        self.tokens_per_step = spec.expected_tokens
        drafter = drafter_deployment(dep)
        self.drafter: StepCostModel | None = StepCostModel(drafter) if drafter else None
        # a head's input projection (``extra_params``, 16-bit, replicated): EAGLE-3 fuses the target's
        # three hidden states once per step, EAGLE-1 and MTP project [embedding, hidden] every pass
        self.fc_params = float(drafter.model.extra_params) if drafter and spec.draft is None else 0.0
        self.fc_passes = 1 if spec.method == "eagle3" else self.k

    def drafter_time_s(self, contexts: np.ndarray) -> float:
        """``k`` sequential drafter passes over the batch, plus a head's input projections (0 for
        n-gram and an empty batch)."""
        if self.drafter is None or not len(contexts):
            return 0.0
        d = self.drafter
        one = d.time_s(decode_shape(contexts, None)) - d.step_overhead
        fc = roofline_time_s(
            2.0 * len(contexts) * self.fc_params, 2.0 * self.fc_params, d.gemm_peak * d.gemm_max_eff, d.mem_bw
        )
        return self.k * one + self.fc_passes * fc


@dataclass(frozen=True, slots=True)
class Crossover:
    """Where speculation stops paying: the per-sequence speedup at batch 1, the first batch at
    which it falls below 1 (None: it pays up to ``max_batch``; 1: it never pays), at context
    ``context_tokens``."""

    speedup_at_1: float
    batch: int | None
    max_batch: int
    context_tokens: int


def speedup_at(replica: Replica, batch: int, context_tokens: int) -> float:
    """Per-sequence token rate with speculation over without, at ``batch`` sequences of context
    ``context_tokens``: ``E * t_decode(B) / (t_verify(B) + t_draft(B))``."""
    spec = replica.speculation
    if spec is None:
        return 1.0
    ctx = np.full(batch, float(context_tokens))
    plain = replica.step_time_s(decode_shape(ctx, replica.scheduler.window))
    speculative = replica.decode_step_time_s(ctx)
    return spec.tokens_per_step * plain / speculative


def crossover_batch(replica: Replica, context_tokens: int, max_batch: int | None = None) -> Crossover:
    """The smallest batch at which speculation lowers the per-sequence token rate (bisection:
    the speedup falls as the verification's k + 1 tokens per sequence turn the GEMMs compute-bound)."""
    top = max_batch or replica.scheduler.max_num_seqs
    first = speedup_at(replica, 1, context_tokens)
    if first < 1.0:
        return Crossover(first, 1, top, context_tokens)
    if speedup_at(replica, top, context_tokens) >= 1.0:
        return Crossover(first, None, top, context_tokens)
    lo, hi = 1, top  # pays at lo, not at hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if speedup_at(replica, mid, context_tokens) >= 1.0:
            lo = mid
        else:
            hi = mid
    return Crossover(first, hi, top, context_tokens)
