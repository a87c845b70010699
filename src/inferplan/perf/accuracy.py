"""How accurate the model is, measured: the accuracy table that ``validate`` regenerates
(``inferplan validate FILE --write-accuracy src/inferplan/data/accuracy.yaml``) and the repository
checks in, and the error bands every predicted figure carries.

A band says how far predictions of one kind of figure were from public measurements of that
kind: the median absolute percentage error ("typically within") and its 90th percentile ("9 in
10 within"). Kinds and the validation categories they are measured on:

* ``ttft``: online TTFT and batch-1 TTFT rows;
* ``tpot``: online ITL/TPOT and batch-1 decode rows (ITL and TPOT are both the decode step);
* ``e2e``: online end-to-end rows where there are any, else the ``tpot`` rows (an end-to-end
  latency is ``TTFT + (output - 1) x TPOT``, dominated by the decode steps), said in the band;
* ``throughput``: offline and online throughput rows and maximum rates within a latency bound.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from inferplan.errors import ConfigError
from inferplan.perf.validate import Outcome, percentile_90, summarize
from inferplan.specs.calibration_profile import CalibrationProfile

__all__ = [
    "BAND_CATEGORIES",
    "CPU_BASIS",
    "Band",
    "accuracy_table",
    "bands",
    "calibrated_bands",
    "error_band",
    "load_accuracy_table",
    "worse_by",
    "write_accuracy_table",
]

BAND_CATEGORIES = {
    "ttft": ("online TTFT", "batch-1 TTFT"),
    "tpot": ("online ITL", "batch-1 decode"),
    "e2e": ("online E2E",),
    "throughput": ("offline throughput", "online throughput", "max rate within a latency bound"),
}
_HEADER = """# Accuracy of inferplan's predictions on public measurements: the error bands that predict,
# plan, the report and the UI print come from 'bands'. Regenerate, never edit by hand:
#   inferplan validate tests/data/throughput_dev.csv --workers 2 --write-accuracy src/inferplan/data/accuracy.yaml
# median / p90: of the absolute percentage error |predicted - measured| / measured, per group.
"""


#: The basis of a band on a CPU device without a calibration: the public table has no CPU rows.
CPU_BASIS = "public GPU measurements; none of CPUs"


@dataclass(frozen=True, slots=True)
class Band:
    """The measured error of one kind of figure."""

    kind: str
    median_pct: float
    p90_pct: float
    rows: int
    basis: str  # which measurements, e.g. 'online TTFT and batch-1 TTFT'

    def text(self) -> str:
        """'typically within 18%, 9 in 10 within 40%, on public measurements of this kind'
        (or '..., on 4 calibration runs of this deployment (profile my-cpu)')."""
        if self.basis == CPU_BASIS:
            return (
                f"typically within {self.median_pct:.0f}%, 9 in 10 within {self.p90_pct:.0f}%, on public GPU "
                "measurements only, none of CPUs: 'inferplan calibrate --auto' measures yours"
            )
        if self.basis.startswith("calibration"):
            return (
                f"typically within {self.median_pct:.0f}%, 9 in 10 within {self.p90_pct:.0f}%, "
                f"on {self.rows} calibration run(s) of this deployment ({self.basis})"
            )
        return (
            f"typically within {self.median_pct:.0f}%, 9 in 10 within {self.p90_pct:.0f}%, "
            f"on public measurements of this kind{'' if self.basis == 'this kind' else ' (' + self.basis + ')'}"
        )


def _entry(count: int, skipped: int, median: float, p90: float) -> dict[str, Any]:
    return {
        "rows": count,
        "skipped": skipped,
        "median_ape_pct": round(float(median), 1) if math.isfinite(median) else None,
        "p90_ape_pct": round(float(p90), 1) if math.isfinite(p90) else None,
    }


def _table(outcomes: list[Outcome], by: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    return {" / ".join(g.key): _entry(g.count, g.skipped, g.median_ape, g.p90_ape) for g in summarize(outcomes, by)}


def _band_rows(outcomes: list[Outcome]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for kind, cats in BAND_CATEGORIES.items():
        apes = [o.ape for o in outcomes if o.category in cats and o.ape is not None]
        basis = " and ".join(c for c in cats if any(o.category == c for o in outcomes))
        if not apes and kind == "e2e":
            apes = [o.ape for o in outcomes if o.category in BAND_CATEGORIES["tpot"] and o.ape is not None]
            basis = "measured through its decode steps: online ITL and batch-1 decode rows"
        if apes:
            entry = _entry(len(apes), 0, statistics.median(apes), percentile_90(apes))
            out[kind] = {"basis": basis, **{k: v for k, v in entry.items() if k != "skipped"}}
    return out


def accuracy_table(outcomes: list[Outcome], source: str) -> dict[str, Any]:
    """The accuracy table of a validation run: per category, per category/metric/statistic, per
    category and GPU, per category and engine, and the bands."""
    predicted = sum(1 for o in outcomes if o.ape is not None)
    return {
        "source": f"{source} ({len(outcomes)} rows, {predicted} predicted)",
        "categories": _table(outcomes, ("category",)),
        "statistics": _table(outcomes, ("category", "metric", "statistic")),
        "gpus": _table(outcomes, ("category", "gpu_id")),
        "engines": _table(outcomes, ("category", "engine_profile")),
        "bands": _band_rows(outcomes),
    }


def write_accuracy_table(path: Path, table: dict[str, Any]) -> None:
    try:
        path.write_text(_HEADER + yaml.safe_dump(table, sort_keys=False, width=120), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from exc


@cache
def load_accuracy_table() -> dict[str, Any]:
    """The checked-in accuracy table (src/inferplan/data/accuracy.yaml)."""
    text = (resources.files("inferplan") / "data" / "accuracy.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ConfigError("accuracy.yaml: expected a mapping")
    return data


def bands() -> dict[str, Band]:
    """Every kind's band from the checked-in table."""
    out = {}
    for kind, row in (load_accuracy_table().get("bands") or {}).items():
        if row.get("median_ape_pct") is None:
            continue
        basis = str(row.get("basis", ""))
        own = kind != "e2e" or basis.startswith("online E2E")
        out[kind] = Band(kind, row["median_ape_pct"], row["p90_ape_pct"], row["rows"], "this kind" if own else basis)
    return out


