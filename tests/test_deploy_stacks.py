"""Deploy formats for the serving stacks (KServe, llm-d, Ray Serve) and plain Kubernetes, each
checked against its published schema: core kinds with kubernetes-validate (strict), the CRD and the
Helm chart's values with their vendored JSON schemas (tests/data/schemas/SOURCES.md) plus a report
of undeclared keys, and the Ray Serve config with Ray's own pydantic classes."""

from __future__ import annotations

import json
import os
import shlex
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from inferplan.cli import app
from inferplan.deploy.engine_args import DeploySpec, ServeTarget, settings_for, vllm_settings
from inferplan.deploy.kserve import kserve_manifest
from inferplan.deploy.kube import object_name
from inferplan.deploy.llm_d import llm_d_values
from inferplan.deploy.manifests import FORMATS, MULTI_NODE_FORMATS, compose_manifest, k8s_manifests, render
from inferplan.deploy.ray_serve import RAY_ACCELERATORS, ray_serve_config
from inferplan.errors import InputError
from inferplan.specs.deployment import Deployment
from inferplan.specs.engines import get_engine
from inferplan.specs.hardware import get_gpu, gpu_catalog
from inferplan.specs.model_catalog import load_model
from inferplan.specs.parallelism import Parallelism
from inferplan.specs.precision import get_kv_dtype, get_precision

SCHEMAS = Path(__file__).parent / "data" / "schemas"
#: The oldest and newest Kubernetes versions kubernetes-validate bundles.
K8S_VERSIONS = ("1.25.0", "1.37.0")
FP8, KV8, BF16 = get_precision("fp8"), get_kv_dtype("fp8"), get_precision("bf16")


def make(
    model: str = "llama-3.1-70b",
    gpu: str = "h100-sxm",
    par: Parallelism | None = None,
    engine: str = "vllm",
    model_id: str = "meta-llama/Llama-3.1-70B",
    concurrency: int = 64,
) -> DeploySpec:
    dep = Deployment(load_model(model), get_gpu(gpu), FP8, KV8, par or Parallelism(tp=4, dp=2), get_engine(engine))
    return settings_for(dep, ServeTarget(model_id, 8192, concurrency))


#: One replica per server with TP, with PP on one server, and a MIG slice.
SINGLE_SERVER = {
    "tp4-dp2": make,
    "tp2-pp2": lambda: make(par=Parallelism(tp=2, pp=2), concurrency=16),
    "mig": lambda: make(
        "llama-3.1-8b", "h100-sxm:3g.40gb", Parallelism(), model_id="meta-llama/Llama-3.1-8B", concurrency=8
    ),
}


def multi_node() -> DeploySpec:
    dep = Deployment(
        load_model("llama-3.1-405b"), get_gpu("h100-sxm"), BF16, get_kv_dtype("bf16"), Parallelism(tp=8, pp=2)
    )
    return settings_for(dep, ServeTarget("meta-llama/Llama-3.1-405B", 4096, 8))


@cache
def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    return loaded


def schema_errors(instance: object, name: str) -> list[str]:
    """Every JSON-schema error (draft-07: the llm-d schema's own draft; the CRD's OpenAPI v3
    subset reads the same way)."""
    validator = jsonschema.Draft7Validator(schema(name))
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]


def undeclared(instance: object, sch: dict[str, Any], path: str = "") -> list[str]:
    """Keys the schema does not declare where it declares properties and does not say that others
    are welcome (``additionalProperties: true``, ``x-kubernetes-preserve-unknown-fields``): what the
    API server prunes and ``kubectl --validate=strict`` reports."""
    found: list[str] = []
    if isinstance(instance, dict) and "properties" in sch:
        props = sch["properties"]
        open_ = sch.get("additionalProperties") is True or sch.get("x-kubernetes-preserve-unknown-fields")
        for key, value in instance.items():
            if key in props:
                found += undeclared(value, props[key], f"{path}/{key}")
            elif not open_:
                found.append(f"{path}/{key}")
    elif isinstance(instance, dict) and isinstance(sch.get("additionalProperties"), dict):
        for key, value in instance.items():
            found += undeclared(value, sch["additionalProperties"], f"{path}/{key}")
    elif isinstance(instance, list) and isinstance(sch.get("items"), dict):
        for i, item in enumerate(instance):
            found += undeclared(item, sch["items"], f"{path}/{i}")
    return found


