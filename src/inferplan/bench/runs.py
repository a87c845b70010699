"""Stored benchmark runs set against the model: load a run's request records from the results
database and replay its exact requests on a deployment (``report --runs``)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from inferplan.bench.calibration import observation_from_records, replay_observation
from inferplan.bench.client import RequestRecord
from inferplan.bench.store import ResultsStore
from inferplan.errors import InputError
from inferplan.plan.planner import Plan
from inferplan.specs.deployment import Deployment
from inferplan.specs.hardware import get_gpu
from inferplan.specs.parallelism import Parallelism
from inferplan.specs.precision import resolve_kv_dtype, resolve_precision

__all__ = [
    "RUN_FIGURES",
    "RunComparison",
    "StoredRun",
    "compare_runs",
    "load_stored_runs",
    "parse_runs_on",
    "runs_deployment",
]

#: the figures of a measured run set against its replay: key, label, display scale, display unit
RUN_FIGURES = (
    ("ttft_mean_s", "TTFT mean", 1e3, "ms"),
    ("tpot_mean_s", "TPOT mean", 1e3, "ms"),
    ("output_tokens_per_s", "output throughput", 1.0, "tok/s"),
)


@dataclass(frozen=True, slots=True)
class RunComparison:
    """One measured serving run against the simulator's replay of its exact requests."""

    label: str
    measured: dict[str, float]  # ttft_mean_s, tpot_mean_s, output_tokens_per_s
    predicted: dict[str, float]

    def errors(self) -> dict[str, float]:
        """Signed relative error of each prediction, (predicted - measured) / measured."""
        return {k: self.predicted[k] / m - 1.0 for k, m in self.measured.items() if m > 0}


@dataclass(frozen=True, slots=True)
class StoredRun:
    """A serving run from the results database: its records and, for shaped traffic (sessions,
    shared prompts, adapters), what it kept to replay them."""

    label: str
    records: list[RequestRecord]
    traffic: dict[str, Any] | None = None


def compare_runs(runs: list[StoredRun], dep: Deployment) -> list[RunComparison]:
    """Replay each measured run's exact requests on one replica of ``dep`` (a multi-turn run's
    turns each released by the one before, sharing its tokens) and pair the simulator's figures
    with the measured ones."""
    out = []
    for run in runs:
        label, records = run.label, run.records
        obs = observation_from_records(label, records, traffic=run.traffic)
        ttft, tpot, tput = replay_observation(obs, dep)
        out.append(
            RunComparison(
                f"run {label} on {dep.label()}",
                {
                    "ttft_mean_s": obs.ttft_mean_s,
                    "tpot_mean_s": obs.tpot_mean_s,
                    "output_tokens_per_s": obs.output_tokens_per_s,
                },
                {"ttft_mean_s": ttft, "tpot_mean_s": tpot, "output_tokens_per_s": tput},
            )
        )
    return out


def parse_runs_on(text: str | None) -> dict[str, str]:
    """``gpu=ID,tp=N,pp=N,dtype=X,kv_dtype=X`` as fields; checked before any planning."""
    fields: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in ("gpu", "tp", "pp", "dtype", "kv_dtype") or not value.strip():
            raise InputError(f"--runs-on '{item}': write gpu=ID,tp=N,pp=N,dtype=X,kv_dtype=X, e.g. gpu=h100-sxm,tp=2")
        fields[key.strip()] = value.strip()
    for key in ("tp", "pp"):
        if key in fields and not (fields[key].isdigit() and 1 <= int(fields[key]) <= 1024):
            raise InputError(f"--runs-on {key}={fields[key]}: give a whole number from 1 to 1024")
    return fields


def runs_deployment(fields: dict[str, str], plan: Plan) -> Deployment:
    """Where the runs were measured: ``fields`` over the recommendation's choices (one replica)."""
    c = plan.chosen.deployment
    precision = resolve_precision(c.model, fields["dtype"]) if "dtype" in fields else c.precision
    kv = resolve_kv_dtype(fields["kv_dtype"], precision) if "kv_dtype" in fields else c.kv_dtype
    gpu = get_gpu(fields["gpu"]) if "gpu" in fields else c.gpu
    par = Parallelism(tp=int(fields.get("tp", c.parallelism.tp)), pp=int(fields.get("pp", c.parallelism.pp)))
    return replace(c, gpu=gpu, precision=precision, kv_dtype=kv, parallelism=par)


def load_stored_runs(run_ids: list[str], db: Path | None) -> list[StoredRun]:
    """The request records of serving runs in the results database, by id."""
    ids = []
    for r in run_ids:
        if not r.isdigit():
            raise InputError(f"--runs '{r}': give run ids as whole numbers, e.g. --runs 3,4 (see 'inferplan runs')")
        ids.append(int(r))
    store = ResultsStore(db)
    try:
        runs = [store.run(i) for i in ids]
        return [StoredRun(str(r.id), store.records(r.id), r.traffic) for r in runs]
    finally:
        store.close()