def calibrated_bands(profile: CalibrationProfile | None, *, on_cpu: bool = False) -> dict[str, Band]:
    """The bands of a deployment: with a calibration profile, its own runs' residuals per kind
    (median and 90th percentile of |predicted - measured| / measured after the fit; e2e from
    the TPOT residuals, as the public table does without end-to-end rows) in place of the public
    table's; kinds the calibration did not measure keep the table's band. ``on_cpu``: the public
    table holds GPUs only, and the bands say so."""
    out = bands()
    if on_cpu:
        out = {kind: replace(b, basis=CPU_BASIS) for kind, b in out.items()}
    if profile is None:
        return out
    residuals = dict(profile.residual_pct) if isinstance(profile.residual_pct, dict) else {}
    if residuals.get("tpot"):
        residuals.setdefault("e2e", residuals["tpot"])
    for kind, raw in residuals.items():
        items = raw if isinstance(raw, list) else []
        values = [float(v) for v in items if isinstance(v, (int, float)) and math.isfinite(v) and v >= 0]
        if values and kind in out:
            basis = f"calibration profile {profile.name}"
            out[kind] = Band(kind, statistics.median(values), percentile_90(values), len(values), basis)
    return out


def error_band(kind: str, profile: CalibrationProfile | None = None, *, on_cpu: bool = False) -> Band | None:
    """The band of ``kind`` (ttft, tpot, itl, e2e, throughput), or None when nothing of that
    kind was measured; a calibration profile's own residuals when it has them."""
    return calibrated_bands(profile, on_cpu=on_cpu).get("tpot" if kind == "itl" else kind)


def worse_by(kind: str, margin: str) -> float:
    """The factor a figure of ``kind`` moves when the model errs on the bad side by its
    ``margin`` ('none', 'median' or 'p90') error: 1 + e for latencies, 1 / (1 + e) for throughput."""
    band = error_band(kind) if margin != "none" else None
    if band is None:
        return 1.0
    e = (band.p90_pct if margin == "p90" else band.median_pct) / 100.0
    return 1.0 / (1.0 + e) if kind == "throughput" else 1.0 + e
