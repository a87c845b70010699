"""The CLI through typer's runner: tables, JSON round-trips, one-line errors and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from inferplan.cli import app


def test_fit_table(runner: CliRunner) -> None:
    result = runner.invoke(
        app,
        [
            "fit",
            "llama-3.1-70b",
            "--gpu",
            "h100-sxm",
            "--count",
            "4",
            "--context",
            "8192",
            "--concurrency",
            "32",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "FITS" in result.output and "KV cache" in result.output
    assert "Rule of thumb" in result.output and "eager" in result.output


def test_fit_json_round_trips(runner: CliRunner) -> None:
    result = runner.invoke(app, ["fit", "llama-3.1-8b", "--gpu", "h100", "--json"])
    assert result.exit_code == 0
    payload = json.loads(result.stdout)
    assert payload["schema"] == "inferplan.fit/1"
    assert json.loads(json.dumps(payload)) == payload
    g = payload["per_gpu"]
    parts = g["weights_bytes"] + g["activation_peak_bytes"] + g["logits_bytes"] + g["non_torch_bytes"]
    assert abs(parts + g["kv_cache_bytes"] - g["budget_bytes"]) <= 4
    assert payload["verdict"]["fits"] is True
    contexts = [row["context_tokens"] for row in payload["context_growth"]]
    assert contexts == sorted(contexts) and contexts[-1] == 131072


def test_fit_does_not_fit_exits_5_and_suggests(runner: CliRunner) -> None:
    result = runner.invoke(app, ["fit", "llama-3.1-70b", "--gpu", "h100-sxm", "--json"])
    assert result.exit_code == 5
    payload = json.loads(result.stdout)
    assert payload["verdict"]["fits"] is False
    assert payload["verdict"]["suggestion"]["num_gpus"] == 2


def test_fit_config_file(runner: CliRunner, tiny_config_file: Path) -> None:
    result = runner.invoke(app, ["fit", str(tiny_config_file), "--gpu", "l4", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["per_gpu"]["kv_bytes_per_token"] == 2 * 2 * 2 * 16 * 2


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["fit", "llama-3.1-7b", "--gpu", "h100"], 3, "Did you mean"),
        (["fit", "llama-3.1-8b", "--gpu", "h1000"], 3, "unknown GPU"),
        (["fit", "llama-3.1-8b", "--gpu", "h100", "--tp", "3"], 2, "does not divide"),
        (["fit", "llama-3.1-8b", "--gpu", "h100", "--dtype", "int3"], 2, "unknown precision"),
        (["fit", "llama-3.1-8b", "--gpu", "h100", "--kv-dtype", "fp6"], 2, "KV-cache dtype"),
        (
            ["fit", "llama-3.1-8b", "--gpu", "h100", "--count", "4", "--tp", "3", "--pp", "1"],
            2,
            "must equal",
        ),
        (["fit", "/no/such/config.json", "--gpu", "h100"], 2, "no such file"),
        (["fit", "llama-3.1-8b", "--gpu", "h100", "--non-torch", "lots"], 2, "cannot read size"),
    ],
)
def test_fit_errors_are_one_line(runner: CliRunner, args: list[str], code: int, message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["fit", "llama-3.1-8b", "--gpu", "h100", "--context", "0"],
        ["fit", "llama-3.1-8b", "--gpu", "h100", "--concurrency", "-3"],
        ["fit", "llama-3.1-8b", "--gpu", "h100", "--gpu-memory-utilization", "1.7"],
    ],
)
def test_out_of_range_numbers_are_refused(runner: CliRunner, args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_models_and_gpus(runner: CliRunner) -> None:
    result = runner.invoke(app, ["models", "--json"])
    rows = json.loads(result.stdout)["models"]
    assert len(rows) >= 20 and all(r["total_params"] > 0 for r in rows)
    moe = json.loads(runner.invoke(app, ["models", "--moe", "--json"]).stdout)["models"]
    assert moe and all(r["moe"] for r in moe)
    result = runner.invoke(app, ["gpus", "--min-memory", "100GB", "--json"])
    ids = {g["id"] for g in json.loads(result.stdout)["gpus"]}
    assert "h200-sxm" in ids and "h100-sxm" not in ids
    assert "llama-3.1-8b" in runner.invoke(app, ["models", "llama"]).output
    assert "mi300x" in runner.invoke(app, ["gpus"]).output
