"""A measured row (the format of ../shared/data/throughput.csv) read into what the model needs:
the deployment, the workload and load, and which statistic of which metric was measured.

Every column goes through the one name resolver (:mod:`inferplan.specs.names`); the engine
comes from the ``engine`` column (and ``engine_version``). A row that cannot be set up raises
:class:`SkipRow` naming the column and the reason; whatever had to be assumed (an unstated KV
precision, an A100 of unstated variant, ...) is listed in :attr:`RowSetup.assumptions`.

Unstated KV-cache precision, the policy (README "Validation"):

1. the checkpoint's quantisation config where the row names the checkpoint: NVIDIA ModelOpt FP8 and
   NVFP4 checkpoints (``nvidia/...-FP8``, "ModelOpt") declare ``kv_cache_quant_algo: FP8``; a
   catalog checkpoint states its own;
2. TensorRT-LLM with FP8 or NVFP4 weights: FP8 (its benchmark maps those quantisations to an FP8 KV cache);
3. otherwise the engine's ``auto``: the activation dtype (16-bit).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from inferplan.errors import ConfigError, InferplanError
from inferplan.sizing.weights import weight_bytes
from inferplan.specs.deployment import Deployment
from inferplan.specs.engine_defaults import trtllm_bench_batch
from inferplan.specs.engines import ENGINES, EngineProfile, resolve_engine
from inferplan.specs.hardware import GpuSpec, resolve_gpu
from inferplan.specs.model import ModelSpec
from inferplan.specs.model_catalog import load_catalog_model
from inferplan.specs.names import resolve_kv_name, resolve_precision_name
from inferplan.specs.parallelism import Parallelism
from inferplan.specs.precision import get_kv_dtype, get_precision, resolve_precision

__all__ = [
    "REQUIRED",
    "Measurement",
    "RowLoad",
    "RowMetric",
    "RowSetup",
    "SkipRow",
    "category_of",
    "parse_load",
    "parse_metric",
    "read_measurements",
    "setup_row",
]

#: Columns a measurement file must have; every other column of throughput.csv is optional.
REQUIRED = ("model", "gpu", "metric", "value")
#: Requests simulated for an offline row that does not state its count.
OFFLINE_REQUESTS = 1500
#: Input tokens assumed when a batch-1 decode row states none (decode at batch 1 barely depends on it).
DEFAULT_BATCH1_INPUT = 1000
#: Output tokens assumed when a batch-1 row states none (gpt-fast's default max_new_tokens).
DEFAULT_BATCH1_OUTPUT = 200


class SkipRow(Exception):
    """This row cannot be predicted; the message names the column and says why."""

    def __init__(self, column: str, reason: str, category: str = "") -> None:
        self.column = column
        self.category = category
        super().__init__(f"column '{column}': {reason}")


@dataclass(frozen=True, slots=True)
class Measurement:
    id: str
    fields: dict[str, str]

    def __getitem__(self, key: str) -> str:
        return (self.fields.get(key) or "").strip()


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
                rows.append(Measurement(raw.get("id") or str(line), {k: v for k, v in raw.items() if k}))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save the CSV as UTF-8") from None
    return rows


# -- metric and load -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RowMetric:
    """``kind``: output_tps, total_tps, request_rate, ttft, itl, tpot, e2e, decode_speed,
    max_rate; ``statistic``: mean, p50, p90, p95, p99; ``seconds``: the unit's size in seconds
    for latencies (1e-3 for ms)."""

    kind: str
    statistic: str = "mean"
    seconds: float = 1.0


_LATENCY: tuple[tuple[str, str], ...] = (
    ("ttft", "ttft"),
    ("first token", "ttft"),
    ("itl", "itl"),
    ("inter token", "itl"),
    ("tpot", "tpot"),
    ("time per output token", "tpot"),
    ("e2e", "e2e"),
    ("end to end", "e2e"),
    ("request latency", "e2e"),
)


def parse_metric(metric: str, unit: str) -> RowMetric:
    """What a ``metric`` column (and its ``unit``) measures."""
    text = re.sub(r"[_\-]+", " ", metric.lower())
    u = unit.lower().strip()
    if "achieved memory bandwidth" in text:
        raise SkipRow(
            "metric", "achieved memory bandwidth is derived from tokens/s by the source (same information)", "derived"
        )
    stat = re.search(r"\b(mean|avg|average|median|p50|p90|p95|p99)\b", text)
    statistic = (
        {"avg": "mean", "average": "mean", "median": "p50"}.get(stat.group(1), stat.group(1)) if stat else "mean"
    )
    if "decode tokens per s" in text or "tokens per s per user" in text or "tokens/s/user" in u:
        return RowMetric("decode_speed", "value")
    for word, kind in _LATENCY:
        if word in text:
            seconds = {"ms": 1e-3, "s": 1.0, "us": 1e-6}.get(u)
            if seconds is None:
                raise SkipRow("unit", f"'{unit}' is not a time unit (ms, s, us) for a latency")
            return RowMetric(kind, statistic, seconds)
    if "max" in text and ("rate" in text or "qps" in text):
        return RowMetric("max_rate", "value")
    if "request throughput" in text or u in ("req/s", "requests/s"):
        return RowMetric("request_rate", "value")
    if "total token throughput" in text:
        return RowMetric("total_tps", "value")
    if "throughput" in text or "tokens/s" in u:
        return RowMetric("output_tps", "value")
    raise SkipRow("metric", f"'{metric}' is not a metric the model predicts")


@dataclass(frozen=True, slots=True)
class LatencyBound:
    kind: str
    statistic: str
    seconds: float


@dataclass(frozen=True, slots=True)
class RowLoad:
    """``kind``: offline, static, poisson, concurrency, max-rate (the highest rate whose
    ``bound`` holds), batch1 (one request at a time)."""

    kind: str
    num_requests: int = OFFLINE_REQUESTS
    online: bool = False  # measured through a serving front end (an online benchmark at QPS=inf too)
    rate_per_s: float | None = None
    concurrency: int | None = None
    batch: int | None = None
    bound: LatencyBound | None = None


def _count(text: str, pattern: str) -> int | None:
    m = re.search(pattern.replace(r"(\d+)", r"(\d{1,9})(?!\d)"), text)  # a count, not a 400-digit number
    return int(m.group(1)) if m else None


def _bound(text: str) -> LatencyBound | None:
    m = re.search(
        r"(ttft|tpot|itl|e2e)\w*\s*(mean|p50|p90|p95|p99)?\s*(?:<=|<|under|below|within|of)\s*([\d.]+)\s*(ms|s)\b",
        text,
    )
    if not m:
        return None
    scale = 1e-3 if m.group(4) == "ms" else 1.0
    return LatencyBound(m.group(1), m.group(2) or "p90", float(m.group(3)) * scale)


def parse_load(load_condition: str, batch_or_concurrency: str) -> RowLoad:
    """The load a row ran under: offline, static batch, Poisson at a rate, closed-loop
    concurrency, the highest rate within a latency bound, or one request at a time."""
    text = load_condition.lower()
    bc = batch_or_concurrency.lower()
    n = _count(text, r"(\d+)\s+requests") or OFFLINE_REQUESTS
    if "static batch" in text:
        batch = _count(bc, r"^\s*(\d+)")
        if batch is None:
            raise SkipRow("batch_or_concurrency", f"a static batch needs its size, got '{batch_or_concurrency}'")
        return RowLoad("static", batch, batch=batch)
    if re.search(r"\b(max|maximum|highest)\b.*\b(rate|qps|throughput)\b.*\b(ttft|tpot|itl|e2e)", text):
        bound = _bound(text)
        if bound is None:
            raise SkipRow(
                "load_condition", "a maximum rate needs its latency bound, e.g. 'max QPS with TTFT p90 < 2 s'"
            )
        return RowLoad("max-rate", n, bound=bound)
    qps = re.search(r"(?:qps|request rate|rate)\s*[=:]?\s*([0-9.]+|inf\w*)", text)
    if qps and not qps.group(1).startswith("inf"):
        return RowLoad("poisson", n, rate_per_s=float(qps.group(1)))
    if "concurrency" in text or "closed loop" in text or "concurrency" in bc:
        users = _count(text, r"concurrency\s*[=:]?\s*(\d+)") or _count(bc, r"(\d+)")
        if users is None:
            raise SkipRow("batch_or_concurrency", "a closed-loop row needs its concurrency")
        return RowLoad("concurrency", max(n, users), concurrency=users)
    if re.search(r"batch size 1\b|single (request|user)|light load", text) or bc in ("1", "batch 1"):
        return RowLoad("batch1", 1)
    if "offline" in text or "infinite" in text or (qps and qps.group(1).startswith("inf")) or "max" in bc:
        return RowLoad("offline", n, online="online" in text)
    raise SkipRow("load_condition", f"'{load_condition[:60]}' is not a load the simulator models")


def category_of(metric: RowMetric, load: RowLoad) -> str:
    """The accuracy category of a row: how it was loaded and what kind of figure it is."""
    if load.kind == "batch1":
        return "batch-1 TTFT" if metric.kind == "ttft" else "batch-1 decode"
    if load.kind == "max-rate":
        return "max rate within a latency bound"
    if load.kind in ("offline", "static") and not load.online:
        return "offline throughput" if metric.kind in ("output_tps", "total_tps", "request_rate") else "offline latency"
    names = {"ttft": "online TTFT", "itl": "online ITL", "tpot": "online ITL", "e2e": "online E2E"}
    return names.get(metric.kind, "online throughput")


# -- setup -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RowSetup:
    """Everything one row's prediction needs."""

    deployment: Deployment
    isl: int
    osl: int
    load: RowLoad
    metric: RowMetric
    per_gpu: bool
    category: str
    assumptions: tuple[str, ...] = field(default_factory=tuple)

    def key(self) -> tuple[object, ...]:
        """Rows with the same key share one simulation (an online row set has 5 metrics)."""
        d = self.deployment
        return (*d.key(), d.engine, self.isl, self.osl, self.load)