def k8s_errors(doc: dict[str, Any]) -> list[str]:
    errors = []
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"k8s {version} {'/'.join(map(str, exc.path))}: {exc.message}")
    return errors


# ---------------------------------------------------------------- plain Kubernetes


@pytest.mark.parametrize("case", SINGLE_SERVER)
def test_k8s_manifests_validate_strictly(case: str) -> None:
    spec = SINGLE_SERVER[case]()
    deployment, service = k8s_manifests(spec)
    assert k8s_errors(deployment) == [] and k8s_errors(service) == []
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    resources = container["resources"]
    gpu = "nvidia.com/mig-3g.40gb" if case == "mig" else "nvidia.com/gpu"
    assert resources["limits"] == {gpu: str(spec.gpus_per_replica)}
    assert resources["requests"][gpu] == resources["limits"][gpu]
    assert int(resources["requests"]["memory"].removesuffix("Gi")) * 2**30 >= spec.checkpoint_bytes
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": spec.port}


def test_strict_validation_catches_a_typo() -> None:
    deployment, _ = k8s_manifests(make())
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    errors = k8s_errors(deployment)
    assert len(errors) == 2 and "readinesProbe" in errors[0]


# ---------------------------------------------------------------- KServe


@pytest.mark.parametrize("case", SINGLE_SERVER)
def test_kserve_matches_the_crd_schema(case: str) -> None:
    spec = SINGLE_SERVER[case]()
    doc = kserve_manifest(spec)
    name = "kserve_llminferenceservice_v1alpha2.schema.json"
    assert schema_errors(doc, name) == []
    assert undeclared(doc, schema(name)) == []
    assert not ("replicas" in doc["spec"] and "scaling" in doc["spec"])  # the CRD's CEL rule
    assert doc["spec"]["parallelism"]["tensor"] == spec.tp
    assert doc["spec"]["parallelism"].get("pipeline", 1) == spec.pp
    assert doc["spec"]["replicas"] == spec.replicas


def test_kserve_schema_checks_can_fail() -> None:
    name = "kserve_llminferenceservice_v1alpha2.schema.json"
    doc = kserve_manifest(make())
    doc["spec"]["parallelism"]["tensor"] = 0
    doc["spec"]["parallelizm"] = {}
    doc["spec"]["template"]["containers"][0]["resources"]["limitz"] = {}
    assert any("parallelism/tensor" in e for e in schema_errors(doc, name))
    assert sorted(undeclared(doc, schema(name))) == [
        "/spec/parallelizm",
        "/spec/template/containers/0/resources/limitz",
    ]


