"""predict, validate, plan and cost through the CLI runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from inferplan.cli import app
from tests.conftest import DATA


def test_predict_json(runner: CliRunner) -> None:
    result = runner.invoke(
        app,
        [
            "predict",
            "llama-3.1-8b",
            "--gpu",
            "h100-sxm",
            "--isl",
            "1000",
            "--osl",
            "200",
            "--rate",
            "5",
            "--num-requests",
            "200",
            "--ttft",
            "500ms",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert d["schema"] == "inferplan.predict/1"
    m = d["metrics"]
    assert m["num_completed"] == 200
    assert m["ttft_s"]["p50"] <= m["ttft_s"]["p90"] <= m["ttft_s"]["p99"]
    bounds = {op["operator"]: op["bound"] for op in d["decode_step"]["operators"]}
    assert bounds["mlp"] == "memory"
    assert {op["operator"]: op["bound"] for op in d["prefill_step"]["operators"]}["mlp"] == "compute"


def test_predict_table_with_vm_assumptions(runner: CliRunner) -> None:
    result = runner.invoke(
        app,
        [
            "predict",
            "llama-3.1-8b",
            "--gpu",
            "h100",
            "--concurrency",
            "8",
            "--num-requests",
            "50",
            "--env",
            "vm",
            "--env-set",
            "jitter_loss=0.2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "TTFT" in result.output and "Decode step" in result.output
    assert "jitter" in result.output and "-20%" in result.output


def test_predict_mig_and_offline(runner: CliRunner) -> None:
    result = runner.invoke(
        app, ["predict", "llama-3.1-8b", "--gpu", "h100-sxm", "--env", "mig:3g.40gb", "--offline", "50", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["gpu"] == "h100-sxm:3g.40gb"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "1", "--concurrency", "2"], "exactly one"),
        (["--rate", "1", "--env", "cloud"], "unknown environment"),
        (["--rate", "1", "--env-set", "jitter"], "NAME=NUMBER"),
        (["--rate", "1", "--length-dist", "zipf"], "length distribution"),
        (["--rate", "1", "--engine", "tgi2"], "unknown engine"),
        (["--rate", "1", "--ttft", "fast"], "cannot read duration"),
    ],
)
def test_predict_errors(runner: CliRunner, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["predict", "llama-3.1-8b", "--gpu", "h100", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output


def test_validate_sample(runner: CliRunner) -> None:
    result = runner.invoke(app, ["validate", str(DATA / "throughput_sample.csv"), "--json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    predicted = [r for r in d["rows"] if r["predicted"] is not None]
    assert len(predicted) >= 8
    assert all(r["ape_pct"] >= 0 for r in predicted)
    assert any("derived" in s["reason"] for s in d["skipped"])
    assert {g["group"][0] for g in d["by_category"]} >= {"batch-1 decode", "offline throughput"}
    table = runner.invoke(app, ["validate", str(DATA / "throughput_sample.csv")])
    assert "median APE" in table.output and "Skipped" in table.output


def test_validate_bad_file(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "m.csv"
    bad.write_text("model,value\nx,1\n")
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2 and "missing column" in result.stderr
    result = runner.invoke(app, ["validate", str(tmp_path / "none.csv")])
    assert result.exit_code == 2 and "cannot read" in result.stderr


def test_plan_json_and_markdown(runner: CliRunner) -> None:
    args = [
        "plan",
        "llama-3.1-8b",
        "--isl",
        "1000",
        "--osl",
        "200",
        "--rate",
        "4",
        "--ttft",
        "300ms",
        "--gpus",
        "h100-sxm,a100-sxm-80gb,l40s",
        "--top",
        "5",
    ]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert d["schema"] == "inferplan.plan/1"
    rec = d["recommendation"]
    assert rec["meets_targets"] and rec["ttft_p90_s"] <= 0.3
    assert [s["title"][:2] for s in d["steps"]] == ["1.", "2.", "3.", "4."]
    assert d["verified_by_simulation"]["metrics"]["ttft_s"]["p90"] <= 0.3
    costs = [r["usd_per_mtok"] for r in d["ranked"] if r["meets_targets"] and r["usd_per_mtok"] is not None]
    assert costs == sorted(costs)
    md = runner.invoke(app, [*args, "--markdown"])
    assert md.exit_code == 0 and md.stdout.startswith("# Plan for llama-3.1-8b")


def test_plan_infeasible_exit_6(runner: CliRunner) -> None:
    result = runner.invoke(
        app, ["plan", "llama-3.1-70b", "--rate", "2", "--isl", "4000", "--ttft", "5ms", "--gpus", "h100-sxm"]
    )
    assert result.exit_code == 6
    assert "relax to --ttft" in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--rate", "1", "--budget", "lots"], 2, "cannot read budget"),
        (["--rate", "1", "--gpus", "h100,x9"], 3, "unknown GPU"),
        (["--rate", "1", "--rank", "vibes"], 2, "--rank"),
        (["--rate", "1", "--dtypes", "fp3"], 2, "unknown precision"),
        (["--rate", "1", "--cost-set", "beer=1"], 2, "unknown cost assumption"),
    ],
)
def test_plan_errors(runner: CliRunner, args: list[str], code: int, message: str) -> None:
    result = runner.invoke(app, ["plan", "llama-3.1-8b", *args])
    assert result.exit_code == code, result.output
    assert message in result.stderr


def test_cost_command(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "cost",
            "llama-3.1-70b",
            "--gpu",
            "h100-sxm",
            "--tp",
            "4",
            "--rate",
            "3",
            "--isl",
            "2000",
            "--osl",
            "300",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert d["schema"] == "inferplan.cost/1"
    c = d["cost"]
    assert c["bare_metal_monthly_usd"] > 0 and c["cloud_elastic_monthly_usd"] > 0
    share = c["break_even_hours_fraction"]
    assert (share is not None and 0.01 < share <= 1) == c["break_even"].startswith("Break-even")
    assert {o["key"] for o in c["options"]} >= {"lease", "purchase", "cloud_on_demand", "cloud_spot", "api"}
    assert c["story"][0].startswith("Priced: llama-3.1-70b as h100-sxm TP4")
    prices = tmp_path / "p.yaml"
    prices.write_text(
        "- {id: lease1, provider: me, product: x, gpu: h100-sxm, gpus: 8, kind: lease,"
        " usd_per_month: 1000, as_of: '2026-11', source: quote}\n"
    )
    cheap = runner.invoke(
        app,
        ["cost", "llama-3.1-70b", "--gpu", "h100-sxm", "--tp", "4", "--rate", "3", "--prices", str(prices), "--json"],
    )
    assert json.loads(cheap.stdout)["cost"]["bare_metal_offer"] == "lease1"
    bad = runner.invoke(app, ["cost", "llama-3.1-70b", "--gpu", "l4", "--tp", "1"])
    assert bad.exit_code == 5 and "does not fit" in bad.stderr
