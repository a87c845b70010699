"""Deploy files for speculative decoding and disaggregated prefill/decode (issue 14): vLLM's
``--speculative-config`` and ``--kv-transfer-config`` (0.33 keys only), SGLang's speculative and
disaggregation flags, the routers' commands parsed by the routers' own argument parsers, and the
Kubernetes form validated strictly (kubernetes-validate) with its router finding the pools' pods."""

from __future__ import annotations

import argparse
import json
import shlex
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from inferplan.cli import app
from inferplan.deploy.disagg_kube import ENGINE_PORT, disagg_k8s_manifests, render_disagg
from inferplan.deploy.disaggregated import (
    DisaggDeploySpec,
    disagg_settings,
    disagg_shell_script,
    kv_transfer_config,
    router_command,
)
from inferplan.deploy.engine_args import ServeTarget, engine_command, settings_for, sglang_settings, vllm_settings
from inferplan.deploy.ray_serve import ray_serve_config
from inferplan.errors import InputError
from inferplan.specs.deployment import Deployment
from inferplan.specs.disaggregation import Disaggregated
from inferplan.specs.engines import get_engine
from inferplan.specs.hardware import get_gpu
from inferplan.specs.model_catalog import load_model
from inferplan.specs.parallelism import Parallelism
from inferplan.specs.precision import get_kv_dtype, get_precision
from inferplan.specs.speculation import resolve_speculation
from tests.test_deploy_stacks import k8s_errors

#: vLLM 0.33's SpeculativeConfig / KVTransferConfig keys (vllm/config/speculative.py, kv_transfer.py)
SPEC_KEYS = {
    "method",
    "num_speculative_tokens",
    "model",
    "draft_tensor_parallel_size",
    "prompt_lookup_min",
    "prompt_lookup_max",
}
KV_KEYS = {
    "kv_connector",
    "kv_role",
    "kv_connector_extra_config",
    "kv_load_failure_policy",
    "kv_buffer_device",
    "kv_port",
}
TARGET = ServeTarget("meta-llama/Llama-3.1-70B", 8192, 32)


def dep(engine: str = "vllm", tp: int = 4, replicas: int = 1, **words: object) -> Deployment:
    m = load_model("llama-3.1-70b")
    d = Deployment(m, get_gpu("h100"), get_precision("fp8"), get_kv_dtype("fp8"), Parallelism(tp=tp, dp=replicas))
    return d.with_engine(get_engine(engine)).with_speculation(resolve_speculation(m, dict(words), load_model))


def split(engine: str = "vllm", x: int = 1, y: int = 1, tp: int = 4, **kw: object) -> DisaggDeploySpec:
    dis = Disaggregated(dep(engine, tp, x), dep(engine, tp, y), **kw)  # type: ignore[arg-type]
    return disagg_settings(dis, TARGET)


# ---------------------------------------------------------------- speculative decoding


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (
            {"method": "eagle3", "model": "org/head"},
            {"method": "eagle3", "num_speculative_tokens": 3, "model": "org/head"},
        ),
        (
            {"method": "draft_model", "model": "llama-3.2-1b", "draft_tp": 1},
            {
                "method": "draft_model",
                "num_speculative_tokens": 3,
                "model": "meta-llama/Llama-3.2-1B",
                "draft_tensor_parallel_size": 1,
            },
        ),
        (
            {"method": "ngram", "tokens": 4},
            {"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_min": 2, "prompt_lookup_max": 5},
        ),
    ],
)
def test_vllm_speculative_config(words: dict[str, object], expected: dict[str, object]) -> None:
    settings = vllm_settings(settings_for(dep(**words), TARGET))
    config = json.loads(str(settings["speculative_config"]))
    assert config == expected and set(config) <= SPEC_KEYS
    cmd = engine_command(settings_for(dep(**words), TARGET))
    assert cmd[cmd.index("--speculative-config") + 1] == settings["speculative_config"]


