"""Payloads of the benchmark commands: ``bench serve``, ``bench self-check``, ``bench gpu``,
``runs``, ``runs show`` and ``calibrate``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from inferplan.present.payload import Payload, Strict

__all__ = [
    "BenchGpuPayload",
    "BenchServePayload",
    "CalibrationPayload",
    "MeasurementRow",
    "RunRow",
    "RunSummary",
    "RunSummaryPayload",
    "RunsPayload",
    "SelfCheckPayload",
    "ServePoint",
]


class PercentileSummary(Strict):
    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None


class RunSummary(Strict):
    """What a run measured: every sent request counted once, as succeeded or failed."""

    sent: int
    succeeded: int
    failed: int
    failures: dict[str, int]
    duration_s: float | None
    ttft_s: PercentileSummary
    tpot_s: PercentileSummary
    itl_s: PercentileSummary
    e2e_s: PercentileSummary
    request_throughput_per_s: float | None
    output_token_throughput_per_s: float | None
    total_token_throughput_per_s: float | None
    goodput_requests_per_s: float | None
    output_tokens_from_usage: bool
    send_lag_p99_s: float | None
    first_failure: str | None
    slo: dict[str, float | None]
    warning: str | None = None


class ServePoint(Strict):
    run_id: int
    arrivals: str
    rate_per_s: float
    concurrency: int
    summary: RunSummary
    telemetry: bool


class BenchServePayload(Payload):
    schema_id: Literal["inferplan.bench-serve/1"] = Field(
        default="inferplan.bench-serve/1", serialization_alias="schema"
    )
    db: str
    points: list[ServePoint]


class SelfCheckPayload(Payload):
    schema_id: Literal["inferplan.self-check/1"] = Field(default="inferplan.self-check/1", serialization_alias="schema")
    concurrency: int
    requests: int
    succeeded: int
    client_ttft_p50_s: float | None
    client_ttft_p99_s: float | None
    client_ttft_p99_including_ramp_s: float | None
    event_loop: str
    send_lag_p99_s: float | None
    wall_s: float | None


class RunRow(Strict):
    id: int
    kind: str
    status: str
    started_at: str
    model: str | None
    url: str | None
    num_requests: int


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
