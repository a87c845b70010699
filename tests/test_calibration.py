"""Calibration recovers known parameters from synthetic measurements, and profiles apply."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from inferplan.bench.calibration import Observation, Schedule, calibrate, fit_parameters, observation_from_records
from inferplan.bench.client import RequestRecord
from inferplan.bench.store import ResultsStore
from inferplan.cli import app
from inferplan.errors import ConfigError, InputError
from inferplan.perf.metrics import serving_metrics
from inferplan.perf.replica import build_replica
from inferplan.perf.simulator import simulate
from inferplan.perf.workload import Arrivals, LengthDist, Workload, make_requests
from inferplan.specs.calibration_profile import apply_profile, load_profile, save_profile
from inferplan.specs.deployment import Deployment
from inferplan.specs.engines import EngineProfile, get_engine
from inferplan.specs.hardware import get_gpu
from inferplan.specs.model_catalog import load_model
from inferplan.specs.precision import get_kv_dtype, get_precision
from tests.conftest import store_simulated_run

MODEL, GPU = load_model("llama-3.1-8b"), get_gpu("h100-sxm")
BF16, KV = get_precision("bf16"), get_kv_dtype("bf16")


def on(engine: EngineProfile) -> Deployment:
    return Deployment(MODEL, GPU, BF16, KV, engine=engine)


def measured(engine_truth, rate: float, seed: int) -> Observation:  # type: ignore[no-untyped-def]
    """What a server with the 'true' parameters would show."""
    reqs = make_requests(
        Workload(
            LengthDist(600, "uniform", 300),
            LengthDist(120, "uniform", 60),
            Arrivals("poisson", rate_per_s=rate),
            150,
            seed,
        )
    )
    m = serving_metrics(simulate(build_replica(on(engine_truth)), reqs))
    return Observation(f"synthetic-{rate}", reqs, m.ttft_s.mean, m.tpot_s.mean, m.output_token_throughput_per_s)


def test_fit_parameters_finds_a_known_minimum() -> None:
    target = {"a": 3.0, "b": 0.02}
    params, best = fit_parameters(
        lambda p: abs(np.log(p["a"] / 3.0)) + abs(np.log(p["b"] / 0.02)),
        {"a": 1.0, "b": 0.1},
        {"a": (0.1, 10), "b": (1e-4, 1)},
        Schedule(rounds=8),
    )
    assert params["a"] == pytest.approx(target["a"], rel=0.1) and params["b"] == pytest.approx(target["b"], rel=0.1)
    assert best < 0.15


def test_calibration_recovers_known_parameters() -> None:
    base = get_engine("vllm")
    truth = replace(base, step_overhead_s=6e-3, kernels=replace(base.kernels, mem_efficiency=0.6))
    observations = [measured(truth, rate, seed) for rate, seed in ((2.0, 1), (8.0, 2), (20.0, 3))]
    profile = calibrate("synthetic", observations, on(base), ("step_overhead_s", "mem_efficiency"))
    assert profile.engine_overrides["step_overhead_s"] == pytest.approx(6e-3, rel=0.15)
    assert profile.kernels["mem_efficiency"] == pytest.approx(0.6, rel=0.1)
    assert profile.error_after is not None and profile.error_before is not None
    assert profile.error_after < profile.error_before / 3


def test_profiles_save_load_and_apply(tmp_path: Path) -> None:
    base = get_engine("vllm")
    profile = calibrate("p1", [measured(base, 4.0, 0)], on(base), ("step_overhead_s",))
    profile = replace(profile, measured_matmul_tflops={"bf16": 700.0})
    path = save_profile(profile, tmp_path)
    loaded = load_profile("p1", tmp_path)
    assert loaded == profile and load_profile(str(path)) == profile
    engine, gpu = apply_profile(base, GPU, loaded)
    assert engine.step_overhead_s == profile.engine_overrides["step_overhead_s"]
    assert gpu.measured_matmul_flops["bf16"] == pytest.approx(700e12)
    _, untouched = apply_profile(base, get_gpu("a100-sxm-80gb"), loaded)
    assert untouched.measured_matmul_flops == get_gpu("a100-sxm-80gb").measured_matmul_flops
    with pytest.raises(ConfigError, match="no calibration profile"):
        load_profile("missing", tmp_path)


def test_bad_calibration_requests() -> None:
    with pytest.raises(InputError, match="cannot calibrate"):
        calibrate("x", [measured(get_engine("vllm"), 2.0, 0)], on(get_engine("vllm")), ("vibes",))
    with pytest.raises(InputError, match="fewer than two"):
        observation_from_records("1", [RequestRecord(0, 0.0)])


def test_calibrate_cli_from_stored_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERPLAN_HOME", str(tmp_path))
    db = tmp_path / "r.db"
    store = ResultsStore(db)
    base = get_engine("vllm")
    truth = replace(base, step_overhead_s=5e-3)
    reqs = make_requests(Workload(LengthDist(500), LengthDist(100), Arrivals("poisson", rate_per_s=5.0), 60, 4))
    sim = simulate(build_replica(on(truth)), reqs)
    run_id = store_simulated_run(store, reqs, sim)
    gpu_run = store.start_run("gpu", {}, {})
    store.add_measurement(gpu_run, "gemm_tflops", 650.0, "TFLOPS", {"dtype": "bf16", "m": 8192})
    store.add_measurement(gpu_run, "memory_bandwidth_gb_s", 2900.0, "GB/s", {})
    store.close()
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "calibrate",
            str(run_id),
            str(gpu_run),
            "--name",
            "mybox",
            "--model",
            "llama-3.1-8b",
            "--gpu",
            "h100-sxm",
            "--params",
            "step_overhead_s",
            "--db",
            str(db),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    import json

    d = json.loads(result.stdout)
    assert d["engine_overrides"]["step_overhead_s"] == pytest.approx(5e-3, rel=0.25)
    assert d["measured_matmul_tflops"] == {"bf16": 650.0}
    assert d["kernels"]["mem_efficiency"] == pytest.approx(2900e9 / GPU.mem_bw_bytes_per_s)
    predicted = runner.invoke(
        app,
        [
            "predict",
            "llama-3.1-8b",
            "--gpu",
            "h100-sxm",
            "--rate",
            "2",
            "--num-requests",
            "30",
            "--calibration",
            "mybox",
            "--json",
        ],
    )
    assert predicted.exit_code == 0, predicted.output
    missing = runner.invoke(app, ["predict", "llama-3.1-8b", "--gpu", "h100", "--rate", "1", "--calibration", "nope"])
    assert missing.exit_code == 2 and "no calibration profile" in missing.stderr


def test_error_bands_come_from_the_calibration_residuals(tmp_path: Path) -> None:
    """Issue 17: after calibration the bands printed with each figure are the profile's own
    residuals for that deployment, not the public table's; junk in a profile file is ignored."""
    from inferplan.perf.accuracy import calibrated_bands, error_band
    from inferplan.plan.question import PlanQuestion
    from inferplan.plan.service import answer
    from inferplan.present.payload_plan import plan_payload
    from inferplan.specs.calibration_profile import CalibrationProfile, save_profile

    residuals: dict[str, list[float]] = {"ttft": [2.0, 4.0, 6.0, 40.0], "tpot": [1.0, 3.0, float("nan")]}
    profile = CalibrationProfile(name="tight", engine="vllm", residual_pct=residuals)
    table = error_band("ttft")
    assert table is not None and "public" in table.text()
    mine = calibrated_bands(profile)
    assert mine["ttft"].median_pct == pytest.approx(5.0) and mine["ttft"].rows == 4
    assert mine["tpot"].median_pct == pytest.approx(2.0) and mine["tpot"].rows == 2  # NaN dropped
    assert mine["e2e"].median_pct == pytest.approx(2.0)  # follows TPOT
    assert mine["throughput"] == calibrated_bands(None)["throughput"]  # not measured: the table's
    path = save_profile(profile, tmp_path)
    q = PlanQuestion.model_validate(
        {
            "model": "llama-3.1-8b",
            "isl": 1000,
            "osl": 200,
            "rate_per_s": 2.0,
            "gpus": ["h100-sxm"],
            "calibration": str(path),
        }
    )
    payload = plan_payload(answer(q, files=True), 5)
    assert payload.error_bands["ttft"].median_ape_pct == pytest.approx(5.0)
    assert payload.error_bands["ttft"].basis == "calibration profile tight"
    check = next(line for line in payload.headline if line.startswith("Simulated check"))
    assert "calibration run(s) of this deployment (calibration profile tight)" in check