def _int(row: Measurement, column: str, default: int | None = None) -> int:
    m = re.match(r"\s*(\d{1,9})(?!\d)", row[column])  # a count, not a 400-digit number
    if m:
        return int(m.group(1))
    if default is not None:
        return default
    raise SkipRow(column, f"'{row[column][:20]}' is not stated")


def _model(row: Measurement) -> ModelSpec:
    try:
        return load_catalog_model(row["model"])
    except InferplanError as exc:
        raise SkipRow("model", str(exc)) from None


def _engine(row: Measurement, engines: dict[str, EngineProfile] | None) -> tuple[EngineProfile, str]:
    if not row["engine"]:
        raise SkipRow("engine", "empty; name the engine (vLLM, SGLang, TensorRT-LLM, ...)")
    try:
        engine, note = resolve_engine(row["engine"], row["engine_version"])
    except InferplanError as exc:
        raise SkipRow("engine", str(exc)) from None
    return (engines or ENGINES).get(engine.name, engine), note


_MODELOPT = re.compile(r"\bnvidia/|modelopt")


def _kv_policy(row: Measurement, model: ModelSpec, weights: str, engine: EngineProfile) -> tuple[str, str]:
    """(KV dtype, what was assumed) for an unstated KV precision (the module docstring's policy)."""
    text = row["weight_precision"].lower()
    if _MODELOPT.search(text) and weights in ("fp8", "nvfp4"):
        return "fp8", "KV precision not stated: FP8, the NVIDIA ModelOpt checkpoint's kv_cache_quant_algo"
    q = model.quantization
    if q is not None and q.kv_dtype:
        return q.kv_dtype, f"KV precision not stated: {q.kv_dtype.upper()}, the checkpoint's quantization config"
    if engine.name.startswith("trtllm") and weights in ("fp8", "nvfp4"):
        return "fp8", "KV precision not stated: FP8, what TensorRT-LLM sets for FP8/NVFP4 weights"
    auto = "fp16" if weights == "fp16" else "bf16"
    return auto, f"KV precision not stated: {auto.upper()}, the engine's 'auto' (the activation dtype)"


