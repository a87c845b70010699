"""Predict measured rows (the format of ../shared/data/throughput.csv) and report errors.

Each row names a source, engine, model, precision, GPU, parallelism, ISL/OSL, load and one
metric. Rows we cannot predict are listed with the reason, never silently dropped.
"""

from __future__ import annotations

import csv
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from inferplan.errors import ConfigError, InferplanError
from inferplan.perf.metrics import serving_metrics
from inferplan.perf.replica import Replica, build_replica
from inferplan.perf.roofline import step_shape
from inferplan.perf.simulator import simulate
from inferplan.perf.workload import Arrivals, LengthDist, Workload, make_requests
from inferplan.specs.deployment import Deployment
from inferplan.specs.engines import ENGINES, EngineProfile
from inferplan.specs.hardware import get_gpu
from inferplan.specs.model_catalog import catalog_models, load_model
from inferplan.specs.parallelism import Parallelism
from inferplan.specs.precision import get_kv_dtype, get_precision

__all__ = ["Measurement", "Outcome", "read_measurements", "summarize", "validate_rows"]

REQUIRED = (
    "source_key",
    "model",
    "weight_precision",
    "kv_cache_precision",
    "gpu",
    "tp",
    "pp",
    "isl",
    "osl",
    "batch_or_concurrency",
    "load_condition",
    "metric",
    "value",
    "unit",
    "scope",
)
#: Requests simulated for an offline-throughput row (enough to reach steady state).
OFFLINE_REQUESTS = 1500


class SkipRow(Exception):
    """This row cannot be predicted; the message says why."""


@dataclass(frozen=True, slots=True)
class Measurement:
    id: str
    fields: dict[str, str]

    def __getitem__(self, key: str) -> str:
        return self.fields.get(key, "")


@dataclass(frozen=True, slots=True)
class Outcome:
    row: Measurement
    predicted: float | None
    measured: float
    skipped: str = ""
    category: str = ""

    @property
    def ape(self) -> float | None:
        if self.predicted is None or self.measured == 0:
            return None
        return abs(self.predicted - self.measured) / abs(self.measured) * 100


