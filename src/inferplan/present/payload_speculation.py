"""Speculative decoding as a payload part (``fit``, ``predict`` and ``plan``): the figures assumed,
their source, and (predict, plan) the batch past which speculation stops paying."""

from __future__ import annotations

from inferplan.perf.speculative import Crossover
from inferplan.present.payload import Strict, finite
from inferplan.specs.speculation import Speculation

__all__ = ["CrossoverPayload", "SpeculationPayload", "speculation_payload"]


class CrossoverPayload(Strict):
    """Where speculation stops paying, from the step roofline (decode steps only)."""

    context_tokens: int
    """Context of every sequence the sweep prices."""
    speedup_at_batch_1: float | None
    """Per-sequence token rate with speculation over without, one sequence."""
    crossover_batch: int | None
    """First batch at which speculation lowers the per-sequence token rate (null: it pays up to max_batch)."""
    max_batch: int
    """The largest batch swept (the engine's max sequences)."""


class SpeculationPayload(Strict):
    """Speculative decoding of the deployment."""

    method: str
    """vLLM's method name: draft_model, eagle, eagle3, mtp or ngram."""
    num_speculative_tokens: int
    """Draft tokens per step (k)."""
    acceptance: list[float]
    """Conditional acceptance of each draft position."""
    expected_tokens_per_step: float
    """E = 1 + sum_i prod_(j<=i) a_j: tokens each sequence emits per verification step."""
    source: str
    """Where the acceptance comes from (a citation, or 'given')."""
    draft_model: str | None
    """The draft model (draft_model only)."""
    drafter_id: str | None
    """What the engine loads as the drafter (a draft model or an EAGLE head), when known."""
    draft_tensor_parallel_size: int | None
    """The drafter's TP (null: the target's)."""
    drafter_weights_bytes_per_gpu: int | None = None
    """The drafter's weights on each GPU of the target."""
    crossover: CrossoverPayload | None = None


def speculation_payload(
    s: Speculation | None, drafter_bytes: float | None = None, crossover: Crossover | None = None
) -> SpeculationPayload | None:
    if s is None:
        return None
    cross = (
        CrossoverPayload(
            context_tokens=crossover.context_tokens,
            speedup_at_batch_1=finite(crossover.speedup_at_1),
            crossover_batch=crossover.batch,
            max_batch=crossover.max_batch,
        )
        if crossover
        else None
    )
    return SpeculationPayload(
        method=s.method,
        num_speculative_tokens=s.num_tokens,
        acceptance=list(s.acceptance),
        expected_tokens_per_step=s.expected_tokens,
        source=s.source,
        draft_model=s.draft.name if s.draft else None,
        drafter_id=s.draft_id,
        draft_tensor_parallel_size=s.draft_tp,
        drafter_weights_bytes_per_gpu=int(drafter_bytes) if drafter_bytes is not None else None,
        crossover=cross,
    )