def test_mtp_and_sglang_flags() -> None:
    ds = load_model("deepseek-v3")
    d = Deployment(ds, get_gpu("h200"), get_precision("fp8"), get_kv_dtype("fp8"), Parallelism(tp=8))
    d = d.with_speculation(resolve_speculation(ds, {"method": "mtp"}, load_model))
    target = ServeTarget("deepseek-ai/DeepSeek-V3", 8192, 8)
    assert json.loads(str(vllm_settings(settings_for(d, target))["speculative_config"])) == {
        "method": "mtp",
        "num_speculative_tokens": 1,
    }
    sg = sglang_settings(settings_for(d.with_engine(get_engine("sglang")), target))
    assert sg["speculative_algorithm"] == "NEXTN" and sg["speculative_num_steps"] == 1
    assert sg["speculative_eagle_topk"] == 1 and sg["speculative_num_draft_tokens"] == 2
    assert "speculative_draft_model_path" not in sg
    eagle = sglang_settings(settings_for(dep("sglang", method="eagle3", model="org/head"), TARGET))
    assert eagle["speculative_algorithm"] == "EAGLE3" and eagle["speculative_draft_model_path"] == "org/head"


def test_speculation_deploy_refusals() -> None:
    with pytest.raises(InputError, match="head's hub id"):
        vllm_settings(settings_for(dep(method="eagle3"), TARGET))  # no head is catalogued for Llama-3.1-70B
    with pytest.raises(InputError, match="1 or the target's TP"):
        vllm_settings(settings_for(dep(method="draft_model", model="llama-3.2-1b", draft_tp=2), TARGET))


def test_ray_serve_takes_the_speculative_config_as_an_object() -> None:
    spec = settings_for(dep(method="ngram"), TARGET)
    kwargs = ray_serve_config(spec)["applications"][0]["args"]["llm_configs"][0]["engine_kwargs"]
    assert kwargs["speculative_config"]["method"] == "ngram"


# ---------------------------------------------------------------- disaggregated: vLLM


def _lines(script: str, needle: str) -> list[list[str]]:
    return [shlex.split(line) for line in script.splitlines() if needle in line and not line.startswith("#")]


def test_vllm_pools_carry_their_kv_role() -> None:
    script = disagg_shell_script(split())
    engines = _lines(script, "vllm serve")
    assert len(engines) == 2
    for argv, role in zip(engines, ("kv_producer", "kv_consumer"), strict=True):
        config = json.loads(argv[argv.index("--kv-transfer-config") + 1])
        assert config == {"kv_connector": "NixlConnector", "kv_role": role}
        assert set(config) <= KV_KEYS  # no kv_rank / kv_parallel_size / kv_buffer_size: 0.33 refuses them
    assert "P2pNccl" not in script and "kv_rank" not in script
    assert "VLLM_NIXL_SIDE_CHANNEL_PORT=5600" in script and "VLLM_NIXL_SIDE_CHANNEL_PORT=5601" in script
    assert "CUDA_VISIBLE_DEVICES=0,1,2,3" in script and "CUDA_VISIBLE_DEVICES=4,5,6,7" in script
    assert "seq 360" in script  # every wait is bounded


def _vllm_router(argv: list[str]) -> Any:
    from vllm_router.router_args import RouterArgs

    parser = argparse.ArgumentParser()
    RouterArgs.add_cli_args(parser)
    args = RouterArgs.from_cli_args(parser.parse_args(argv))
    args._validate_router_args()
    return args


def _sglang_router(argv: list[str]) -> Any:
    from sglang_router.router_args import RouterArgs

    parser = argparse.ArgumentParser()
    RouterArgs.add_cli_args(parser)
    return RouterArgs.from_cli_args(parser.parse_args(argv))


def test_the_routers_parse_their_commands() -> None:
    pytest.importorskip("vllm_router")
    pytest.importorskip("sglang_router")
    v = router_command(split(), ["http://p0:8100", "http://p1:8101"], ["http://d0:8200"])
    assert v[0] == "vllm-router"
    args = _vllm_router(v[1:])
    assert args.vllm_pd_disaggregation and args.kv_connector == "nixl"
    assert [u for u, _ in args.prefill_urls] == ["http://p0:8100", "http://p1:8101"] and args.decode_urls == [
        "http://d0:8200"
    ]
    s = router_command(split("sglang"), ["http://p0:8100", "http://p1:8101"], ["http://d0:8200"])
    assert s[:3] == ["python3", "-m", "sglang_router.launch_router"]
    sargs = _sglang_router(s[3:])
    assert sargs.pd_disaggregation and sargs.prefill_urls == [("http://p0:8100", 8998), ("http://p1:8101", 8999)]
    with pytest.raises(SystemExit):  # the parsers can fail: a typo is refused
        _vllm_router(["--vllm-pd-disagregation"])