def read_measurements(path: Path) -> list[Measurement]:
    """Read a measurement CSV; a missing column or value names the file and line."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise ConfigError(f"{path}: missing column(s) {', '.join(missing)}; see ../shared/data/README.md")
            rows = []
            for line, raw in enumerate(reader, start=2):
                try:
                    float(raw["value"])
                except (TypeError, ValueError) as exc:
                    raise ConfigError(f"{path}, line {line}: field 'value' is not a number: {raw['value']!r}") from exc
                rows.append(Measurement(raw.get("id") or str(line), dict(raw)))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte offset {exc.start}); save the file as UTF-8") from None
    return rows


_MODEL_ALIASES = {"llama-3-8b": "llama-3.1-8b"}


def _model_name(text: str) -> str:
    key = text.strip().lower().split("/")[-1]
    key = _MODEL_ALIASES.get(key, key)
    if key not in catalog_models():
        raise SkipRow(f"model '{text}' is not in the catalog")
    return key


def _gpu_id(row: Measurement) -> str:
    text = f"{row['gpu']} {row['gpu_family']}".lower()
    if "h100" in text:
        return "h100-sxm"
    if "a100" in text:
        return "a100-sxm-80gb"
    if "h200" in text:
        return "h200-sxm"
    raise SkipRow(f"GPU '{row['gpu']}' is not mapped")


def _precision(text: str) -> str:
    t = text.lower()
    if "int4" in t:
        return "int4-g32" if "g=32" in t else "int4"
    if "int8" in t:
        return "int8"
    for name in ("fp8", "fp16", "bf16"):
        if name in t:
            return name
    return "bf16"


def _engine(source: str, row: Measurement) -> EngineProfile:
    if source.startswith("trtllm_perf_overview_online"):
        return ENGINES["triton-trtllm"]
    if source.startswith("trtllm"):
        return ENGINES["trtllm"]
    if source.startswith("gpt-fast"):
        return ENGINES["gpt-fast"]
    if "vllm" in source or "vllm" in row["engine"].lower():
        return ENGINES["vllm"]
    raise SkipRow(f"engine of source '{source}' is not mapped")


def _int(text: str, what: str) -> int:
    match = re.match(r"\s*(\d{1,9})(?!\d)", text)  # a count, not a 400-digit number
    if not match:
        raise SkipRow(f"{what} '{text[:20]}' is not stated")
    return int(match.group(1))


def _setup(
    row: Measurement,
    engines: dict[str, EngineProfile] | None,
    max_num_seqs: int | None = None,
    max_num_batched_tokens: int | None = None,
) -> Replica:
    engine = _engine(row["source_key"], row)
    if engines:
        engine = engines.get(engine.name, engine)
    model = load_model(_model_name(row["model"]))
    precision = get_precision(_precision(row["weight_precision"]))
    kv_text = row["kv_cache_precision"].lower()
    kv = get_kv_dtype("fp8" if kv_text.startswith("fp8") else ("fp16" if precision.name == "fp16" else "bf16"))
    par = Parallelism(tp=_int(row["tp"] or "1", "tp"), pp=_int(row["pp"] or "1", "pp"))
    try:
        engine = replace(
            engine,
            max_num_seqs=max_num_seqs or engine.max_num_seqs,
            max_num_batched_tokens=max_num_batched_tokens or engine.max_num_batched_tokens,
        )
        return build_replica(Deployment(model, get_gpu(_gpu_id(row)), precision, kv, par, engine))
    except InferplanError as exc:
        raise SkipRow(str(exc)) from exc


def _predict(row: Measurement, engines: dict[str, EngineProfile] | None) -> tuple[float, str]:
    metric = row["metric"]
    load = row["load_condition"].lower()
    if metric == "achieved_memory_bandwidth":
        raise SkipRow("derived from decode_tokens_per_s by the source (same information)")
    if metric == "decode_tokens_per_s" or metric.startswith("tpot"):
        b = _setup(row, engines)
        ctx = _int(row["isl"], "isl") + 100 if row["isl"].strip() else 1000
        t = b.cost.time_s(step_shape([], [ctx]))
        return (1.0 / t if metric == "decode_tokens_per_s" else t * 1e3), "batch-1 decode"
    if metric.startswith("ttft (1st token"):
        b = _setup(row, engines)
        t = b.cost.time_s(step_shape([(_int(row["isl"], "isl"), 0)], []))
        return t * 1e3, "batch-1 TTFT"
    isl, osl = _int(row["isl"], "isl"), _int(row["osl"], "osl")
    if "static batch" in load:
        batch = _int(row["batch_or_concurrency"], "batch size")
        b = _setup(row, engines, max_num_seqs=batch, max_num_batched_tokens=max(batch * isl, 8192))
        arrivals, n = Arrivals("offline"), batch
    elif "online" in load:
        b = _setup(row, engines)
        qps = re.search(r"qps=([0-9.]+|inf)", load)
        if not qps:
            raise SkipRow("request rate not stated")
        rate = qps.group(1)
        arrivals = Arrivals("offline") if rate == "inf" else Arrivals("poisson", rate_per_s=float(rate))
        count = re.search(r"(\d+) requests", load)
        n = int(count.group(1)) if count else 500
    elif "offline" in load:
        b = _setup(row, engines)
        arrivals, n = Arrivals("offline"), OFFLINE_REQUESTS
    else:
        raise SkipRow(f"load condition '{row['load_condition'][:40]}' is not modelled")
    if b.scheduler.kv_tokens < isl + osl:
        raise SkipRow("one request does not fit the KV cache of this deployment")
    reqs = make_requests(Workload(LengthDist(isl), LengthDist(osl), arrivals, n, seed=0))
    m = serving_metrics(simulate(b, reqs))
    # "as published" tables of the same document are per GPU (assumption, see README)
    per_gpu = "per gpu" in row["scope"].lower() or "as published" in row["scope"].lower()
    gpus = b.deployment.parallelism.gpus_per_replica
    category = "offline throughput" if arrivals.kind == "offline" and "online" not in load else "online"
    values = {
        "output_token_throughput": m.output_token_throughput_per_s / (gpus if per_gpu else 1),
        "total_token_throughput": m.total_token_throughput_per_s,
        "request_throughput": m.request_throughput_per_s,
        "ttft_mean": m.ttft_s.mean * 1e3,
        "itl_mean": m.itl_s.mean * 1e3,
    }
    if metric not in values:
        raise SkipRow(f"metric '{metric}' is not predicted")
    if category == "online":
        category = {"ttft_mean": "online TTFT", "itl_mean": "online ITL"}.get(metric, "online throughput")
    return values[metric], category


def validate_rows(rows: Iterable[Measurement], engines: dict[str, EngineProfile] | None = None) -> list[Outcome]:
    """Predict every row; ``engines`` overrides engine profiles (used when fitting)."""
    out = []
    for row in rows:
        measured = float(row["value"])
        try:
            predicted, category = _predict(row, engines)
        except SkipRow as exc:
            out.append(Outcome(row, None, measured, skipped=str(exc)))
            continue
        out.append(Outcome(row, predicted, measured, category=category))
    return out


@dataclass(frozen=True, slots=True)
class Group:
    key: tuple[str, ...]
    count: int
    median_ape: float
    p90_ape: float
    apes: list[float] = field(default_factory=list)


def summarize(outcomes: list[Outcome], by: tuple[str, ...] = ("source_key", "gpu", "metric")) -> list[Group]:
    """Median and 90th-percentile absolute percentage error per group."""
    groups: dict[tuple[str, ...], list[float]] = {}
    for o in outcomes:
        if o.ape is None:
            continue
        key = tuple(o.category if k == "category" else o.row[k] for k in by)
        groups.setdefault(key, []).append(o.ape)
    result = []
    for key, apes in sorted(groups.items()):
        apes.sort()
        p90 = apes[min(round(0.9 * (len(apes) - 1)), len(apes) - 1)]
        result.append(Group(key, len(apes), statistics.median(apes), p90, apes))
    return result
