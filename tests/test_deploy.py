"""Deploy: memory settings that hold the planned KV cache, valid manifests, clear errors."""

from __future__ import annotations

import shlex
from dataclasses import replace

import pytest
import yaml
from typer.testing import CliRunner

from inferplan.cli import app
from inferplan.deploy.engine_args import DeploySpec, ServeTarget, engine_command, settings_for
from inferplan.deploy.manifests import compose_manifest, k8s_manifests, shell_script
from inferplan.errors import DoesNotFitError, InputError
from inferplan.sizing.capacity import plan_memory
from inferplan.specs.deployment import Deployment
from inferplan.specs.engines import get_engine
from inferplan.specs.hardware import get_gpu
from inferplan.specs.model_catalog import load_model
from inferplan.specs.parallelism import Parallelism
from inferplan.specs.precision import get_kv_dtype, get_precision

MODEL = load_model("llama-3.1-70b")
H100 = get_gpu("h100-sxm")
FP8, KV8 = get_precision("fp8"), get_kv_dtype("fp8")


def spec(engine: str = "vllm", dp: int = 1, concurrency: int = 64, tp: int = 4) -> DeploySpec:
    dep = Deployment(MODEL, H100, FP8, KV8, Parallelism(tp=tp, dp=dp), get_engine(engine))
    return settings_for(dep, ServeTarget("meta-llama/Llama-3.1-70B", 8192, concurrency))


def test_memory_fraction_holds_the_planned_kv_cache() -> None:
    s = spec()
    vllm = get_engine("vllm")
    engine = replace(vllm, gpu_memory_utilization=s.memory_fraction, max_num_seqs=64)
    plan = plan_memory(Deployment(MODEL, H100, FP8, KV8, Parallelism(tp=4), engine))
    assert plan.max_sequences(8192) >= 64
    tighter_engine = replace(engine, gpu_memory_utilization=s.memory_fraction - 0.05)
    tighter = plan_memory(Deployment(MODEL, H100, FP8, KV8, Parallelism(tp=4), tighter_engine))
    assert tighter.max_sequences(8192) < 64 * 1.05  # not wastefully high
    assert 0.5 <= s.memory_fraction <= 0.95


def test_vllm_command_arguments() -> None:
    cmd = engine_command(spec())
    assert cmd[:3] == ["vllm", "serve", "meta-llama/Llama-3.1-70B"]
    args = dict(zip(cmd[3::2], cmd[4::2], strict=True))
    assert args["--tensor-parallel-size"] == "4" and args["--max-model-len"] == "8192"
    assert args["--kv-cache-dtype"] == "fp8" and args["--quantization"] == "fp8"
    assert args["--max-num-seqs"] == "64" and float(args["--gpu-memory-utilization"]) == spec().memory_fraction
    py = engine_command(spec(), python="/opt/venv/bin/python")
    assert py[:4] == ["/opt/venv/bin/python", "-m", "vllm.entrypoints.openai.api_server", "--model"]


def test_sglang_command_arguments() -> None:
    cmd = engine_command(spec("sglang"))
    assert cmd[:3] == ["python3", "-m", "sglang.launch_server"]
    args = dict(zip(cmd[3::2], cmd[4::2], strict=True))
    assert args["--tp-size"] == "4" and args["--context-length"] == "8192"
    assert args["--kv-cache-dtype"] == "fp8_e4m3" and args["--max-running-requests"] == "64"


def test_shell_script_is_runnable_text() -> None:
    text = shell_script(spec())
    assert text.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in text
    last = shlex.split(text.strip().splitlines()[-1])
    assert last[:2] == ["vllm", "serve"]


def test_compose_manifest() -> None:
    doc = yaml.safe_load(yaml.safe_dump(compose_manifest(spec(dp=2))))
    services = doc["services"]
    assert set(services) == {"vllm-0", "vllm-1"}
    devices = [s["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] for s in services.values()]
    assert devices == [["0", "1", "2", "3"], ["4", "5", "6", "7"]]  # disjoint GPUs per replica
    assert services["vllm-1"]["ports"] == ["8001:8000"]
    assert services["vllm-0"]["command"][0] == "meta-llama/Llama-3.1-70B"
    assert services["vllm-0"]["command"].count("meta-llama/Llama-3.1-70B") == 1


def test_k8s_manifests() -> None:
    docs = list(yaml.safe_load_all(yaml.safe_dump_all(k8s_manifests(spec(dp=3)))))
    deployment, service = docs
    assert deployment["apiVersion"] == "apps/v1" and deployment["kind"] == "Deployment"
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    assert pod["volumes"][0]["emptyDir"]["medium"] == "Memory"
    assert deployment["spec"]["selector"]["matchLabels"] == deployment["spec"]["template"]["metadata"]["labels"]
    assert service["kind"] == "Service" and service["spec"]["selector"] == {"app": deployment["metadata"]["name"]}


def test_multi_node_needs_shell() -> None:
    dep = Deployment(
        load_model("llama-3.1-405b"), H100, get_precision("bf16"), get_kv_dtype("bf16"), Parallelism(tp=8, pp=2)
    )
    big = settings_for(dep, ServeTarget("meta-llama/Llama-3.1-405B", 4096, 8))
    assert big.nodes_per_replica == 2
    assert "NCCL_IB_DISABLE=0" in shell_script(big) and "ray start" in shell_script(big)
    with pytest.raises(InputError, match="spans 2 servers"):
        k8s_manifests(big)


def test_errors() -> None:
    with pytest.raises(DoesNotFitError, match="memory fraction"):
        spec(tp=1, concurrency=256)
    with pytest.raises(InputError, match="--engine"):
        spec("trtllm")
    with pytest.raises(InputError, match="pre-quantised"):
        int4 = Deployment(MODEL, H100, get_precision("int4"), KV8, Parallelism(tp=2))
        engine_command(settings_for(int4, ServeTarget("m", 4096, 4)))


def test_deploy_cli() -> None:
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "deploy",
            "llama-3.1-70b",
            "--gpu",
            "h100-sxm",
            "--tp",
            "4",
            "--dtype",
            "fp8",
            "--format",
            "k8s",
            "--concurrency",
            "32",
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(list(yaml.safe_load_all(result.stdout))) == 2
    bad = runner.invoke(app, ["deploy", "llama-3.1-70b", "--gpu", "h100-sxm", "--format", "helm"])
    assert bad.exit_code != 0
    launch = runner.invoke(
        app, ["deploy", "llama-3.1-8b", "--gpu", "h100", "--format", "k8s", "--launch", "--concurrency", "4"]
    )
    assert launch.exit_code == 2 and "--format shell" in launch.stderr