def _precisions(row: Measurement, model: ModelSpec, engine: EngineProfile) -> tuple[str, str, list[str]]:
    assumed = []
    found = resolve_precision_name(row["weight_precision"])
    if found is None:
        weights = resolve_precision(model, None).name
        assumed.append(f"weight precision not stated: {weights}, the checkpoint's own")
    else:
        weights = found.key
        if found.note:
            assumed.append(found.note)
    kv = resolve_kv_name(row["kv_cache_precision"])
    if kv is not None:
        return weights, kv.key, assumed
    kv_name, why = _kv_policy(row, model, weights, engine)
    return weights, kv_name, [*assumed, why]


def _parallelism(row: Measurement, model: ModelSpec, engine: EngineProfile) -> tuple[Parallelism, list[str]]:
    tp, pp = _int(row, "tp", 1), _int(row, "pp", 1)
    ep = _int(row, "ep", 1)
    notes = row["notes"].lower()
    if model.is_moe and engine.name == "trtllm-pytorch" and "attention dp" in notes and ep == 1:
        # trtllm-bench --ep with enable_attention_dp: attention data-parallel, experts over every GPU
        return Parallelism(tp=1, pp=pp, dp=tp, ep=tp), [f"MoE with attention DP{tp} and EP{tp} (the row's notes)"]
    return Parallelism(tp=tp, pp=pp, ep=ep), []


