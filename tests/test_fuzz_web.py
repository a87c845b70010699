"""Fuzz the web API through the ASGI app: plan and report bodies with wrong types, booleans for
numbers, out-of-range and non-finite values, hostile pasted configs; raw bodies that are not
JSON at all; query parameters; unknown paths and methods. Seeded (derandomize), bounded in
cases and time. Fails on any HTTP 500, an undocumented status, an error that is not one line of
JSON, or NaN / Infinity in any answer."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inferplan.present.web import create_app
from tests.conftest import tiny_llama_config
from tests.fuzzing import ADVERSARIAL_CONFIGS, COUNTS, allowed_tokens, non_finite_tokens, strict_json

APP = create_app()
CLIENT = TestClient(APP, raise_server_exceptions=False)  # a bug answers 500 here instead of raising
STATUSES = {200, 400, 404, 405, 409, 413, 422, 429}
SETTINGS = settings(derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))

EDGE_VALUES: list[Any] = [
    True,
    False,
    None,
    0,
    -1,
    1.5,
    1e308,
    -1e308,
    2**63,
    10**30,
    "1",
    "nan",
    "",
    "x" * 600,
    [],
    [1],
    {},
    {"a": 1},
    [[[[[]]]]],
]
VALID: dict[str, st.SearchStrategy[Any]] = {
    "model": st.sampled_from(
        ["qwen3-0.6b", "llama-3.1-8b", "mixtral-8x7b", "nope", "/etc/passwd", "a/b", "a\nb\x00", "[red]x"]
    ),
    "isl": st.integers(1, 100_000),
    "osl": st.integers(1, 10_000),
    "rate_per_s": st.floats(0.01, 1000),
    "concurrency": st.integers(1, 10_000),
    "ttft_ms": st.floats(1, 10_000),
    "tpot_ms": st.floats(1, 1000),
    "e2e_s": st.floats(1, 1000),
    "min_output_tokens_per_s": st.floats(1, 1e6),
    "budget_usd_per_hour": st.floats(0.01, 1e5),
    "gpus": st.lists(st.sampled_from(["l4", "h100", "b200", "mi300x", "h900"]), max_size=2),
    "dtypes": st.lists(st.sampled_from(["bf16", "fp8", "int4", "fp3"]), max_size=2),
    "kv_dtypes": st.lists(st.sampled_from(["auto", "fp8", "fp4"]), max_size=2),
    "tp": st.integers(1, 8),
    "pp": st.integers(1, 2),
    "engine": st.sampled_from(["vllm", "sglang", "magic"]),
    "environment": st.sampled_from(["bare-metal", "vm", "vgpu", "mig:3g.40gb", "moon"]),
    "env_set": st.dictionaries(st.sampled_from(["jitter_loss", "cpu_overhead", "nope"]), st.floats(0, 2), max_size=2),
    "cost_set": st.dictionaries(st.sampled_from(["usd_per_kwh", "pue", "nope"]), st.floats(0, 3), max_size=2),
    "hours_fraction": st.floats(0.01, 1),
    "peak_to_mean": st.floats(1, 10),
    "rank": st.sampled_from(["cost", "latency", "gpus", "speed"]),
    "top": st.integers(1, 50),
    "verify": st.integers(0, 1),
    "calibration": st.sampled_from(["none-such", "../../etc/passwd"]),
    "model_name": st.sampled_from(["tiny", "a b", "<script>", ""]),
    "charts": st.sampled_from([False, False, False, True, "true", 1]),
    "config_json": st.sampled_from(
        [json.dumps(tiny_llama_config()), *(raw.decode("latin-1") for raw in ADVERSARIAL_CONFIGS.values())]
    ),
    "extra_field": st.just(1),
}
BASE = {"model": "qwen3-0.6b", "gpus": ["l4"], "charts": False, "verify": 0}


def check_answer(method: str, url: str, answer: Any, sent: str | bytes) -> None:
    """Every answer: a documented status, never a 500; errors are one line of JSON; no NaN or
    Infinity anywhere (an error may quote what was sent)."""
    COUNTS["web cases"] += 1
    COUNTS[f"web status {answer.status_code}"] += 1
    if answer.status_code >= 500:
        COUNTS["web 500s"] += 1
        raise AssertionError(f"{method} {url} answered {answer.status_code}: {answer.text[:2000]}")
    assert answer.status_code in STATUSES, (method, url, answer.status_code, answer.text[:500])
    text = answer.text
    if answer.status_code != 200:
        assert answer.headers["content-type"].startswith("application/json"), answer.headers
        body = strict_json(text)
        assert set(body) == {"error", "kind"} and body["error"] and "\n" not in body["error"], body
        found = non_finite_tokens(body["error"]) - allowed_tokens(sent)
    else:
        if answer.headers["content-type"].startswith("application/json"):
            strict_json(text)
        found = non_finite_tokens(text)
    if found:
        COUNTS["web NaN"] += 1
        raise AssertionError(f"NaN or Infinity in the answer to {method} {url}: {text[:3000]}")


@st.composite
def plan_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = dict(BASE)
    for field in draw(st.lists(st.sampled_from(sorted(VALID)), max_size=4, unique=True)):
        valid = draw(st.booleans())
        body[field] = draw(VALID[field]) if valid else draw(st.sampled_from(EDGE_VALUES))
        if field == "config_json" and valid:
            body.pop("model", None)
    return body


PLAN_CASES = 500


def test_plan_bodies_fuzz() -> None:
    """Plan bodies with wrong types, booleans for numbers, edges and hostile configs."""
    before, started = COUNTS["web cases"], time.monotonic()

    @settings(SETTINGS, max_examples=PLAN_CASES)
    @given(plan_bodies(), st.sampled_from(["/api/plan"] * 9 + ["/api/report"]))
    def one(body: dict[str, Any], url: str) -> None:
        if url == "/api/report" and body.get("charts") is not False:
            body = {**body, "verify": 0}
        sent = json.dumps(body)
        check_answer("POST", url, CLIENT.post(url, content=sent, headers={"content-type": "application/json"}), sent)

    one()
    assert COUNTS["web cases"] - before >= PLAN_CASES
    assert time.monotonic() - started < 150


RAW_BODIES = [
    b"",
    b"{",
    b"{not json",
    b"[1, 2]",
    b'"a string"',
    b"null",
    b"42",
    b'{"model": "qwen3-0.6b", "isl": NaN}',
    b'{"model": "qwen3-0.6b", "isl": Infinity}',
    b'{"model": "qwen3-0.6b", "rate_per_s": 1e400}',
    b'{"model": "qwen3-0.6b", "isl": ' + b"9" * 5000 + b"}",
    b'{"model": "qwen3-0.6b", "isl": true}',
    b'{"model": "qwen3-0.6b", "gpus": "l4"}',
    b'{"model": "qwen3-0.6b", "model": "llama-3.1-8b", "gpus": ["l4"], "charts": false, "verify": 0}',
    b'{"model": "\xff\xfe"}',
    b"\xff\xfe\x00{",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a": ' * 2000 + b"1" + b"}" * 2000,
    b"model=qwen3-0.6b&isl=5",
]


def test_raw_bodies_fuzz() -> None:
    """Bodies that are not a JSON object at all, under every content type."""
    before = COUNTS["web cases"]

    @settings(SETTINGS, max_examples=150)
    @given(
        st.sampled_from(RAW_BODIES) | st.binary(max_size=64),
        st.sampled_from(["/api/plan", "/api/report"]),
        st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""]),
    )
    def one(raw: bytes, url: str, content_type: str) -> None:
        headers = {"content-type": content_type} if content_type else {}
        check_answer("POST", url, CLIENT.post(url, content=raw, headers=headers), raw)

    one()
    assert COUNTS["web cases"] - before >= 150


def test_queries_paths_and_methods_fuzz() -> None:
    """Query parameters (booleans, huge and non-finite numbers), unknown paths, wrong methods."""
    before = COUNTS["web cases"]
    values = st.sampled_from(["true", "false", "1", "0", "-1", "1.5", "nan", "inf", "1e400", "9" * 400, "", "x" * 200])

    @settings(SETTINGS, max_examples=250)
    @given(
        st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
        st.sampled_from(["/api/models", "/api/options", "/api/health", "/api/nope", "/api/plan", "/", "/api/docs"]),
        st.dictionaries(st.sampled_from(["q", "limit", "x"]), values | st.text(max_size=8), max_size=2),
    )
    def one(method: str, path: str, params: dict[str, str]) -> None:
        answer = CLIENT.request(method, path, params=params)
        check_answer(method, path, answer, json.dumps(params))

    one()
    assert COUNTS["web cases"] - before >= 250


@pytest.mark.parametrize("name", sorted(ADVERSARIAL_CONFIGS))
def test_hostile_pasted_configs_are_a_4xx_of_one_line(name: str) -> None:
    """Each hostile config.json pasted into the form (bytes that are not UTF-8 arrive as the
    browser would send them, decoded as Latin-1): a 4xx JSON error, never a 500."""
    text = ADVERSARIAL_CONFIGS[name].decode("latin-1")
    sent = json.dumps({"config_json": text, "gpus": ["l4"], "charts": False})
    answer = CLIENT.post("/api/plan", content=sent, headers={"content-type": "application/json"})
    check_answer("POST", "/api/plan", answer, sent)
    assert answer.status_code in (413, 422), answer.text