def test_kserve_passes_the_plan_to_vllm() -> None:
    spec = make()
    doc = kserve_manifest(spec)
    container = doc["spec"]["template"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    extra = shlex.split(env["VLLM_ADDITIONAL_ARGS"])
    assert "--tensor-parallel-size" not in extra  # KServe's template adds it from spec.parallelism.tensor
    assert as_settings(["--tensor-parallel-size", str(doc["spec"]["parallelism"]["tensor"]), *extra]) == flat(spec)
    assert doc["spec"]["model"] == {"uri": "hf://meta-llama/Llama-3.1-70B", "name": "llama-3.1-70b"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": 8000}


# ---------------------------------------------------------------- llm-d


@pytest.mark.parametrize("case", SINGLE_SERVER)
def test_llm_d_values_match_the_chart_schema(case: str) -> None:
    spec = SINGLE_SERVER[case]()
    values = llm_d_values(spec)
    name = "llm_d_modelservice_values.schema.json"
    assert schema_errors(values, name) == []
    assert undeclared(values, schema(name)) == []
    assert declared_only(values) == []
    assert k8s_errors(rendered_llm_d_deployment(values)) == []
    assert values["decode"]["replicas"] == spec.replicas and values["decode"]["parallelism"]["tensor"] == spec.tp


def declared_only(values: dict[str, Any]) -> list[str]:
    """Keys of the open objects (the top level and ``decode``) that the chart's schema does not
    name: the chart reads only the keys it knows, so one it does not name is a typo."""
    props = schema("llm_d_modelservice_values.schema.json")["properties"]
    return [f"/{k}" for k in values if k not in props] + [
        f"/decode/{k}" for k in values["decode"] if k not in props["decode"]["properties"]
    ]


def rendered_llm_d_deployment(values: dict[str, Any]) -> dict[str, Any]:
    """The decode Deployment the chart renders from ``values``, as far as the container goes: its
    vllmServe command, our args, env, ports, resources, volume mounts and extraConfig (the probe);
    chart-only keys removed (llm-d-modelservice@3051935e, templates/_helpers.tpl)."""
    decode = values["decode"]
    chart_only = {"modelCommand", "mountModelVolume", "extraConfig"}
    containers = []
    for c in decode["containers"]:
        container = {k: v for k, v in c.items() if k not in chart_only} | c.get("extraConfig", {})
        container["command"] = ["vllm", "serve"]
        container["volumeMounts"] = [*c["volumeMounts"], {"name": "model-storage", "mountPath": "/model-cache"}]
        containers.append(container)
    volumes = [
        *decode["volumes"],
        {"name": "model-storage", "emptyDir": {"sizeLimit": values["modelArtifacts"]["size"]}},
    ]
    labels = {**values["modelArtifacts"]["labels"], "llm-d.ai/role": "decode"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "ms-decode"},
        "spec": {
            "replicas": decode["replicas"],
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": containers, "volumes": volumes}},
        },
    }


def test_llm_d_schema_checks_can_fail() -> None:
    name = "llm_d_modelservice_values.schema.json"
    values = llm_d_values(make())
    values["modelArtifacts"]["uir"] = values["modelArtifacts"].pop("uri")
    values["decode"]["parallelism"]["tensor"] = "4"
    errors = schema_errors(values, name)
    assert any("uir" in e for e in errors) and any("parallelism/tensor" in e for e in errors)
    values = llm_d_values(make())
    values["decode"]["replcas"] = 2  # decode is open (additionalProperties: true): only the key report sees it
    assert schema_errors(values, name) == [] and declared_only(values) == ["/decode/replcas"]
    values["decode"]["containers"][0]["extraConfig"]["readinessProbe"]["httpGett"] = {}
    assert k8s_errors(rendered_llm_d_deployment(values))


def test_llm_d_passes_the_plan_to_vllm() -> None:
    spec = SINGLE_SERVER["tp2-pp2"]()
    values = llm_d_values(spec)
    container = values["decode"]["containers"][0]
    chart_adds = ["--tensor-parallel-size", str(values["decode"]["parallelism"]["tensor"])]
    assert as_settings([*chart_adds, *container["args"]]) == flat(spec)
    # the chart would ask for tensor x dataLocal GPUs; the container asks for tensor x pipeline
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert values["routing"]["servicePort"] == container["ports"][0]["containerPort"] == spec.port


# ---------------------------------------------------------------- Ray Serve


@cache
def ray_classes() -> tuple[Any, ...]:
    """Ray's schema classes: the Serve config file, the LLM app's arguments and one LLM config
    (an internal module: the public ``ray.serve.llm`` needs vLLM installed)."""
    if not os.environ.get("CI"):
        pytest.importorskip("ray.serve", reason="Ray Serve is in the dev extra (ray[serve])")
    with warnings.catch_warnings():  # Ray's modules use pydantic features pydantic deprecates
        warnings.simplefilter("ignore")
        from ray.llm._internal.serve.core.configs.llm_config import AcceleratorType, LLMConfig
        from ray.serve._private.config import DeploymentConfig
        from ray.serve.schema import ServeApplicationSchema, ServeDeploySchema
    return ServeDeploySchema, ServeApplicationSchema, LLMConfig, DeploymentConfig, AcceleratorType


def ray_errors(config: dict[str, Any]) -> list[str]:
    """Ray's validation of the file, each LLM config and its deployment options, plus keys its
    classes do not declare (ServeDeploySchema and DeploymentConfig ignore unknown keys)."""
    deploy_schema, app_schema, llm_config, deployment_config, _ = ray_classes()
    errors: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            deploy_schema.model_validate(config)
            for app_doc in config["applications"]:
                for llm in app_doc["args"]["llm_configs"]:
                    llm_config.model_validate(llm)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            errors.append(str(exc).splitlines()[0])
    errors += [f"/{k}" for k in config if k not in deploy_schema.model_fields]
    for app_doc in config["applications"]:
        errors += [f"/applications/{k}" for k in app_doc if k not in app_schema.model_fields]
        for llm in app_doc["args"]["llm_configs"]:
            errors += [
                f"deployment_config/{k}" for k in llm["deployment_config"] if k not in deployment_config.model_fields
            ]
    return errors


@pytest.mark.parametrize("case", [*SINGLE_SERVER, "multi-node"])
def test_ray_serve_config_validates_with_ray(case: str) -> None:
    spec = multi_node() if case == "multi-node" else SINGLE_SERVER[case]()
    config = ray_serve_config(spec)
    assert ray_errors(config) == []
    llm = config["applications"][0]["args"]["llm_configs"][0]
    assert llm["engine_kwargs"] == vllm_settings(spec)
    assert llm["deployment_config"]["num_replicas"] == spec.replicas
    assert llm["placement_group_config"]["strategy"] == ("PACK" if spec.nodes_per_replica > 1 else "STRICT_PACK")
    assert llm.get("accelerator_type") == "H100"


def test_ray_checks_can_fail() -> None:
    config = ray_serve_config(make())
    llm = config["applications"][0]["args"]["llm_configs"][0]
    llm["enigne_kwargs"] = llm.pop("engine_kwargs")
    assert ray_errors(config)
    config = ray_serve_config(make())
    llm = config["applications"][0]["args"]["llm_configs"][0]
    llm["accelerator_type"] = "H999"
    llm["deployment_config"]["num_replicaz"] = 2
    errors = ray_errors(config)
    assert len(errors) == 2 and "deployment_config/num_replicaz" in errors


def test_ray_accelerator_names_are_rays() -> None:
    accelerator_type = ray_classes()[4]
    assert set(RAY_ACCELERATORS.values()) <= {t.value for t in accelerator_type}
    no_ray_name = {"gh200-96gb", "gh200-144gb", "rtx-4090", "rtx-3090"}
    assert set(gpu_catalog()) == set(RAY_ACCELERATORS) | no_ray_name  # a new GPU gets a decision here


# ---------------------------------------------------------------- one plan, every format


def flat(spec: DeploySpec) -> dict[str, str]:
    return {k: str(v) for k, v in vllm_settings(spec).items()}


def as_settings(flags: list[str]) -> dict[str, str]:
    """``["--max-model-len", "8192", ...]`` -> ``{"max_model_len": "8192", ...}`` for the planned flags."""
    pairs = dict(zip(flags[::2], flags[1::2], strict=True))
    return {k[2:].replace("-", "_"): v for k, v in pairs.items() if k[2:].replace("-", "_") in vllm_settings(make())}


def test_every_format_carries_the_same_plan() -> None:
    spec = SINGLE_SERVER["tp2-pp2"]()
    shell = shlex.split(render(spec, "shell").strip().splitlines()[-1])
    compose = compose_manifest(spec)["services"]["vllm-0"]["command"]
    k8s = k8s_manifests(spec)[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    kserve_doc = yaml.safe_load(render(spec, "kserve"))
    kserve = [
        "--tensor-parallel-size",
        str(spec.tp),
        *shlex.split(kserve_doc["spec"]["template"]["containers"][0]["env"][0]["value"]),
    ]
    llm_d = yaml.safe_load(render(spec, "llm-d"))["decode"]["containers"][0]["args"]
    ray = yaml.safe_load(render(spec, "ray-serve"))["applications"][0]["args"]["llm_configs"][0]["engine_kwargs"]
    expected = flat(spec)
    assert expected["max_model_len"] == "8192" and expected["kv_cache_dtype"] == "fp8"
    for flags in (shell[3:], compose[1:], k8s[1:], kserve, ["--tensor-parallel-size", str(spec.tp), *llm_d]):
        assert as_settings(flags) == expected
    assert {k: str(v) for k, v in ray.items()} == expected


def test_a_replica_spanning_servers() -> None:
    big = multi_node()
    assert big.nodes_per_replica == 2 and set(MULTI_NODE_FORMATS) == {"shell", "ray-serve"}
    llm = ray_serve_config(big)["applications"][0]["args"]["llm_configs"][0]
    assert llm["engine_kwargs"]["tensor_parallel_size"] == 8 and llm["engine_kwargs"]["pipeline_parallel_size"] == 2
    assert llm["runtime_env"]["env_vars"]["NCCL_IB_DISABLE"] == "0"
    for fmt in set(FORMATS) - set(MULTI_NODE_FORMATS):
        with pytest.raises(InputError, match=r"spans 2 servers.*--format ray-serve or shell") as err:
            render(big, fmt)
        assert "\n" not in str(err.value)


def test_stacks_refuse_what_they_cannot_run(tmp_path: Path) -> None:
    sglang = make(engine="sglang")
    for fmt in ("kserve", "llm-d", "ray-serve"):
        with pytest.raises(InputError, match="runs vLLM only"):
            render(sglang, fmt)
    local = tmp_path / "org" / "model"
    local.mkdir(parents=True)
    with pytest.raises(InputError, match="not the local path"):
        kserve_manifest(make(model_id=str(local)))
    with pytest.raises(InputError, match="hf://, pvc://, pvc\\+hf://"):
        llm_d_values(make(model_id="s3://bucket/llama"))
    assert kserve_manifest(make(model_id="s3://bucket/llama"))["spec"]["model"]["uri"] == "s3://bucket/llama"
    assert ray_serve_config(make(model_id=str(local)))  # Ray reads a path on its nodes


def test_object_names_are_rfc_1035_labels() -> None:
    assert object_name(make()) == "llama-3-1-70b-vllm"
    from dataclasses import replace

    odd = make()
    model = replace(odd.deployment.model, name="7B_Model.v2 (test)" + "x" * 80)
    renamed = replace(odd, deployment=replace(odd.deployment, model=model))
    name = object_name(renamed)
    assert name.startswith("m-7b-model-v2-test-") and len(name) <= 63 and name[-1].isalnum()


def test_deploy_cli_writes_each_stack() -> None:
    runner = CliRunner()
    base = ["deploy", "llama-3.1-8b", "--gpu", "h100", "--concurrency", "16"]
    for fmt in ("kserve", "llm-d", "ray-serve"):
        result = runner.invoke(app, [*base, "--format", fmt])
        assert result.exit_code == 0, result.output
        assert yaml.safe_load(result.stdout)
    bad = runner.invoke(app, [*base, "--format", "helm"])
    assert bad.exit_code == 2 and "kserve, llm-d, ray-serve" in bad.stderr
    port = runner.invoke(app, [*base, "--format", "kserve", "--port", "9000"])
    assert port.exit_code == 2 and "port 8000" in port.stderr
