"""A plan question: the one validated request model that ``plan``, ``report``, ``cost`` and the
web API share (:class:`PlanQuestion`), and the demand and targets it resolves into.

Every limit comes from :mod:`inferplan.limits`; a refusal is one line that names the field
and the CLI option, e.g. ``isl (--isl): Input should be less than or equal to 10000000``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from inferplan.errors import InputError
from inferplan.limits import (
    MAX_BUDGET_USD_PER_HOUR,
    MAX_CONCURRENCY,
    MAX_CONFIG_CHARS,
    MAX_E2E_S,
    MAX_GPU_CHOICES,
    MAX_INPUT_TOKENS,
    MAX_OUTPUT_TOKENS,
    MAX_PRICE_FILE_BYTES,
    MAX_RATE_PER_S,
    MAX_SPECULATIVE_TOKENS,
    MAX_TPOT_S,
    MAX_TTFT_S,
)
from inferplan.plan.workload_question import NO_TRAFFIC, WORKLOAD_OPTION_NAMES, Traffic, WorkloadQuestion

__all__ = ["OPTION_NAMES", "Demand", "PlanQuestion", "Targets", "question_from", "validation_message"]

#: The CLI option of each field, named in every refusal so both entry points say the same.
OPTION_NAMES = {
    "model": "MODEL",
    "isl": "--isl",
    "osl": "--osl",
    "rate_per_s": "--rate",
    "concurrency": "--concurrency",
    "ttft_ms": "--ttft",
    "tpot_ms": "--tpot",
    "e2e_s": "--e2e",
    "min_output_tokens_per_s": "--min-throughput",
    "budget_usd_per_hour": "--budget",
    "gpus": "--gpus",
    "dtypes": "--dtypes",
    "kv_dtypes": "--kv-dtypes",
    "tp": "--tp",
    "pp": "--pp",
    "engine": "--engine",
    "environment": "--env",
    "env_set": "--env-set",
    "calibration": "--calibration",
    "prices_yaml": "--prices",
    "cost_set": "--cost-set",
    "hours_fraction": "--hours-fraction",
    "peak_to_mean": "--peak-to-mean",
    "rank": "--rank",
    "top": "--top",
    "verify": "--verify",
    "spec_method": "--spec",
    "spec_tokens": "--spec-tokens",
    "spec_acceptance": "--spec-acceptance",
    "spec_model": "--spec-model",
    "spec_draft_tp": "--spec-draft-tp",
    "disaggregation": "--disagg",
    "kv_link": "--kv-link",
    "kv_overlap": "--kv-overlap",
}

Name = Annotated[str, Field(min_length=1, max_length=64)]
Setting = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z_]+$")]


@dataclass(frozen=True, slots=True)
class Targets:
    """p90 latency targets (seconds), minimum output tokens/s, budget (USD per hour)."""

    ttft_p90_s: float | None = None
    tpot_p90_s: float | None = None
    e2e_p90_s: float | None = None
    min_output_tokens_per_s: float | None = None
    max_usd_per_hour: float | None = None

    def exceeded(self, ttft_s: float, tpot_s: float, e2e_s: float) -> list[tuple[str, float, float]]:
        """(option name, value, limit) for every p90 latency target that the values miss."""
        return [
            (name, value, limit)
            for name, value, limit in (
                ("ttft", ttft_s, self.ttft_p90_s),
                ("tpot", tpot_s, self.tpot_p90_s),
                ("e2e", e2e_s, self.e2e_p90_s),
            )
            if limit is not None and value > limit
        ]


@dataclass(frozen=True, slots=True)
class Demand:
    """The workload: mean lengths and a request rate or a number of concurrent users; ``traffic``
    (issue 13): sessions, shared prompts, a dataset's lengths (isl and osl are then per turn)."""

    isl: int
    osl: int
    rate_per_s: float | None = None
    concurrency: int | None = None
    traffic: Traffic = NO_TRAFFIC

    def __post_init__(self) -> None:
        if (self.rate_per_s is None) == (self.concurrency is None):
            raise InputError("give exactly one of a request rate or a concurrency")
        if self.rate_per_s is not None and not 0 < self.rate_per_s <= MAX_RATE_PER_S:
            raise InputError(f"request rate must be in (0, {MAX_RATE_PER_S:g}], got {self.rate_per_s}")
        if self.concurrency is not None and not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise InputError(f"concurrency must be between 1 and {MAX_CONCURRENCY:,}, got {self.concurrency}")
        if not (1 <= self.isl <= MAX_INPUT_TOKENS and 1 <= self.osl <= MAX_OUTPUT_TOKENS):
            raise InputError(f"input tokens must be 1-{MAX_INPUT_TOKENS:,} and output tokens 1-{MAX_OUTPUT_TOKENS:,}")

    @property
    def context_tokens(self) -> int:
        """The longest context a request reaches (a session's last turn)."""
        return self.traffic.context_tokens(self.isl, self.osl)

    @property
    def prompt_tokens(self) -> int:
        """The mean prompt (with a session's conversation so far and a shared prompt)."""
        return self.traffic.prompt_tokens(self.isl, self.osl)

    @property
    def output_tokens_per_s(self) -> float | None:
        """The output tokens/s the demand asks for (None for a closed loop of users)."""
        return self.rate_per_s * self.osl if self.rate_per_s is not None else None


