"""Payloads of the benchmark commands: ``bench serve``, ``bench self-check``, ``bench gpu``,
``runs``, ``runs show`` and ``calibrate``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from inferplan.present.payload import Payload, Strict

__all__ = [
    "AutoCalibrationPayload",
    "BenchGpuPayload",
    "BenchServePayload",
    "CalibrationPayload",
    "MeasurementRow",
    "PredictionRowPayload",
    "RunRow",
    "RunSummary",
    "RunSummaryPayload",
    "RunsPayload",
    "SelfCheckFigure",
    "SelfCheckPayload",
    "SelfCheckPoint",
    "ServePoint",
]


class PercentileSummary(Strict):
    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None


class LagQuantiles(Strict):
    p50: float | None
    p99: float | None
    max: float | None


class ClientLags(Strict):
    """The client's own delays during the run (what it could add to a measured time)."""

    loop_lag_s: LagQuantiles
    """How late the client's event loop ran a timer (a chunk arriving then waits as long)."""
    send_lag_s: LagQuantiles
    """How late requests were written after their scheduled time."""
    median_output_tokens: float | None


class ScrapeSummary(Strict):
    samples: int
    """Server /metrics samples recorded."""
    failed_scrapes: int
    """Scrapes that failed (each bounded in time; three in a row end the scraping)."""
    error: str | None
    """The last scrape failure, or why the server's /metrics was not used."""


class StorageSummary(Strict):
    written: int
    """Records and telemetry samples committed to the database during the run."""
    spilled: int
    """Entries the database could not take in time, written to the spill file beside it."""
    lost: int
    """Entries that could be written neither to the database nor to the spill file."""


class PrefixCacheCounters(Strict):
    """The server's prefix-cache counters over the run (read before its first request and after its
    last): vLLM's vllm:prefix_cache_queries / _hits, SGLang's prompt_tokens / cached_tokens."""

    queried_tokens: float
    hit_tokens: float
    hit_rate: float | None
    external_hit_tokens: float | None = None
    """Hits in a KV connector's tier (vLLM's host-memory offloading)."""


class WorkerSummary(Strict):
    """One Ray worker of a distributed run."""

    worker: int
    host: str
    assigned: int
    """Requests of the schedule given to it."""
    reported: int
    """Records it handed back (sent requests; the rest were never sent, or were in flight when it died)."""
    status: str
    """finished, stopped (interrupted), failed (its load raised), died (its process or node), killed
    (no answer after being stopped)."""
    error: str | None


class RunSummary(Strict):
    """What a run measured: every sent request counted once, as succeeded, failed or cancelled."""

    sent: int
    succeeded: int
    failed: int
    cancelled: int = 0
    """Requests in flight when the run was interrupted (kept with their partial timings)."""
    failures: dict[str, int]
    """Failed requests by outcome: http_<code>, empty, early_end, aborted, malformed, protocol,
    connection, connect_timeout, first_byte_timeout, idle_timeout, timeout."""
    duration_s: float | None
    ttft_s: PercentileSummary
    tpot_s: PercentileSummary
    itl_s: PercentileSummary
    e2e_s: PercentileSummary
    """Scheduled send to the last content chunk."""
    request_throughput_per_s: float | None
    output_token_throughput_per_s: float | None
    total_token_throughput_per_s: float | None
    goodput_requests_per_s: float | None
    output_tokens_from_usage: bool
    content_chunks: int = 0
    """Content chunks received (one or more tokens each), over every sent request."""
    send_lag_p99_s: float | None
    first_failure: str | None
    slo: dict[str, float | None]
    warning: str | None = None
    """Set when the client's own delays could be over 10% of a metric at p50 or p99."""
    client: ClientLags | None = None
    telemetry: ScrapeSummary | None = None
    storage: StorageSummary | None = None
    prefix_cache: PrefixCacheCounters | None = None
    """Issue 13: the hit rate the server reported for this run (null: it exposes no such counters)."""
    workers: list[WorkerSummary] | None = None
    """With --ray: each Ray worker's share and how it ended."""


class ServePoint(Strict):
    run_id: int
    arrivals: str
    rate_per_s: float
    concurrency: int
    status: str
    """complete (every request succeeded), partial (some failed), failed (none succeeded)."""
    summary: RunSummary
    telemetry: bool
    spill_file: str | None = None
    """JSON-lines file beside the database holding what the database could not take in time;
    the next command that opens the database writes it in."""


