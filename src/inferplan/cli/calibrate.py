"""``inferplan calibrate``: fit the performance model to stored runs and save a profile."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Annotated

import typer

from inferplan.bench.calibration import calibrate, observation_from_records
from inferplan.bench.store import ResultsStore
from inferplan.cli.bench import DbOpt, JsonOpt, err, out
from inferplan.cli.calibrate_auto import auto_cmd
from inferplan.cli.common import emit_json, handles_errors
from inferplan.errors import InputError
from inferplan.present.payload_bench import CalibrationPayload
from inferplan.specs.calibration_profile import CalibrationProfile, save_profile
from inferplan.specs.deployment import Choices, resolve_deployment
from inferplan.specs.engines import get_engine
from inferplan.specs.model_catalog import load_model

__all__ = ["calibrate_cmd"]


@handles_errors
def calibrate_cmd(
    name: Annotated[str, typer.Option(help="Profile name, used as --calibration NAME later.")],
    model: Annotated[str, typer.Option(help="The model the server ran (catalog name, config.json or folder).")],
    gpu: Annotated[str, typer.Option(help="The GPU (or CPU, or measured:FILE) it ran on.")],
    run_ids: Annotated[
        list[int] | None, typer.Argument(metavar="[RUN...]", help="Serving runs and/or 'bench gpu' runs.")
    ] = None,
    auto: Annotated[
        str | None,
        typer.Option(help="Measure the calibration set against this live server URL first (about a minute)."),
    ] = None,
    served_model: Annotated[str | None, typer.Option(help="The model name the server serves (--auto).")] = None,
    tp: Annotated[int, typer.Option(min=1, max=64)] = 1,
    pp: Annotated[int, typer.Option(min=1, max=64)] = 1,
    dtype: Annotated[str, typer.Option()] = "auto",
    kv_dtype: Annotated[str, typer.Option()] = "auto",
    engine: Annotated[str, typer.Option()] = "vllm",
    params: Annotated[str, typer.Option(help="Parameters to fit.")] = "step_overhead_s,mem_efficiency,gemm_efficiency",
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fit the performance model to measured runs and save a calibration profile; with --auto URL,
    measure the calibration set on that server first (stored as runs), then fit and report."""
    dep = resolve_deployment(load_model(model), Choices(gpu, dtype, kv_dtype, tp=tp, pp=pp), get_engine(engine))
    if auto is not None:
        if run_ids:
            raise InputError("give either --auto URL or stored RUN ids, not both")
        auto_cmd(auto, served_model or model, dep, name, db, as_json)
        return
    if not run_ids:
        raise InputError("give the stored runs to fit (RUN...), or --auto URL to measure them now")
    store = ResultsStore(db)
    try:
        serving = [store.run(i) for i in run_ids]
        observations = [
            observation_from_records(str(r.id), store.records(r.id), traffic=r.traffic)
            for r in serving
            if r.kind != "gpu"
        ]
        measured = [m for r in serving if r.kind == "gpu" for m in store.measurements(r.id)]
    finally:
        store.close()
    matmul: dict[str, float] = {}
    for m in measured:
        if m["name"] == "gemm_tflops":
            dt = str(m["params"].get("dtype"))
            matmul[dt] = max(matmul.get(dt, 0.0), float(m["value"]))
    bandwidth = max((float(m["value"]) for m in measured if m["name"] == "memory_bandwidth_gb_s"), default=None)
    fields = tuple(p.strip() for p in params.split(",") if p.strip())
    if observations:
        profile = calibrate(name, observations, dep, fields, log=None if as_json else err.print)
    else:
        profile = CalibrationProfile(name=name, engine=dep.engine.name, gpu=dep.gpu.id)
    kernels = dict(profile.kernels)
    if bandwidth:  # a measured copy bandwidth sets the streaming efficiency directly
        kernels["mem_efficiency"] = min(bandwidth * 1e9 / dep.gpu.mem_bw_bytes_per_s, 0.98)
    profile = replace(
        profile,
        kernels=kernels,
        measured_matmul_tflops=profile.measured_matmul_tflops | matmul,
        measured_mem_bw_gb_s=bandwidth or profile.measured_mem_bw_gb_s,
    )
    path = save_profile(profile)
    if as_json:
        emit_json(
            CalibrationPayload(
                name=profile.name,
                path=str(path),
                kernels=profile.kernels,
                engine_overrides=profile.engine_overrides,
                measured_matmul_tflops=profile.measured_matmul_tflops,
                measured_mem_bw_gb_s=profile.measured_mem_bw_gb_s,
                fitted_on=profile.fitted_on,
                error_before=profile.error_before,
                error_after=profile.error_after,
            )
        )
        return
    if profile.error_before is not None and profile.error_after is not None:
        out.print(
            f"mean |log error| of TTFT, TPOT and throughput over {len(observations)} run(s): "
            f"{profile.error_before:.3f} before, {profile.error_after:.3f} after "
            f"(about {math.expm1(profile.error_before) * 100:.0f}% -> {math.expm1(profile.error_after) * 100:.0f}%)"
        )
    fitted = profile.kernels | profile.engine_overrides
    out.print("fitted: " + ", ".join(f"{k}={v:.4g}" for k, v in fitted.items()), markup=False)
    out.print(f"saved {path}; use it with --calibration {profile.name}", markup=False, highlight=False)