class PlanQuestion(BaseModel):
    """What to plan for. Give ``model`` (a catalog name; on the command line also a path or
    hub id) or ``config_json`` (the text of a config.json), and ``rate_per_s`` or
    ``concurrency`` (neither: 1 request/s)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    model: str | None = Field(None, min_length=1, max_length=500, description="Catalog name or hub id.")
    config_json: str | None = Field(None, max_length=MAX_CONFIG_CHARS, description="Pasted config.json text.")
    model_name: str = Field("pasted-model", min_length=1, max_length=100, pattern=r"^[\w.\- ]+$")
    isl: int = Field(1000, ge=1, le=MAX_INPUT_TOKENS, description="Input tokens per request.")
    osl: int = Field(200, ge=1, le=MAX_OUTPUT_TOKENS, description="Output tokens per request.")
    rate_per_s: float | None = Field(None, gt=0, le=MAX_RATE_PER_S, description="Requests per second.")
    concurrency: int | None = Field(None, ge=1, le=MAX_CONCURRENCY, description="Concurrent users.")
    ttft_ms: float | None = Field(None, gt=0, le=MAX_TTFT_S * 1e3, description="TTFT p90 target, ms.")
    tpot_ms: float | None = Field(None, gt=0, le=MAX_TPOT_S * 1e3, description="TPOT p90 target, ms.")
    e2e_s: float | None = Field(None, gt=0, le=MAX_E2E_S, description="End-to-end p90 target, s.")
    min_output_tokens_per_s: float | None = Field(None, gt=0, le=1e9, description="Minimum output tokens/s.")
    budget_usd_per_hour: float | None = Field(None, gt=0, le=MAX_BUDGET_USD_PER_HOUR)
    gpus: list[Name] = Field(default_factory=list, max_length=MAX_GPU_CHOICES, description="GPU ids; none: all.")
    dtypes: list[Name] = Field(default_factory=list, max_length=16, description="Weight precisions; none: default.")
    kv_dtypes: list[Name] = Field(default_factory=lambda: ["auto", "fp8"], min_length=1, max_length=4)
    tp: int | None = Field(None, ge=1, le=64, description="Fix tensor parallelism (cost of one configuration).")
    pp: int | None = Field(None, ge=1, le=64, description="Fix pipeline parallelism.")
    engine: Name = "vllm"
    environment: str = Field(
        "bare-metal", max_length=40, pattern=r"^(bare-metal|vm|vgpu|mig:\dg\.\d+gb)$", description="Where it runs."
    )
    env_set: dict[Setting, Annotated[float, Field(ge=0, le=10)]] = Field(default_factory=dict, max_length=8)
    calibration: str | None = Field(None, min_length=1, max_length=500, description="A calibration profile name.")
    prices_yaml: str | None = Field(None, max_length=MAX_PRICE_FILE_BYTES, description="Your price file's text.")
    prices_origin: str = Field("the price file", max_length=500)
    cost_set: dict[Setting, Annotated[float, Field(ge=0, le=1e9)]] = Field(default_factory=dict, max_length=32)
    hours_fraction: float = Field(1.0, ge=0.01, le=1.0, description="Share of hours the load runs.")
    peak_to_mean: float = Field(1.0, ge=1.0, le=100.0, description="Traffic peak / mean.")
    rank: Literal["cost", "latency", "gpus", "throughput_per_gpu"] = "cost"
    top: int = Field(10, ge=1, le=1000)
    verify: int = Field(1, ge=0, le=20, description="Simulate the best N to verify.")
    spec_method: Literal["draft_model", "eagle", "eagle3", "mtp", "ngram"] | None = Field(
        None, description="Speculative decoding method (none: no speculation)."
    )
    spec_tokens: int | None = Field(
        None, ge=1, le=MAX_SPECULATIVE_TOKENS, description="Draft tokens per step, k (none: the published default)."
    )
    spec_acceptance: str | None = Field(
        None,
        max_length=200,
        pattern=r"^\s*[0-9.]+(\s*,\s*[0-9.]+)*\s*$",
        description="Acceptance: one rate, or one conditional rate per draft position (none: published).",
    )
    spec_model: str | None = Field(
        None, min_length=1, max_length=500, description="Draft model (catalog name) or EAGLE head hub id."
    )
    spec_draft_tp: int | None = Field(None, ge=1, le=64, description="Draft model tensor parallelism.")
    disaggregation: bool = Field(False, description="Also search prefill/decode pools (xPyD splits).")
    kv_link: Name = Field("ib-ndr", description="Link the KV crosses between prefill and decode pools.")
    kv_overlap: Literal["none", "chunk", "layer"] | None = Field(
        None, description="How the KV transfer overlaps the prefill (none: the engine's own)."
    )
    workload: WorkloadQuestion = Field(
        default_factory=lambda: WorkloadQuestion.model_validate({}),
        description="Issue 13: sessions, shared prompts, a dataset, prefix caching, LoRA adapters, offload.",
    )

    @model_validator(mode="after")
    def _one_model_one_load(self) -> PlanQuestion:
        if (self.model is None) == (self.config_json is None):
            raise ValueError("give either 'model' (a catalog name) or 'config_json' (pasted config.json text)")
        if self.rate_per_s is not None and self.concurrency is not None:
            raise ValueError("give either a request rate or a concurrency, not both")
        return self

    def demand(self) -> Demand:
        """The load: 1 request/s when neither a rate nor a concurrency is given (a dataset's lengths
        are read by the plan path, plan/service.py)."""
        rate = self.rate_per_s if self.rate_per_s is not None or self.concurrency is not None else 1.0
        traffic = Traffic(self.workload.shape())
        return Demand(self.isl, self.osl, rate, self.concurrency, traffic)

    def speculation_words(self) -> dict[str, Any]:
        """The speculation options as :func:`~inferplan.specs.speculation.resolve_speculation` takes them."""
        return {
            "method": self.spec_method,
            "tokens": self.spec_tokens,
            "acceptance": self.spec_acceptance,
            "model": self.spec_model,
            "draft_tp": self.spec_draft_tp,
        }

    def targets(self) -> Targets:
        return Targets(
            self.ttft_ms / 1e3 if self.ttft_ms is not None else None,
            self.tpot_ms / 1e3 if self.tpot_ms is not None else None,
            self.e2e_s,
            self.min_output_tokens_per_s,
            self.budget_usd_per_hour,
        )


def validation_message(errors: Sequence[Mapping[str, Any]]) -> str:
    """One line naming each bad field with its CLI option (pydantic's ``errors()``)."""
    parts = []
    for e in list(errors)[:5]:
        loc = [str(x) for x in e.get("loc", ()) if x != "body"]
        field = loc[0] if loc else ""
        where = ".".join(loc)
        option = OPTION_NAMES.get(field) or WORKLOAD_OPTION_NAMES.get(loc[-1] if loc else "")
        label = f"{where} ({option})" if option and where else where
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{label}: {msg}" if label else msg)
    return "; ".join(parts)


def question_from(values: dict[str, Any]) -> PlanQuestion:
    """A validated question, or an InputError with the one-line message."""
    try:
        return PlanQuestion.model_validate(values)
    except ValidationError as exc:
        raise InputError(validation_message(exc.errors())) from None