class BenchServePayload(Payload):
    schema_id: Literal["inferplan.bench-serve/1"] = Field(
        default="inferplan.bench-serve/1", serialization_alias="schema"
    )
    db: str
    points: list[ServePoint]


class SelfCheckFigure(Strict):
    """One metric at one percentile: what the client measured, what the server's own stamps
    give, and the difference, which is the client's share."""

    metric: str
    """ttft, itl, tpot or e2e."""
    percentile: str
    """p50, p99 or max."""
    measured_s: float | None
    server_s: float | None
    client_s: float | None


class SelfCheckPoint(Strict):
    concurrency: int
    requests: int
    succeeded: int
    figures: list[SelfCheckFigure]
    receive_delay_s: LagQuantiles
    """Server's send of a chunk to the client's stamp of it, over every content chunk."""
    send_lag_s: LagQuantiles
    loop_lag_s: LagQuantiles
    wall_s: float | None
    chunks_per_s: float | None = None
    """Content chunks the client stamped per second of the point."""
    kept_up: bool | None = None
    """Whether the client's share of ITL at p99 stayed within 10% of the server's gap between tokens."""


class SelfCheckPayload(Payload):
    schema_id: Literal["inferplan.self-check/1"] = Field(default="inferplan.self-check/1", serialization_alias="schema")
    event_loop: str
    token_delay_s: float
    """The local server's gap between tokens."""
    sustained_chunks_per_s: float | None = None
    """What one client process sustains: the most chunks/s of the points at which it kept up
    (None: at none). Stored in the results database; bench serve warns against it."""
    points: list[SelfCheckPoint]


class RunRow(Strict):
    id: int
    kind: str
    status: str
    started_at: str
    model: str | None
    url: str | None
    num_requests: int
    sweep_id: int | None = None
    """The sweep (bench sweep) this run is a point of."""


class RunsPayload(Payload):
    schema_id: Literal["inferplan.runs/1"] = Field(default="inferplan.runs/1", serialization_alias="schema")
    runs: list[RunRow]


class RunSummaryPayload(Payload):
    schema_id: Literal["inferplan.run-summary/1"] = Field(
        default="inferplan.run-summary/1", serialization_alias="schema"
    )
    id: int
    kind: str
    status: str
    config: dict[str, Any]
    machine: dict[str, Any]
    summary: RunSummary
    stored_summary: dict[str, Any] | None
    telemetry_samples: int


class MeasurementRow(Strict):
    name: str
    value: float | None
    unit: str
    params: dict[str, Any]


class BenchGpuPayload(Payload):
    schema_id: Literal["inferplan.bench-gpu/1"] = Field(default="inferplan.bench-gpu/1", serialization_alias="schema")
    run_id: int
    device: dict[str, Any]
    measurements: list[MeasurementRow]


class CalibrationPayload(Payload):
    schema_id: Literal["inferplan.calibration/1"] = Field(
        default="inferplan.calibration/1", serialization_alias="schema"
    )
    name: str
    path: str
    kernels: dict[str, float]
    engine_overrides: dict[str, float]
    measured_matmul_tflops: dict[str, float]
    measured_mem_bw_gb_s: float | None
    fitted_on: list[str]
    error_before: float | None
    error_after: float | None


class PredictionRowPayload(Payload):
    """One metric of one measured run, predicted before and after calibration."""

    run: str = Field(description="The load point: concurrency or request rate, prompt/output tokens.")
    metric: str = Field(description="ttft_s, tpot_s (medians, seconds) or output_tok_s (output tokens per second).")
    measured: float = Field(description="What the server did.")
    uncalibrated: float = Field(description="The prediction with the catalog's parameters.")
    calibrated: float = Field(description="The prediction with the fitted parameters.")


class AutoCalibrationPayload(Payload):
    """``calibrate --auto``: the runs measured, the profile fitted, what changed, what remains."""

    schema_id: Literal["inferplan.auto-calibration/1"] = Field(
        default="inferplan.auto-calibration/1", serialization_alias="schema"
    )
    profile: CalibrationPayload = Field(description="The saved profile.")
    run_ids: list[int] = Field(description="The serving runs measured and stored for the fit.")
    before: dict[str, float] = Field(description="Each fitted parameter's value before calibration.")
    rows: list[PredictionRowPayload] = Field(description="Each measured run's metrics, predicted before and after.")