def test_sglang_pools_carry_their_mode() -> None:
    script = disagg_shell_script(split("sglang", x=2, tp=2))
    engines = _lines(script, "sglang.launch_server")
    modes = [argv[argv.index("--disaggregation-mode") + 1] for argv in engines]
    assert modes == ["prefill", "prefill", "decode"]
    assert [argv[argv.index("--disaggregation-transfer-backend") + 1] for argv in engines] == ["mooncake"] * 3
    ports = [argv[argv.index("--disaggregation-bootstrap-port") + 1] for argv in engines[:2]]
    assert ports == ["8998", "8999"] and "--disaggregation-bootstrap-port" not in engines[2]
    assert "sglang_router.launch_router --pd-disaggregation --prefill http://127.0.0.1:8100 8998" in script


def test_shell_refuses_pools_beyond_one_server() -> None:
    with pytest.raises(InputError, match="--format k8s"):
        disagg_shell_script(split(x=2, y=1))  # 12 GPUs of 8
    with pytest.raises(InputError, match="LMCacheConnectorV1"):
        split(connector="LMCacheConnectorV1")


# ---------------------------------------------------------------- disaggregated: Kubernetes


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_k8s_pools_validate_strictly(engine: str) -> None:
    spec = split(engine, x=2, y=3)
    docs = disagg_k8s_manifests(spec)
    assert [d["kind"] for d in docs] == [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Deployment",
        "Deployment",
        "Deployment",
        "Service",
    ]
    for doc in docs:
        assert k8s_errors(doc) == [], doc["kind"]
    prefill, decode, router = docs[3:6]
    assert prefill["spec"]["replicas"] == 2 and decode["spec"]["replicas"] == 3
    command = router["spec"]["template"]["spec"]["containers"][0]["command"]
    for pool in (prefill, decode):  # the router's selectors find each pool's pods
        app_label = pool["spec"]["template"]["metadata"]["labels"]["app"]
        assert f"app={app_label}" in command
        container = pool["spec"]["template"]["spec"]["containers"][0]
        assert container["ports"][0]["containerPort"] == ENGINE_PORT
        assert container["resources"]["limits"] == {"nvidia.com/gpu": "4"}
    assert router["spec"]["template"]["spec"]["serviceAccountName"] == docs[0]["metadata"]["name"]
    assert "$(POD_NAMESPACE)" in command and docs[1]["rules"][0]["verbs"] == ["get", "list", "watch"]


def test_k8s_validation_can_fail() -> None:
    docs = disagg_k8s_manifests(split())
    docs[3]["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    assert k8s_errors(docs[3])


def test_render_refuses_other_formats() -> None:
    with pytest.raises(InputError, match="shell or k8s"):
        render_disagg(split(), "kserve")
    assert yaml.safe_load_all(render_disagg(split(), "k8s"))


# ---------------------------------------------------------------- the command


def test_deploy_cli_disaggregated_and_speculative() -> None:
    runner = CliRunner()
    base = ["deploy", "llama-3.1-70b", "--gpu", "h100", "--tp", "4", "--dtype", "fp8", "--kv-dtype", "fp8"]
    result = runner.invoke(app, [*base, "--prefill-replicas", "1", "--decode-replicas", "1", "--spec", "ngram"])
    assert result.exit_code == 0, result.output
    assert "--speculative-config" in result.output and "kv_consumer" in result.output
    k8s = runner.invoke(app, [*base, "--prefill-replicas", "2", "--decode-replicas", "2", "--format", "k8s"])
    assert k8s.exit_code == 0 and "kind: RoleBinding" in k8s.output
    bad = runner.invoke(app, [*base, "--prefill-replicas", "1", "--format", "kserve"])
    assert bad.exit_code == 2 and "shell or k8s" in bad.output
    dp = runner.invoke(app, [*base, "--dp", "2", "--prefill-replicas", "1"])
    assert dp.exit_code == 2 and "--dp" in dp.output


def test_kv_transfer_config_is_json() -> None:
    assert json.loads(kv_transfer_config("NixlConnector", "decode")) == {
        "kv_connector": "NixlConnector",
        "kv_role": "kv_consumer",
    }
