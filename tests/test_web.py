"""The web API: the same plan as the CLI, clear 4xx answers for bad input, no paths taken,
limits enforced; generated inputs (schemathesis, hypothesis) never give a 500."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance
from typer.testing import CliRunner

from inferplan.cli import app as cli_app
from inferplan.errors import InferplanError
from inferplan.present.web import MAX_BODY_BYTES, create_app
from inferplan.specs.model_catalog import model_from_config_text
from tests.conftest import tiny_llama_config

APP = create_app()
client = TestClient(APP)
FAST = {"gpus": ["l40s", "h100-sxm"], "charts": False}


def post_plan(body: dict[str, Any]) -> Any:
    return client.post("/api/plan", json=body)


def test_page_and_health() -> None:
    page = client.get("/")
    assert page.status_code == 200 and 'id="plan-form"' in page.text
    assert "http://" not in page.text.replace('"http://www.w3.org', "") and "https://" not in page.text
    assert client.get("/api/health").json()["status"] == "ok"
    spec = client.get("/api/openapi.json").json()
    assert {"/api/plan", "/api/report", "/api/models", "/api/options"} <= set(spec["paths"])


def test_models_search_and_options() -> None:
    hits = client.get("/api/models", params={"q": "qwen3"}).json()
    assert hits and all("qwen" in h["name"] or "qwen" in h["hf_id"].lower() for h in hits)
    assert client.get("/api/models", params={"q": "no-such-thing"}).json() == []
    opts = client.get("/api/options").json()
    assert "h100-sxm" in {g["id"] for g in opts["gpus"]} and "fp8" in opts["precisions"]
    assert client.get("/api/models", params={"limit": 1000}).status_code == 422


def test_plan_matches_the_cli(runner: CliRunner) -> None:
    body = {"model": "llama-3.1-8b", "rate_per_s": 3, "ttft_ms": 400, "tpot_ms": 40, **FAST}
    answer = post_plan(body)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    cli = runner.invoke(
        cli_app,
        [
            "plan",
            "llama-3.1-8b",
            "--rate",
            "3",
            "--ttft",
            "400ms",
            "--tpot",
            "40ms",
            "--gpus",
            "l40s,h100-sxm",
            "--json",
        ],
    )
    expected = json.loads(cli.output)
    for key in ("recommendation", "ranked", "cost", "steps"):
        assert data["plan"][key] == expected[key]
    assert data["plan"]["recommendation"]["label"] in data["html"]["recommendation"]
    assert data["charts"] == []


def test_plan_with_charts_and_pasted_config() -> None:
    cfg = json.dumps(tiny_llama_config())
    too_long = post_plan({"config_json": cfg, "isl": 500, "osl": 100, "gpus": ["l40s"], "charts": False})
    assert too_long.status_code == 422 and "exceeds tiny" not in too_long.json()["error"]
    assert "600 tokens exceeds pasted-model's context of 512" in too_long.json()["error"]
    body = {"config_json": cfg, "model_name": "tiny", "isl": 300, "osl": 100, "concurrency": 4, "gpus": ["l40s"]}
    data = post_plan(body).json()
    assert data["plan"]["model"] == "tiny"
    ids = [c["id"] for c in data["charts"]]
    assert ids[:3] == ["memory", "kv_capacity", "roofline"]
    assert all("<svg" in c["html"] and "<figcaption>" in c["html"] for c in data["charts"])


def test_report_download() -> None:
    answer = client.post("/api/report", json={"model": "qwen3-0.6b", "rate_per_s": 1, "gpus": ["l40s"]})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert 'filename="inferplan-qwen3-0.6b.html"' in answer.headers["content-disposition"]
    assert answer.text.startswith("<!doctype html>") and 'data-chart="cost"' in answer.text


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"model": "nope-7b"}, 404, "unknown model 'nope-7b'"),
        ({"model": "/etc/passwd"}, 404, "unknown model"),  # never read from disk
        ({"model": "../../config.json"}, 404, "unknown model"),
        ({"model": "meta-llama/Some-Other-Model"}, 404, "unknown model"),  # never downloaded
        ({"model": "llama-3.1-8b", "isl": 0}, 422, "isl (--isl): Input should be greater than or equal to 1"),
        ({"model": "llama-3.1-8b", "rate_per_s": -1}, 422, "rate_per_s"),
        ({"model": "llama-3.1-8b", "gpus": ["h900"]}, 404, "unknown GPU 'h900'"),
        ({"model": "llama-3.1-8b", "dtypes": ["fp3"]}, 422, "unknown precision 'fp3'; choose one of"),
        ({"model": "llama-3.1-8b", "engine": "magic"}, 422, "unknown engine 'magic'"),
        ({"model": "llama-3.1-8b", "environment": "moon"}, 422, "environment"),
        ({"model": "llama-3.1-8b", "config_json": "{}"}, 422, "either 'model'"),
        ({}, 422, "either 'model'"),
        ({"model": "llama-3.1-8b", "rate_per_s": 1, "concurrency": 2}, 422, "not both"),
        ({"model": "llama-3.1-8b", "path": "/tmp/x"}, 422, "Extra inputs are not permitted"),
        ({"config_json": "{not json"}, 422, "not valid JSON (line 1, column 2"),
        ({"config_json": "[1, 2]"}, 422, "expected a JSON object"),
        ({"config_json": '{"model_type": "bert"}'}, 422, "not supported"),
        ({"config_json": '{"model_type": "llama", "hidden_size": "big"}'}, 422, "pasted config.json"),
        ({"model": "llama-3.1-405b", "gpus": ["l4"], "dtypes": ["bf16"]}, 409, "fits none"),
        ({"model": "llama-3.1-8b", "gpus": ["l4"], "ttft_ms": 0.5}, 409, "no configuration meets"),
    ],
)
def test_bad_input_gets_a_clear_4xx(body: dict[str, Any], status: int, message: str) -> None:
    answer = post_plan({**body, "charts": False})
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]


def test_size_limits() -> None:
    huge = "x" * (MAX_BODY_BYTES + 1)
    answer = client.post("/api/plan", content=huge, headers={"content-type": "application/json"})
    assert answer.status_code == 413 and "KiB" in answer.json()["error"]
    long_config = json.dumps({"model_type": "llama", "pad": "x" * 300_000})
    assert post_plan({"config_json": long_config}).status_code in (413, 422)
    assert post_plan({"model": "llama-3.1-8b", "gpus": ["l4"] * 100}).status_code == 422


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
config_keys = st.sampled_from(
    [
        "model_type",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "intermediate_size",
        "vocab_size",
        "head_dim",
        "sliding_window",
        "num_local_experts",
        "quantization_config",
        "text_config",
        "layer_types",
        "torch_dtype",
        "tie_word_embeddings",
        "max_position_embeddings",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["llama", "qwen3_moe", "deepseek_v3", "gemma3", "gpt_oss", "mixtral", "falcon", "llama4"]),
    st.dictionaries(config_keys, json_values, max_size=8),
)
def test_pasted_configs_never_crash(model_type: str, fields: dict[str, Any]) -> None:
    """Any JSON object is either a model or a ConfigError/UnsupportedModelError that names the
    field, never a crash, and never the last-resort guard's 'wrong type or value' (a field the
    reader does not check)."""
    cfg = {**tiny_llama_config(), "model_type": model_type, **fields}
    try:
        model_from_config_text(json.dumps(cfg), "fuzz")
    except InferplanError as exc:
        assert "a field has the wrong type or value" not in str(exc), str(exc)
        assert "\n" not in str(exc)


schema = schemathesis.openapi.from_asgi("/api/openapi.json", APP)


@schema.include(method="GET").parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_get_endpoints_never_fail(case: schemathesis.Case) -> None:
    case.call_and_validate(excluded_checks=[positive_data_acceptance])


@pytest.mark.slow
@schema.include(path="/api/plan").parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_plan_never_fails_on_generated_input(case: schemathesis.Case) -> None:
    # keep each example fast: a small GPU pool and no charts, unless the case itself sets them
    if isinstance(case.body, dict):
        case.body.setdefault("gpus", ["l40s"])
        case.body.setdefault("charts", False)
    # one field excludes another ('model' or 'config_json'), which OpenAPI cannot say: a valid-looking
    # body may be refused with a 422, but never crash (500) or answer outside the documented schema
    case.call_and_validate(excluded_checks=[positive_data_acceptance])


def listening_addresses(port: int) -> list[str]:
    """Local IPv4 addresses (hex, as the kernel lists them) listening on ``port``."""
    out = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        address, hex_port = fields[1].split(":")
        if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
            out.append(address)
    return out


def test_ui_command_serves_on_loopback(tmp_path: Path) -> None:
    """`inferplan ui` binds 127.0.0.1 by default and answers until stopped."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (tmp_path / "ui.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from inferplan.cli import main; main()", "ui", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
                    assert json.load(r)["status"] == "ok"
                    break
            except OSError:
                assert proc.poll() is None, (tmp_path / "ui.log").read_text()
                assert time.monotonic() < deadline, "inferplan ui did not answer within 30 s"
                time.sleep(0.2)
        assert listening_addresses(port) == ["0100007F"]  # 127.0.0.1 only, not 0.0.0.0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
    assert f"http://127.0.0.1:{port}/" in (tmp_path / "ui.log").read_text()


