"""Runs side by side (``runs compare``, ``report --compare``): the same figures of each, each
labelled by what it ran on (engine and version, model, GPU, load and client, as stored with
the run), with each one's difference from the first.

A reference is a run id (``12``) or a sweep (``s3`` or ``sweep:3``: its knee point, else its
last point). Figures come from the run's requests where the run has them (inferplan's own
definitions, whichever client measured them), else from the summary stored when it was
imported (:mod:`inferplan.bench.import_formats`, which states where a client's definitions
differ).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from inferplan.bench.store import ResultsStore, RunInfo
from inferplan.bench.summary import summarize_records
from inferplan.bench.sweep import knee, sweep_points
from inferplan.errors import InputError
from inferplan.perf.metrics import Slo

__all__ = ["COMPARED", "LABELS", "Compared", "Comparison", "compare", "parse_ref", "run_figures", "run_label"]

#: (metric key, unit, where in a run summary, display scale)
COMPARED = (
    *(
        (f"{m}_{q}_s", "ms", (f"{m}_s", q), 1e3)
        for m in ("ttft", "tpot", "itl", "e2e")
        for q in ("mean", "p50", "p90", "p99")
    ),
    ("request_throughput_per_s", "req/s", ("request_throughput_per_s", None), 1.0),
    ("output_tokens_per_s", "tok/s", ("output_token_throughput_per_s", None), 1.0),
    ("goodput_per_s", "req/s", ("goodput_requests_per_s", None), 1.0),
    ("succeeded_share", "%", ("succeeded_share", None), 100.0),
)
#: how each metric is written in a table
LABELS = {key: f"{key.split('_')[0].upper()} {key.split('_')[1]}" for key, *_ in COMPARED[:16]} | {
    "request_throughput_per_s": "requests",
    "output_tokens_per_s": "output tokens",
    "goodput_per_s": "goodput",
    "succeeded_share": "succeeded",
}
MAX_REFS = 20
_SWEEP = re.compile(r"^(?:s|sweep:?)(\d{1,12})$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Compared:
    """One column: a run, its label and its figures (seconds, per second, shares)."""

    ref: str
    run: RunInfo
    label: str
    figures: dict[str, float | None]
    notes: list[str] = field(default_factory=list)

    def who(self) -> dict[str, Any]:
        """engine, version, model, gpu and settings of the run (None where it does not say)."""
        return _who(self.run)


@dataclass(frozen=True, slots=True)
class Comparison:
    columns: list[Compared]

    def rows(self) -> list[tuple[str, str, list[float | None], list[float | None]]]:
        """(metric, unit, values in the unit, relative difference from the first column)."""
        out = []
        for key, unit, _, scale in COMPARED:
            values = [c.figures.get(key) for c in self.columns]
            if all(v is None for v in values):
                continue
            first = values[0]
            rel = [(v - first) / first if v is not None and first is not None and first != 0 else None for v in values]
            out.append((key, unit, [None if v is None else v * scale for v in values], rel))
        return out


def parse_ref(text: str) -> tuple[str, int]:
    """('run', id) or ('sweep', id) from ``12``, ``s3`` or ``sweep:3``."""
    t = text.strip()
    if t.isdigit() and len(t) <= 12:
        return "run", int(t)
    match = _SWEEP.match(t)
    if match:
        return "sweep", int(match.group(1))
    raise InputError(f"'{text[:40]}': give a run id (12) or a sweep (s3 or sweep:3); 'inferplan runs' lists both")


def _dict(x: object) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def run_figures(store: ResultsStore, info: RunInfo) -> dict[str, Any]:
    """The run's summary: from its requests where it has them (with the targets it ran with),
    else as stored at import."""
    records = store.records(info.id)
    stored = info.summary or {}
    if records or not isinstance(stored.get("ttft_s"), dict):
        slo = _dict(stored.get("slo"))
        targets = [slo.get(k) if isinstance(slo.get(k), int | float) else None for k in ("ttft_s", "tpot_s", "e2e_s")]
        return summarize_records(records, Slo(*targets))
    return stored


def _flat(summary: dict[str, Any]) -> dict[str, float | None]:
    sent = summary.get("sent") or 0
    summary = summary | {"succeeded_share": (summary.get("succeeded") or 0) / sent if sent else None}
    out: dict[str, float | None] = {}
    for key, _, (where, q), _ in COMPARED:
        value = summary.get(where)
        value = value.get(q) if isinstance(value, dict) and q else value
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        out[key] = float(value) if ok else None  # type: ignore[arg-type]
    return out


def _load(c: dict[str, Any]) -> str | None:
    """The load as the run's own settings give it (inferplan's, vllm bench serve's, GuideLLM's
    strategy, AIPerf's phase)."""
    arrivals = _dict(c.get("arrivals"))
    kind = arrivals.get("kind")
    if kind == "concurrency":
        return f"concurrency {arrivals.get('concurrency')}"
    if kind in ("poisson", "gamma"):
        return f"{arrivals.get('rate_per_s'):.3g} req/s"
    if kind == "offline":
        return "all at once"
    if c.get("max_concurrency"):  # vllm bench serve
        return f"concurrency {c['max_concurrency']}"
    strategy = _dict(c.get("strategy"))  # GuideLLM
    phase = _dict(c.get("phase"))  # AIPerf
    streams = strategy.get("streams") or phase.get("concurrency")
    rate = strategy.get("rate") or phase.get("rate") or c.get("request_rate")
    if streams:
        return f"concurrency {streams}"
    return f"{rate} req/s" if rate not in (None, "inf") else None


