"""Every catalog GPU gets finite figures from `cost` and `plan`, and what has no price is said
in words; the priced story names what was priced, the fleets for the mean and the peak, and the
offer; MIG slices are owned as whole cards."""

from __future__ import annotations

import json
import re
from functools import cache

import pytest
from typer.testing import CliRunner

from inferplan.cli import app
from inferplan.plan.question import question_from
from inferplan.plan.service import answer
from inferplan.present.payload import to_json_dict
from inferplan.present.payload_plan import cost_command_payload, plan_payload
from inferplan.specs.hardware import gpu_catalog

NO_BARE_METAL = {"a100-sxm-40gb", "h100-pcie", "h100-nvl", "h200-nvl", "gh200-96gb", "gh200-144gb", "b300", "mi355x"}
NO_CLOUD = {"h200-nvl", "gh200-144gb", "b300", "mi355x"}


@cache
def cost_of(gpu: str, peak_to_mean: float = 1.0) -> dict[str, object]:
    q = {"model": "llama-3.1-8b", "gpus": [gpu], "tp": 1, "rate_per_s": 3.0, "verify": 0, "top": 1}
    plan = answer(question_from({**q, "peak_to_mean": peak_to_mean}), files=False)
    return to_json_dict(cost_command_payload(plan))


@pytest.mark.parametrize("gpu", sorted(gpu_catalog()))
def test_every_gpu_gets_finite_figures_or_words(gpu: str) -> None:
    d = cost_of(gpu)
    text = json.dumps(d, allow_nan=False)  # no NaN, no Infinity
    assert not re.search(r"\bnan\b", text, re.IGNORECASE)
    c = d["cost"]
    missing = " ".join(c["missing"])  # type: ignore[index]
    keys = {o["key"] for o in c["options"]}  # type: ignore[index]
    for o in c["options"]:  # type: ignore[index]
        assert o["usd_per_month"] >= 0 and o["total_36_months_usd"] >= o["total_12_months_usd"] >= 0
    if gpu in NO_BARE_METAL:
        assert f"no bare-metal price (lease, purchase or card) for {gpu}" in missing
    else:
        assert keys & {"lease", "purchase"}, f"{gpu} has a bare-metal price"
    if gpu in NO_CLOUD:
        assert f"no on-demand cloud price for a {gpu} instance" in missing
    else:
        assert "cloud_on_demand" in keys
    assert "api" in keys  # Llama-3.1-8B is sold per token
    story = " ".join(c["story"])  # type: ignore[arg-type]
    assert story.startswith(f"Priced: llama-3.1-8b as {gpu} TP1") and "3 requests/s" in story


def test_the_text_output_never_prints_nan() -> None:
    result = CliRunner().invoke(app, ["cost", "llama-3.1-8b", "--gpu", "h200-nvl", "--rate", "3"])
    assert result.exit_code == 0, result.output
    assert not re.search(
        r"\bnan\b", result.stdout, re.IGNORECASE
    ) and "no on-demand cloud price" in result.stdout.replace("\n", " ")
    assert "cannot be compared" in result.stdout and "no self-hosted option has a price" in result.stdout


def test_the_peak_fleet_is_priced_apart_from_the_mean() -> None:
    d = cost_of("h100-sxm", 40.0)  # one H100 serves 30 requests/s of this load: a peak that needs more
    c = d["cost"]
    mean, peak = c["mean_fleet"], c["peak_fleet"]  # type: ignore[index]
    assert peak["bare_metal_replicas"] >= mean["bare_metal_replicas"] and peak["requests_per_s"] == 120.0
    by = {o["key"]: o for o in c["options"]}  # type: ignore[index]
    assert by["cloud_on_demand"]["fleet"] == "mean" and by["cloud_on_demand"]["replicas"] == mean["cloud_replicas"]
    assert by["cloud_always_on"]["fleet"] == "peak" and by["cloud_always_on"]["replicas"] == peak["cloud_replicas"]
    assert by["purchase"]["fleet"] == "peak" and by["purchase"]["replicas"] == peak["bare_metal_replicas"]
    story = " ".join(c["story"])  # type: ignore[arg-type]
    assert "the peak (120 requests/s) needs" in story and "runs at" in story
    headline = " ".join(d["headline"])  # type: ignore[arg-type]
    assert "Peaks of 40x the mean (120 requests/s) need" in headline


def test_a_one_gpu_replica_is_not_priced_as_an_eight_gpu_server_without_saying_so() -> None:
    c = cost_of("h100-sxm")["cost"]
    for o in c["options"]:  # type: ignore[index]
        if o["key"] in ("lease", "purchase") and o["gpus"] > 1:
            assert "spare" in o["note"] and ("no smaller" in o["note"] or "cheaper than smaller" in o["note"])


def test_mig_slices_are_owned_as_whole_cards() -> None:
    q = {"model": "qwen2.5-7b", "gpus": ["a100-sxm-80gb"], "environment": "mig:3g.40gb", "rate_per_s": 1.0}
    plan = answer(question_from({**q, "verify": 0, "top": 1}), files=False)
    d = to_json_dict(plan_payload(plan, 1))
    assert d["cost"] is not None
    for o in d["cost"]["options"]:
        if o["key"] == "lease":
            assert o["gpus"] == 8  # an 8-card server holds the slices