def test_ui_command_rejects_a_bad_port(runner: CliRunner) -> None:
    result = runner.invoke(cli_app, ["ui", "--port", "70000"])
    assert result.exit_code == 2 and "65535" in result.output


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    model=st.sampled_from(["qwen3-0.6b", "llama-3.1-8b", "mixtral-8x7b", "deepseek-v2-lite", "gemma-2-9b"]),
    isl=st.integers(1, 1_000_000),
    osl=st.integers(1, 100_000),
    load=st.one_of(
        st.fixed_dictionaries({"rate_per_s": st.floats(1e-3, 10_000)}),
        st.fixed_dictionaries({"concurrency": st.integers(1, 100_000)}),
    ),
    ttft_ms=st.none() | st.floats(1e-3, 600_000),
    tpot_ms=st.none() | st.floats(1e-3, 60_000),
    dtypes=st.lists(st.sampled_from(["bf16", "fp8", "int8", "int4"]), max_size=2, unique=True),
    environment=st.sampled_from(["bare-metal", "vm", "vgpu"]),
)
def test_planner_answers_any_in_range_request(
    model: str,
    isl: int,
    osl: int,
    load: dict[str, Any],
    ttft_ms: float | None,
    tpot_ms: float | None,
    dtypes: list[str],
    environment: str,
) -> None:
    """Valid models with any in-range workload: a plan, or a 409/422 that says why; never a 500."""
    body = {"model": model, "isl": isl, "osl": osl, **load, "dtypes": dtypes, "environment": environment}
    body |= {k: v for k, v in (("ttft_ms", ttft_ms), ("tpot_ms", tpot_ms)) if v is not None}
    answer = post_plan({**body, "gpus": ["l40s", "h100-sxm"], "charts": False})
    assert answer.status_code in (200, 409, 422), answer.text
    if answer.status_code != 200:
        assert answer.json()["error"]
