"""``inferplan calibrate --auto URL``: measure the calibration set on a live server, fit,
save the profile, and print what changed and the error that remains."""

from __future__ import annotations

from pathlib import Path

from inferplan.bench.autocal import METRICS, auto_calibrate, median_error
from inferplan.bench.serve import public_url
from inferplan.bench.store import ResultsStore
from inferplan.cli.bench import err, out
from inferplan.cli.common import emit_json
from inferplan.present.payload_bench import AutoCalibrationPayload, CalibrationPayload, PredictionRowPayload
from inferplan.present.text import table
from inferplan.specs.calibration_profile import save_profile
from inferplan.specs.deployment import Deployment

__all__ = ["auto_cmd"]

_LABELS = {"ttft_s": "TTFT p50", "tpot_s": "TPOT p50", "output_tok_s": "output tok/s"}


def auto_cmd(url: str, served_model: str, dep: Deployment, name: str, db: Path | None, as_json: bool) -> None:
    if not as_json:
        err.print(f"measuring the calibration set on {public_url(url)} ({dep.label()}, engine {dep.engine.name})")
    store = ResultsStore(db)
    try:
        result = auto_calibrate(url, served_model, dep, name, store)
    finally:
        store.close()
    profile = result.profile
    path = save_profile(profile)
    fitted = profile.kernels | profile.engine_overrides
    if as_json:
        emit_json(
            AutoCalibrationPayload(
                profile=CalibrationPayload(
                    name=profile.name,
                    path=str(path),
                    kernels=profile.kernels,
                    engine_overrides=profile.engine_overrides,
                    measured_matmul_tflops=profile.measured_matmul_tflops,
                    measured_mem_bw_gb_s=profile.measured_mem_bw_gb_s,
                    fitted_on=profile.fitted_on,
                    error_before=profile.error_before,
                    error_after=profile.error_after,
                ),
                run_ids=result.run_ids,
                before=result.before,
                rows=[
                    PredictionRowPayload(
                        run=r.label,
                        metric=r.metric,
                        measured=r.measured,
                        uncalibrated=r.uncalibrated,
                        calibrated=r.calibrated,
                    )
                    for r in result.rows
                ],
            )
        )
        return
    out.print(
        table(
            f"Calibration '{name}': what changed",
            ["parameter", "before", "after"],
            [[k, f"{result.before[k]:.4g}", f"{v:.4g}"] for k, v in fitted.items()],
        )
    )
    rows = [
        [r.label, _LABELS[r.metric], f"{r.measured:.4g}", f"{r.uncalibrated:.4g}", f"{r.calibrated:.4g}"]
        for r in result.rows
    ]
    out.print(table("Runs measured now (s, or tok/s)", ["run", "metric", "measured", "before", "after"], rows))
    remaining = ", ".join(
        f"{_LABELS[m]} {median_error(result.rows, False, m):.0%} -> {median_error(result.rows, True, m):.0%}"
        for m in METRICS
    )
    out.print(f"median error before -> after: {remaining}", markup=False)
    out.print(
        f"stored runs {', '.join(map(str, result.run_ids))}; saved {path}; use it with --calibration {name}",
        markup=False,
        highlight=False,
    )
