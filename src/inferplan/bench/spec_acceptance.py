"""The acceptance of speculative decoding measured on a server, from the counters vLLM exposes on
``/metrics`` and ``bench serve`` records beside each run (``bench/telemetry.py``):
``vllm:spec_decode_num_drafts_total``, ``..._num_draft_tokens_total`` and
``..._num_accepted_tokens_total`` (vLLM 0.33, ``vllm/v1/spec_decode/metrics.py``).

Over a run (last sample minus first): acceptance length ``tau = 1 + accepted / drafts``, draft
length ``k = draft tokens / drafts``, acceptance rate ``accepted / draft tokens``, and the one
conditional per-position rate ``a`` with ``a + a^2 + ... + a^k = tau - 1``: what ``predict`` and
``plan`` take as ``--spec-acceptance``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from inferplan.errors import BenchmarkError
from inferplan.specs.speculation import rate_for_acceptance_length

__all__ = ["COUNTERS", "MeasuredAcceptance", "measured_acceptance"]

#: inferplan's names of the three counters (bench/telemetry.py's WATCHED map).
COUNTERS = ("spec_drafts", "spec_draft_tokens", "spec_accepted_tokens")


@dataclass(frozen=True, slots=True)
class MeasuredAcceptance:
    """Speculative decoding as one run measured it."""

    drafts: float
    draft_tokens: float
    accepted_tokens: float
    num_speculative_tokens: int
    acceptance_length: float
    acceptance_rate: float
    per_position_rate: float

    def option(self) -> str:
        """The ``--spec-acceptance`` value that reproduces the measurement."""
        return f"{self.per_position_rate:.3f}"


def _span(samples: Iterable[tuple[float, str, float]]) -> dict[str, float]:
    """Each counter's increase between its first and last sample."""
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for _, name, value in sorted(samples, key=lambda s: s[0]):
        if name in COUNTERS:
            first.setdefault(name, value)
            last[name] = value
    return {name: last[name] - first[name] for name in last}


def measured_acceptance(samples: Iterable[tuple[float, str, float]]) -> MeasuredAcceptance:
    """The acceptance a run's telemetry ``(t_s, name, value)`` samples show (``ResultsStore.telemetry``)."""
    delta = _span(samples)
    drafts, drafted, accepted = (delta.get(name, 0.0) for name in COUNTERS)
    if drafts <= 0 or drafted <= 0:
        raise BenchmarkError(
            "the run recorded no speculative drafts: was the server started with --speculative-config, and did "
            "bench serve reach its /metrics?"
        )
    if not 0 <= accepted <= drafted:
        raise BenchmarkError(f"the counters disagree: {accepted:g} accepted of {drafted:g} drafted tokens")
    k = max(round(drafted / drafts), 1)
    length = 1.0 + accepted / drafts
    rate = rate_for_acceptance_length(min(length, k + 1.0), k)
    return MeasuredAcceptance(drafts, drafted, accepted, k, length, accepted / drafted, rate)
