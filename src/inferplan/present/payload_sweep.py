"""Payloads of ``bench sweep`` and ``runs compare``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from inferplan.present.payload import Payload, Strict

__all__ = ["BenchSweepPayload", "CompareColumn", "CompareRow", "RunsComparePayload", "SweepPointRow"]


class SweepPointRow(Strict):
    """One point of a sweep, read from its stored run."""

    run_id: int
    kind: str
    """synchronous (one request at a time), throughput (every request at once) or rate (Poisson)."""
    status: str
    offered_per_s: float | None
    """The Poisson rate asked for (null at the two ends)."""
    achieved_per_s: float
    """Requests completed per second."""
    goodput_per_s: float
    """Requests per second that met every target (without targets: every one that succeeded)."""
    ttft_p50_s: float | None
    ttft_p90_s: float | None
    tpot_p50_s: float | None
    tpot_p90_s: float | None
    itl_p50_s: float | None
    itl_p90_s: float | None
    e2e_p50_s: float | None
    e2e_p90_s: float | None
    output_tokens_per_s: float | None
    meets: bool | None
    """TTFT p90 and TPOT p90 within the targets (null without targets)."""


class BenchSweepPayload(Payload):
    """A sweep from one request at a time to saturation, and its knee: of the points whose
    goodput is within 95% of the most, the one offered the least load."""

    schema_id: Literal["inferplan.bench-sweep/1"] = Field(
        default="inferplan.bench-sweep/1", serialization_alias="schema"
    )
    db: str
    sweep_id: int
    status: str
    """complete, partial (some requests failed), failed or interrupted."""
    mode: str
    """rates (evenly spaced between the two ends) or bisect (the highest rate meeting the targets)."""
    targets: dict[str, float | None]
    """ttft_s, tpot_s, e2e_s: per-request targets of goodput; TTFT and TPOT p90 for meets."""
    points: list[SweepPointRow]
    knee_run_id: int | None
    knee_per_s: float | None
    """The rate at the knee: the Poisson rate offered (at the two ends, the requests per second reached)."""
    knee_goodput_per_s: float | None
    max_rate_meeting_targets_per_s: float | None
    """The highest rate (as knee_per_s) of a point whose TTFT and TPOT p90 met the targets."""


class CompareColumn(Strict):
    """One run (or a sweep's knee) in a comparison, with what it ran on."""

    ref: str
    """The run id, or s<ID> for a sweep (its knee point)."""
    run_id: int | None
    kind: str
    """serve, or the imported client: vllm-bench, guidellm, aiperf."""
    label: str
    """engine version, model, GPU and load, as read from the run."""
    engine: str | None
    version: str | None
    model: str | None
    gpu: str | None
    settings: dict[str, Any]
    """isl, osl, load (rate or concurrency), endpoint, client."""
    notes: list[str]
    """How this run's figures are defined where they differ from inferplan's."""


class CompareRow(Strict):
    """One figure in every compared run, and each one's difference from the first."""

    metric: str
    """e.g. ttft_p90_s, tpot_mean_s, output_tokens_per_s."""
    unit: str
    values: list[float | None]
    relative_to_first: list[float | None]
    """(value - first) / first; null where either is missing."""


class RunsComparePayload(Payload):
    schema_id: Literal["inferplan.runs-compare/1"] = Field(
        default="inferplan.runs-compare/1", serialization_alias="schema"
    )
    columns: list[CompareColumn]
    rows: list[CompareRow]
