"""The serving options on the command line (issue 14): fit, predict with --spec and with prefill and
decode pools, their --json payloads, and one-line refusals."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from inferplan.cli import app

runner = CliRunner()
PREDICT = ["predict", "llama-3.1-70b", "--gpu", "h100", "--tp", "4", "--dtype", "fp8", "--kv-dtype", "fp8"]


def test_fit_counts_the_drafter() -> None:
    base = json.loads(runner.invoke(app, ["fit", "llama-3.1-70b", "--gpu", "h100", "--tp", "4", "--json"]).stdout)
    result = runner.invoke(
        app,
        [
            "fit",
            "llama-3.1-70b",
            "--gpu",
            "h100",
            "--tp",
            "4",
            "--spec",
            "draft_model",
            "--spec-model",
            "llama-3.2-1b",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    drafter = d["speculation"]["drafter_weights_bytes_per_gpu"]
    assert drafter > 0 and d["per_gpu"]["weights_bytes"] == pytest.approx(
        base["per_gpu"]["weights_bytes"] + drafter, abs=2
    )
    assert d["per_gpu"]["kv_tokens"] < base["per_gpu"]["kv_tokens"]
    text = runner.invoke(app, ["fit", "llama-3.1-70b", "--gpu", "h100", "--tp", "4", "--spec", "eagle3"])
    assert "Speculative decoding (eagle3, k=3)" in " ".join(text.output.split())


def test_predict_with_speculation_prints_its_source_and_crossover() -> None:
    result = runner.invoke(app, [*PREDICT, "--rate", "1", "--num-requests", "60", "--spec", "eagle3", "--json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    s = d["speculation"]
    assert s["method"] == "eagle3" and s["expected_tokens_per_step"] > 2 and "nebius" in s["source"]
    assert s["crossover"]["crossover_batch"] and s["crossover"]["speedup_at_batch_1"] > 1
    assert d["decode_step"]["operators"][-1]["operator"] == "drafter_eagle3"
    plain = json.loads(runner.invoke(app, [*PREDICT, "--rate", "1", "--num-requests", "60", "--json"]).stdout)
    assert d["metrics"]["tpot_s"]["mean"] < plain["metrics"]["tpot_s"]["mean"]
    text = runner.invoke(app, [*PREDICT, "--rate", "1", "--num-requests", "30", "--spec", "ngram"])
    words = " ".join(text.output.split())  # the console wraps lines
    assert "Speculative decoding: ngram" in words and "(the crossover)" in words


def test_predict_disaggregated() -> None:
    args = [*PREDICT, "--isl", "8000", "--osl", "300", "--rate", "1", "--num-requests", "60"]
    result = runner.invoke(app, [*args, "--prefill-replicas", "1", "--decode-replicas", "1", "--json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)["disaggregation"]
    assert d["prefill"]["replicas"] == 1 and d["transfer"]["bytes_per_request"] == 8000 * 80 * 2 * 8 * 128
    assert d["transfer"]["connector"] == "NixlConnector" and d["prefill_pool"]["num_completed"] == 60
    text = runner.invoke(app, [*args, "--prefill-replicas", "2", "--decode-replicas", "1", "--prefill-tp", "2"])
    assert text.exit_code == 0 and "2 prefill x (h100-sxm TP2" in " ".join(text.output.split())


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--spec", "medusa"], "use one of"),
        (["--spec-tokens", "3"], "need --spec METHOD"),
        (["--spec", "eagle3", "--spec-acceptance", "high"], "--spec-acceptance"),
        (["--spec", "mtp"], "multi-token-prediction"),
        (["--prefill-tp", "2"], "need --prefill-replicas"),
        (["--prefill-replicas", "1", "--concurrency", "4"], "arrival times"),
        (["--prefill-replicas", "1", "--kv-link", "carrier-pigeon"], "unknown interconnect"),
        (["--prefill-replicas", "1", "--kv-overlap", "always"], "--kv-overlap"),
    ],
)
def test_bad_serving_options_are_one_line(extra: list[str], needle: str) -> None:
    args = [*PREDICT, "--num-requests", "10", *extra]
    if "--concurrency" not in extra:
        args += ["--rate", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert needle in " ".join(result.output.split()) and "Traceback" not in result.output
