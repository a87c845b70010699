"""Planning with speculative decoding and with disaggregated prefill/decode (issue 14): the question's
new fields, the xPyD search beside the co-located one, the verdict with its reasons in numbers (a case
where the split wins and one where it loses), the speculation step, and the payloads."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest
from typer.testing import CliRunner

from inferplan.cli import app
from inferplan.errors import InputError
from inferplan.plan.planner import Plan
from inferplan.plan.question import question_from
from inferplan.plan.service import answer
from inferplan.present.payload import to_json_dict
from inferplan.present.payload_plan import plan_payload

H100_FP8 = {"gpus": ["h100-sxm"], "dtypes": ["fp8"], "kv_dtypes": ["fp8"]}
LONG = {"model": "llama-3.1-70b", "isl": 8000, "osl": 500, "rate_per_s": 2.0, "disaggregation": True, **H100_FP8}


@cache
def _plan(key: str) -> Plan:
    return answer(question_from(json.loads(key)), files=True)


def plan(**values: Any) -> Plan:
    return _plan(json.dumps(values, sort_keys=True))


def test_the_split_wins_at_a_strict_tpot_with_long_prompts() -> None:
    p = plan(**LONG, tpot_ms=15.0, ttft_ms=3000.0)
    d = p.disaggregation
    assert d is not None and d.wins and d.best is not None and d.best.meets
    assert d.best.usd_per_hour is not None and p.chosen.usd_per_hour is not None
    assert d.best.usd_per_hour < p.chosen.usd_per_hour  # priced both, the split cheaper
    assert d.best.at_demand.op.tpot_p90_s <= 0.015 and d.best.at_demand.op.ttft_p90_s <= 3.0
    text = " ".join(d.reasons)
    assert "of its time in prefill" in text and "GB of KV" in text  # why, in numbers
    assert d.check is not None and d.check.metrics.tpot_s.p90 <= 0.015 * 1.1  # the simulator agrees
    payload = to_json_dict(plan_payload(p, 5))
    assert payload["headline"][0].startswith("Recommendation: disaggregated prefill/decode")
    assert payload["headline"][2].startswith("Co-located instead:")
    assert payload["disaggregation"]["wins"] is True and payload["disaggregation"]["best"]["meets_targets"]
    assert payload["steps"][-1]["title"] == "5. Disaggregated prefill/decode"


def test_the_split_loses_when_co_located_replicas_absorb_the_prefill() -> None:
    p = plan(**LONG, tpot_ms=60.0, ttft_ms=1000.0)
    d = p.disaggregation
    assert d is not None and not d.wins and d.best is not None
    assert p.chosen.meets and p.chosen.usd_per_hour is not None and d.best.usd_per_hour is not None
    assert p.chosen.usd_per_hour <= d.best.usd_per_hour
    assert d.verdict.startswith("Disaggregation loses")
    head = to_json_dict(plan_payload(p, 5))["headline"]
    assert head[0].startswith("Recommendation: 1 x") and head[-1].startswith("Disaggregation loses")


def test_a_slow_kv_link_costs_ttft() -> None:
    fast = plan(**LONG, tpot_ms=15.0, ttft_ms=3000.0)
    slow = plan(**LONG, tpot_ms=15.0, ttft_ms=3000.0, kv_link="eth-100g")
    assert fast.disaggregation and slow.disaggregation and slow.disaggregation.best and fast.disaggregation.best
    assert (
        slow.disaggregation.best.at_demand.transfer.exposed_s
        > 10 * fast.disaggregation.best.at_demand.transfer.exposed_s
    )


def test_no_split_for_a_closed_loop() -> None:
    p = plan(model="llama-3.1-8b", isl=1000, osl=200, concurrency=8, disaggregation=True, **H100_FP8)
    assert p.disaggregation is not None and p.disaggregation.best is None
    assert "--rate" in p.disaggregation.reasons[0]


def test_speculation_in_the_plan() -> None:
    p = plan(model="llama-3.1-70b", isl=2000, osl=300, rate_per_s=2.0, tpot_ms=10.0, spec_method="eagle3", **H100_FP8)
    assert p.chosen.deployment.speculation is not None and "+eagle3 k3" in p.chosen.label()
    assert p.speculation is not None and p.speculation.crossover.batch is not None
    step = next(s for s in p.steps if s.title == "5. Speculative decoding")
    assert "nebius" in step.text and "crossover" in step.text and "without it" in step.text
    payload = to_json_dict(plan_payload(p, 3))
    assert payload["speculation"]["method"] == "eagle3"
    assert payload["speculation"]["crossover"]["crossover_batch"] == p.speculation.crossover.batch
    without = plan(model="llama-3.1-70b", isl=2000, osl=300, rate_per_s=2.0, tpot_ms=10.0, **H100_FP8)
    assert without.chosen.num_gpus >= p.chosen.num_gpus


def test_the_question_refuses_bad_serving_options_in_one_line() -> None:
    for values, needle in (
        ({"spec_acceptance": "fast"}, "spec_acceptance (--spec-acceptance)"),
        ({"spec_method": "medusa"}, "spec_method (--spec)"),
        ({"spec_tokens": 99}, "spec_tokens (--spec-tokens)"),
        ({"kv_overlap": "always"}, "kv_overlap (--kv-overlap)"),
    ):
        with pytest.raises(InputError) as info:
            question_from({"model": "llama-3.1-8b", **values})
        assert needle in str(info.value)


def test_plan_cli_with_disagg_and_spec() -> None:
    result = CliRunner().invoke(
        app,
        [
            "plan",
            "llama-3.1-8b",
            "--isl",
            "4000",
            "--osl",
            "300",
            "--rate",
            "4",
            "--tpot",
            "20ms",
            "--gpus",
            "h100-sxm",
            "--dtypes",
            "fp8",
            "--kv-dtypes",
            "fp8",
            "--disagg",
            "--spec",
            "ngram",
            "--verify",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Disaggregated prefill/decode" in result.output and "prefill/decode splits" in result.output
    assert "Speculative decoding" in result.output


def test_near_the_decode_floor_co_located_needs_many_replicas_and_the_split_does_not() -> None:
    """At a TPOT just above the decode floor, co-located replicas meet it only at a load so low that
    hardly a prompt lands in a request's decode (dozens of replicas); the split's decode pool has no
    prefill in its steps and meets it with a few."""
    p = plan(**LONG, tpot_ms=8.5, ttft_ms=3000.0)
    d = p.disaggregation
    assert p.chosen.meets and p.chosen.replicas >= 10
    assert d is not None and d.wins and d.best is not None and d.best.meets
    assert d.best.usd_per_hour is not None and p.chosen.usd_per_hour is not None
    assert d.best.usd_per_hour < p.chosen.usd_per_hour / 5
    head = to_json_dict(plan_payload(p, 3))["headline"]
    assert head[0].startswith("Recommendation: disaggregated")
    result = CliRunner().invoke(
        app,
        [
            *("plan", "llama-3.1-70b", "--isl", "8000", "--osl", "500", "--rate", "2", "--tpot", "8.5ms"),
            *("--gpus", "h100-sxm", "--dtypes", "fp8", "--kv-dtypes", "fp8"),
        ],
    )
    assert result.exit_code == 0 and f"{p.chosen.replicas} x (h100-sxm TP8" in result.output  # without --disagg