def _who(run: RunInfo) -> dict[str, Any]:
    server = _dict(run.machine.get("server"))
    c = run.config
    load = _load(c)
    dataset = c.get("dataset")
    settings = {
        "isl": None if dataset else c.get("isl"),  # a dataset's prompts have their own lengths
        "osl": c.get("osl"),
        "dataset": str(dataset).replace("\\", "/").rsplit("/", 1)[-1] if isinstance(dataset, str) else None,
        "load": load,
        "endpoint": c.get("endpoint"),
        "client": run.machine.get("client") or run.kind,
    }
    return {
        "engine": server.get("engine"),
        "version": server.get("version"),
        "model": run.model,
        "gpu": server.get("gpu"),
        "settings": {k: v for k, v in settings.items() if v is not None},
    }


def run_label(run: RunInfo) -> str:
    """'vllm 0.32.0, tiny, l4, 64/32 tokens, concurrency 8, inferplan'."""
    w = _who(run)
    s = w["settings"]
    engine = " ".join(str(x) for x in (w["engine"], w["version"]) if x)
    tokens = f"{s['isl']}/{s['osl']} tokens" if s.get("isl") and s.get("osl") else None
    tokens = f"prompts from {s['dataset']}" if s.get("dataset") else tokens
    parts = [engine, w["model"], w["gpu"], tokens, s.get("load"), s.get("client")]
    return ", ".join(str(p) for p in parts if p) or f"run {run.id}"


def _run_of(store: ResultsStore, kind: str, number: int) -> tuple[RunInfo, str]:
    if kind == "run":
        return store.run(number), ""
    sweep = store.sweep(number)
    if not sweep.run_ids:
        raise InputError(f"sweep {number} has no runs yet")
    point = knee(sweep_points(store, number))  # from its runs: also a sweep still running or interrupted
    run_id = point.run_id if point else sweep.run_ids[-1]
    return store.run(run_id), f"sweep {number} {'knee' if point else 'last point'}: "


def compare(store: ResultsStore, refs: list[str]) -> Comparison:
    """The runs ``refs`` name, side by side."""
    if not 1 <= len(refs) <= MAX_REFS:
        raise InputError(f"give 1 to {MAX_REFS} runs or sweeps to compare, e.g. 'inferplan runs compare 3 7 s2'")
    parsed = [parse_ref(r) for r in refs]  # every reference checked before any is read
    columns = []
    for ref, (kind, number) in zip(refs, parsed, strict=True):
        run, prefix = _run_of(store, kind, number)
        summary = run_figures(store, run)
        stored = run.summary or {}
        notes = [str(n) for n in stored.get("definitions") or [] if isinstance(n, str)][:5]
        columns.append(Compared(ref, run, prefix + run_label(run), _flat(summary), notes))
    return Comparison(columns)