def _trtllm_bench(
    engine: EngineProfile,
    model: ModelSpec,
    gpu: GpuSpec,
    setup: tuple[str, str, Parallelism],
    lengths: tuple[int, int],
) -> EngineProfile:
    """The engine with ``trtllm-bench``'s own batch settings for this workload."""
    weights, kv, par = setup
    isl, osl = lengths
    a = model.attention
    kv_token = 2 * model.num_layers * max(par.tp, a.num_kv_heads) * a.head_dim * get_kv_dtype(kv).bytes_per_value
    engine_bytes = weight_bytes(model, get_precision(weights)).total
    bs, tokens = trtllm_bench_batch(engine_bytes, gpu.memory_bytes * par.num_gpus, kv_token, isl, osl)
    if not engine.chunked_prefill:
        tokens = max(tokens, isl + bs)
    return replace(engine, max_num_seqs=max(bs // max(par.dp, 1), 1), max_num_batched_tokens=tokens)


def setup_row(row: Measurement, engines: dict[str, EngineProfile] | None = None) -> RowSetup:
    """The deployment, workload, load and metric of one row (raises :class:`SkipRow`)."""
    metric = parse_metric(row["metric"], row["unit"])
    load = parse_load(row["load_condition"], row["batch_or_concurrency"])
    model = _model(row)
    try:
        gpu, gpu_note = resolve_gpu(row["gpu"])
    except InferplanError as exc:
        raise SkipRow("gpu", str(exc)) from None
    engine, engine_note = _engine(row, engines)
    weights, kv, assumed = _precisions(row, model, engine)
    par, par_notes = _parallelism(row, model, engine)
    isl = _int(row, "isl", DEFAULT_BATCH1_INPUT if load.kind == "batch1" else None)
    if load.kind == "batch1" and not re.match(r"\s*\d", row["isl"]):
        assumed.append(f"input length not stated: {DEFAULT_BATCH1_INPUT} tokens")
    osl = _int(row, "osl", DEFAULT_BATCH1_OUTPUT if load.kind == "batch1" else None)
    if load.kind == "batch1" and not re.match(r"\s*\d", row["osl"]):
        assumed.append(f"output length not stated: {DEFAULT_BATCH1_OUTPUT} tokens")
    if load.kind == "static":
        engine = replace(
            engine, max_num_seqs=load.batch or 1, max_num_batched_tokens=max((load.batch or 1) * isl, 8192)
        )
    elif "trtllm-bench" in row["engine"].lower() and load.kind == "offline":
        engine = _trtllm_bench(engine, model, gpu, (weights, kv, par), (isl, osl))
        assumed.append(
            f"trtllm-bench sized the batch from the workload: max_batch_size {engine.max_num_seqs}, "
            f"max_num_tokens {engine.max_num_batched_tokens}"
        )
    scope = row["scope"].lower()
    per_gpu = "per gpu" in scope or "/gpu" in row["unit"].lower() or "as published" in scope
    if "as published" in scope:
        assumed.append("per-GPU vs total not stated: read as per GPU (the same document's H100 table says so)")
    dep = Deployment(model, gpu, get_precision(weights), get_kv_dtype(kv), par, engine)
    notes = [n for n in (gpu_note, engine_note, *model.notes) if n]
    return RowSetup(dep, isl, osl, load, metric, per_gpu, category_of(metric, load), (*notes, *par_notes, *assumed))
