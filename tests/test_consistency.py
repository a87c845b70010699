"""Same question, same answer: the CLI's --json, the web API and the report's embedded data
come from one plan path and must hold identical numbers."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from inferplan.cli import app
from inferplan.present.web import create_app

CASES = [
    (
        ["llama-3.1-8b", "--isl", "1000", "--osl", "200", "--rate", "3", "--ttft", "400ms", "--tpot", "40ms"],
        {"model": "llama-3.1-8b", "isl": 1000, "osl": 200, "rate_per_s": 3.0, "ttft_ms": 400.0, "tpot_ms": 40.0},
    ),
    (
        ["qwen3-8b", "--isl", "4000", "--osl", "500", "--concurrency", "32", "--e2e", "30s"],
        {"model": "qwen3-8b", "isl": 4000, "osl": 500, "concurrency": 32, "e2e_s": 30.0},
    ),
    (
        ["llama-3.1-8b", "--rate", "2", "--env", "vm", "--hours-fraction", "0.5", "--peak-to-mean", "3"],
        {"model": "llama-3.1-8b", "rate_per_s": 2.0, "environment": "vm", "hours_fraction": 0.5, "peak_to_mean": 3.0},
    ),
]
GPUS = ["l40s", "h100-sxm"]


def _without_timing(plan: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in plan.items() if k != "search_time_s"}


@pytest.mark.parametrize(("args", "body"), CASES)
def test_cli_web_and_report_agree(args: list[str], body: dict[str, Any], tmp_path: Path) -> None:
    gpus = ["--gpus", ",".join(GPUS)]
    cli = CliRunner().invoke(app, ["plan", *args, *gpus, "--json"])
    assert cli.exit_code == 0, cli.output
    from_cli = json.loads(cli.stdout)

    web = TestClient(create_app()).post("/api/plan", json={**body, "gpus": GPUS, "charts": False})
    assert web.status_code == 200, web.text
    from_web = web.json()["plan"]

    page = tmp_path / "r.html"
    made = CliRunner().invoke(app, ["report", *args, *gpus, "-o", str(page)])
    assert made.exit_code == 0, made.output
    data = re.search(r'<script type="application/json" id="inferplan-plan">(.*?)</script>', page.read_text(), re.S)
    assert data is not None
    from_report = json.loads(data.group(1).replace("<\\/", "</"))

    assert _without_timing(from_cli) == _without_timing(from_web) == _without_timing(from_report)
    assert from_cli["headline"][0].startswith("Recommendation:")


def test_a_cpu_plan_is_the_same_in_the_cli_and_the_web() -> None:
    """CPU sockets are offered by the web form and planned by the one path (vLLM-CPU)."""
    opts = TestClient(create_app()).get("/api/options").json()
    assert {"device": "cpu"}.items() <= next(g for g in opts["gpus"] if g["id"] == "xeon-8480plus").items()
    args = ["plan", "llama-3.2-1b", "--isl", "256", "--osl", "64", "--rate", "0.5", "--gpus", "xeon-8480plus"]
    cli = CliRunner().invoke(app, [*args, "--json"])
    assert cli.exit_code == 0, cli.output
    body = {"model": "llama-3.2-1b", "isl": 256, "osl": 64, "rate_per_s": 0.5, "gpus": ["xeon-8480plus"]}
    web = TestClient(create_app()).post("/api/plan", json={**body, "charts": False})
    assert web.status_code == 200, web.text
    from_cli, from_web = json.loads(cli.stdout), web.json()["plan"]
    assert _without_timing(from_cli) == _without_timing(from_web)
    assert from_web["engine"] == "vllm-cpu" and "CPU socket" in from_web["headline"][0]


def test_both_entry_points_refuse_alike() -> None:
    cli = CliRunner().invoke(app, ["plan", "llama-3.1-8b", "--isl", "0"])
    web = TestClient(create_app()).post("/api/plan", json={"model": "llama-3.1-8b", "isl": 0})
    assert cli.exit_code == 2 and web.status_code == 422
    assert web.json()["error"] in cli.stderr.replace("\n", " ")


def test_web_takes_prices_cost_assumptions_and_profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from inferplan.specs.calibration_profile import CalibrationProfile, save_profile

    monkeypatch.setenv("INFERPLAN_HOME", str(tmp_path))
    save_profile(CalibrationProfile(name="slow-box", engine="vllm", engine_overrides={"step_overhead_s": 0.02}))
    client = TestClient(create_app())
    assert "slow-box" in client.get("/api/options").json()["calibrations"]
    base = {"model": "llama-3.1-8b", "rate_per_s": 2.0, "gpus": ["h100-sxm"], "charts": False}
    lease = (
        "- {id: my-lease, provider: me, product: 1x H100, gpu: h100-sxm, gpus: 1, kind: lease,"
        " usd_per_month: 900, as_of: 2026-11-01, source: our quote}"
    )
    plain = client.post("/api/plan", json=base).json()["plan"]
    priced = client.post("/api/plan", json={**base, "prices_yaml": lease, "cost_set": {"usd_per_kwh": 0.3}}).json()
    assert priced["plan"]["cost"]["bare_metal_offer"] == "my-lease"
    assert priced["plan"]["cost"]["assumptions"]["usd_per_kwh"] == 0.3
    slow = client.post("/api/plan", json={**base, "calibration": "slow-box"}).json()["plan"]
    assert slow["recommendation"]["tpot_p90_s"] > plain["recommendation"]["tpot_p90_s"]
    cli = CliRunner().invoke(
        app, ["plan", "llama-3.1-8b", "--rate", "2", "--gpus", "h100-sxm", "--calibration", "slow-box", "--json"]
    )
    assert _without_timing(json.loads(cli.stdout)) == _without_timing(slow)
    refused = client.post("/api/plan", json={**base, "calibration": "../../etc/passwd"})
    assert refused.status_code == 422 and "profile name" in refused.json()["error"]
    bad_prices = client.post("/api/plan", json={**base, "prices_yaml": "- {id: x"})
    assert bad_prices.status_code == 422 and "the pasted prices" not in bad_prices.json()["error"]


def test_headline_says_why_the_fleet_exceeds_the_load() -> None:
    """At 100 req/s whole 8-GPU instances hold more replicas than the load needs: the headline's
    count differs from the cost table's only with the reason said in the same sentence."""
    res = CliRunner().invoke(
        app, ["plan", "llama-3.1-70b", "--isl", "2000", "--osl", "300", "--rate", "100", "--ttft", "200ms", "--json"]
    )
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout)
    rec = plan["recommendation"]
    needed = math.ceil(100 / rec["max_rate_per_replica"] - 1e-9)
    first = plan["headline"][0]
    assert first.startswith(f"Recommendation: {rec['replicas']} x ")
    if rec["replicas"] > needed:
        assert f"{needed:.0f} serve the load" in first
        assert plan["cost"]["mean_fleet"]["bare_metal_replicas"] == needed
    else:
        assert "serve the load" not in first
