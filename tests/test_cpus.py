"""CPUs as devices: the catalog and its names, measured device files, the vLLM-CPU engine
profile (its KV cache, its deploy settings), and ``calibrate --auto`` against a live server."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from inferplan.bench.autocal import CALIBRATION_SET, PredictionRow, median_error, relative_error
from inferplan.bench.device_file import device_entry, save_device
from inferplan.bench.gpu import Measurement
from inferplan.cli import app
from inferplan.deploy.engine_args import KV_MARGIN, ServeTarget, engine_env, settings_for, vllm_settings
from inferplan.errors import ConfigError, InputError, UnknownGpuError
from inferplan.perf.accuracy import CPU_BASIS
from inferplan.perf.roofline import StepCostModel, step_shape
from inferplan.sizing.capacity import plan_memory
from inferplan.specs.cpus import cpu_catalog, cpu_peak_flops, memory_bandwidth_bytes_per_s
from inferplan.specs.deployment import Choices, resolve_deployment
from inferplan.specs.engines import get_engine
from inferplan.specs.hardware import get_gpu, gpus_per_server
from inferplan.specs.model_catalog import load_model
from inferplan.units import GIB
from tests.benchserver import process_server


@pytest.mark.parametrize(
    ("name", "cpu_id"),
    [
        ("AMD EPYC 9654", "epyc-9654"),
        ("AMD EPYC 9654 96-Core Processor", "epyc-9654"),
        ("Xeon Platinum 8480+", "xeon-8480plus"),
        ("Intel(R) Xeon(R) Platinum 8480+", "xeon-8480plus"),
        ("Intel Xeon 6980P", "xeon-6980p"),
        ("epyc-7763", "epyc-7763"),
        ("9755", "epyc-9755"),
    ],
)
def test_cpu_names_as_people_write_them(name: str, cpu_id: str) -> None:
    cpu = get_gpu(name)
    assert cpu.id == cpu_id and cpu.is_cpu and not get_gpu("h100").is_cpu


def test_cpu_peaks_are_derived_from_the_datasheet() -> None:
    spr, genoa, milan = get_gpu("xeon-8480plus"), get_gpu("epyc-9654"), get_gpu("epyc-7763")
    assert spr.peak_flops["bf16"] == pytest.approx(56 * 2.0e9 * 1024)  # AMX: 114.7 TFLOPS
    assert spr.peak_flops["fp32"] == pytest.approx(7.168e12)
    assert genoa.mem_bw_bytes_per_s == pytest.approx(460.8e9)  # AMD's own per-socket figure
    assert milan.mem_bw_bytes_per_s == pytest.approx(204.8e9)
    assert cpu_peak_flops(64, 2.45, 32) == pytest.approx(5.0176e12)
    assert memory_bandwidth_bytes_per_s(12, 6400) == pytest.approx(614.4e9)
    assert milan.flops_for("bf16") < milan.flops_for("fp32") / 50  # no native BF16 on Zen 3
    assert gpus_per_server(genoa) == 2  # one rank per socket
    assert all(c.peak_flops["fp32"] > 1e12 and c.sources for c in cpu_catalog().values())
    with pytest.raises(UnknownGpuError, match="epyc-9654"):
        get_gpu("EPYC 9655X")


def _measurements() -> list[Measurement]:
    return [
        Measurement("gemm_tflops", 0.08, "TFLOPS", {"dtype": "fp32", "m": 2048}),
        Measurement("gemm_tflops", 0.05, "TFLOPS", {"dtype": "fp32", "m": 512}),
        Measurement("gemm_tflops", 0.0012, "TFLOPS", {"dtype": "bf16", "m": 512}),
        Measurement("memory_bandwidth_gb_s", 16.0, "GB/s", {}),
    ]


def test_measured_device_file_round_trip(tmp_path: Path) -> None:
    device = {"device": "cpu", "name": "CPU (no GPU found)", "threads": 1, "torch": "2.13.0"}
    path = save_device(tmp_path / "cpu.yaml", device_entry(device, _measurements()))
    cpu = get_gpu(f"measured:{path}")
    assert cpu.is_cpu and cpu.peak_flops["fp32"] == pytest.approx(0.08e12)
    assert cpu.measured_matmul_flops["fp32"] == cpu.peak_flops["fp32"]  # achievable = measured
    assert cpu.mem_bw_bytes_per_s == pytest.approx(16e9)
    (tmp_path / "bad.yaml").write_text("id: x\nname: y\n")
    with pytest.raises(ConfigError, match="bench gpu --save-device"):
        get_gpu(f"measured:{tmp_path / 'bad.yaml'}")
    with pytest.raises(ConfigError, match="cannot read"):
        get_gpu(f"measured:{tmp_path / 'missing.yaml'}")


def test_vllm_on_a_cpu_is_vllm_cpu_and_its_kv_cache_is_the_env_var() -> None:
    model = load_model("llama-3.2-1b")
    dep = resolve_deployment(model, Choices("AMD EPYC 9654"))
    assert dep.engine.name == "vllm-cpu" and dep.engine.block_size == 128 and dep.engine.max_num_seqs == 128
    explicit = replace(dep, engine=replace(dep.engine, kv_cache_space_gib=4))
    assert plan_memory(explicit).kv_cache_bytes == 4 * GIB
    assert plan_memory(replace(dep, engine=replace(dep.engine, kv_cache_space_gib=100_000))).num_blocks == 0
    spec = settings_for(dep, ServeTarget("meta-llama/Llama-3.2-1B", context_tokens=4096, concurrency=16))
    space = int(engine_env(spec)["VLLM_CPU_KVCACHE_SPACE"])
    need = plan_memory(dep).sequence_bytes(4096) * 16 * KV_MARGIN  # 16 x 128 MiB, 5% margin: 3 GiB
    assert space * GIB >= need > (space - 1) * GIB
    assert spec.engine == "vllm" and "cpu" in spec.image
    fp32 = resolve_deployment(model, Choices("epyc-7763", "fp32"))
    assert fp32.kv_dtype.name == "fp32" and vllm_settings(replace(spec, deployment=fp32))["dtype"] == "float32"
    with pytest.raises(InputError, match="AVX-512"):
        resolve_deployment(model, Choices("epyc-7763", "bf16", "fp8"))


def test_vllm_cpu_scheduler_limits_scale_with_the_world_size() -> None:
    """vLLM-CPU's defaults are per rank: 2048 batched tokens and 128 sequences behind the server,
    times TP x PP (4096 and 256 per rank for the offline LLM class)."""
    model = load_model("llama-3.1-8b")
    one = resolve_deployment(model, Choices("xeon-8480plus", tp=1)).engine
    two = resolve_deployment(model, Choices("xeon-8480plus", count=2, tp=2)).engine
    assert (one.max_num_batched_tokens, one.max_num_seqs) == (2048, 128)
    assert (two.max_num_batched_tokens, two.max_num_seqs) == (4096, 256)
    fit = CliRunner().invoke(app, ["fit", "llama-3.1-8b", "--gpu", "xeon-8480plus", "--tp", "2", "--json"])
    assert fit.exit_code == 0, fit.output
    engine = json.loads(fit.stdout)["engine"]
    assert (engine["max_num_batched_tokens"], engine["max_num_seqs"]) == (4096, 256)
    assert "world size 2" in engine["defaults"]
    offline = ["fit", "llama-3.1-8b", "--gpu", "xeon-8480plus", "--entry-point", "offline", "--json"]
    assert json.loads(CliRunner().invoke(app, offline).stdout)["engine"]["max_num_seqs"] == 256


def test_sequence_overhead_is_paid_per_sampled_sequence() -> None:
    dep = resolve_deployment(load_model("llama-3.2-1b"), Choices("epyc-9654"))
    slow = dep.with_engine(replace(dep.engine, sequence_overhead_s=1e-3))
    shape = step_shape([], [100] * 8)
    assert StepCostModel(slow).time_s(shape) - StepCostModel(dep).time_s(shape) == pytest.approx(8e-3)
    assert get_engine("vllm").sequence_overhead_s == 0.0  # GPU engines unchanged


def test_fit_and_plan_on_catalog_cpus() -> None:
    fit = CliRunner().invoke(app, ["fit", "llama-3.1-8b", "--gpu", "Xeon Platinum 8480+", "--json"])
    assert fit.exit_code == 0, fit.output
    assert json.loads(fit.stdout)["engine"]["name"] == "vllm-cpu"
    space = CliRunner().invoke(app, ["fit", "llama-3.1-8b", "--gpu", "epyc-9654", "--kv-cache-space", "64", "--json"])
    assert json.loads(space.stdout)["per_gpu"]["kv_cache_bytes"] == 64 * GIB
    gpu = CliRunner().invoke(app, ["fit", "llama-3.1-8b", "--gpu", "h100", "--kv-cache-space", "64"])
    assert gpu.exit_code != 0 and "vLLM-CPU" in gpu.output
    args = ["plan", "llama-3.1-8b", "--isl", "1000", "--osl", "200", "--rate", "1", "--tpot", "100ms"]
    plan = CliRunner().invoke(app, [*args, "--gpus", "epyc-9654,epyc-7763", "--json"])
    assert plan.exit_code == 0, plan.output
    assert "vllm-cpu" in plan.stdout and "epyc-7763 TP1 bf16/fp8" not in plan.stdout


def test_a_cpu_plan_speaks_of_sockets_and_its_bands_of_gpu_measurements() -> None:
    """A plan on a CPU counts sockets (never 'GPUs'), sizes host memory, and says its error bands
    come from GPU measurements until a calibration of the CPU replaces them."""
    args = ["plan", "llama-3.2-1b", "--isl", "256", "--osl", "64", "--rate", "0.5", "--gpus", "Xeon Platinum 8480+"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    headline = " ".join(plan["headline"])
    assert "= 1 CPU socket on" in headline and "GPU" not in headline.replace("public GPU measurements", "")
    assert "1 replica " in headline and "replica(s)" not in headline and "1 replicas" not in headline
    assert {r["device"] for r in plan["ranked"]} == {"cpu"}
    table = CliRunner().invoke(app, args).output
    assert " sockets " in table and " GPUs " not in table  # the ranking counts sockets
    steps = {s["title"]: s["text"] for s in plan["steps"]}
    assert set(steps) >= {"1. Memory floor", "2. One CPU socket or several"}
    assert "no traffic between CPU sockets" in steps["3. Interconnect"]
    assert "GPU" not in steps["2. One CPU socket or several"] + steps["4. Storage and CPU"]
    assert {b["basis"] for b in plan["error_bands"].values()} == {CPU_BASIS}
    assert all("calibrate --auto" in b["text"] for b in plan["error_bands"].values())
    gpu = CliRunner().invoke(app, ["plan", "llama-3.2-1b", "--isl", "256", "--osl", "64", "--rate", "0.5", "--json"])
    assert CPU_BASIS not in gpu.stdout and "1. VRAM floor" in gpu.stdout  # GPU plans unchanged
    big = ["plan", "llama-3.1-70b", "--gpus", "EPYC 9654", "--dtypes", "bf16", "--isl", "512", "--osl", "128"]
    two = CliRunner().invoke(app, [*big, "--rate", "0.05", "--tpot", "500ms", "--verify", "0", "--json"])
    assert two.exit_code == 0, two.output
    tp2 = json.loads(two.stdout)
    assert "TP2" in tp2["recommendation"]["label"]
    link = next(s["text"] for s in tp2["steps"] if s["title"] == "3. Interconnect")
    assert "between the sockets" in link and "NVLink" not in link and "+0%" not in link


def test_error_figures() -> None:
    assert relative_error(1.1, 1.0) == pytest.approx(0.1)
    assert relative_error(1.0, 0.0) == float("inf")
    rows = [PredictionRow("a", "ttft_s", 1.0, 2.0, 1.1), PredictionRow("a", "tpot_s", 1.0, 0.5, 0.8)]
    assert median_error(rows, calibrated=False) == pytest.approx(0.75)
    assert median_error(rows, calibrated=True, metric="tpot_s") == pytest.approx(0.2)
    assert len({p.seed for p in CALIBRATION_SET}) == len(CALIBRATION_SET)  # no shared prompts


@pytest.mark.slow
def test_calibrate_auto_measures_fits_and_plan_uses_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERPLAN_HOME", str(tmp_path))
    with process_server(0.004) as (url, _):
        args = ["calibrate", "--auto", url, "--served-model", "m", "--name", "local", "--model", "llama-3.2-1b"]
        result = CliRunner().invoke(app, [*args, "--gpu", "epyc-9654", "--db", str(tmp_path / "r.db"), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert len(payload["run_ids"]) == 2 and len(payload["rows"]) == 6
    assert payload["profile"]["error_after"] <= payload["profile"]["error_before"]
    assert set(payload["before"]) == set(payload["profile"]["kernels"]) | set(payload["profile"]["engine_overrides"])
    assert (tmp_path / "calibrations" / "local.yaml").is_file()
    plan = ["plan", "llama-3.2-1b", "--isl", "256", "--osl", "64", "--rate", "2", "--gpus", "epyc-9654"]
    assert CliRunner().invoke(app, [*plan, "--calibration", "local"]).exit_code == 0
    bad = CliRunner().invoke(app, ["calibrate", "--name", "x", "--model", "llama-3.2-1b", "--gpu", "epyc-9654"])
    assert bad.exit_code != 0 and "--auto URL" in bad.output


def test_the_web_never_reads_a_measured_device_file() -> None:
    from inferplan.plan.question import PlanQuestion
    from inferplan.plan.service import answer

    question = PlanQuestion(model="llama-3.2-1b", isl=256, osl=64, rate_per_s=1.0, gpus=["measured:/etc/passwd"])
    with pytest.raises(InputError, match="CLI only"):
        answer(question, files=False)
