"""``bench serve`` traffic of issue 13 against inferplan's local server: multi-turn sessions, shared
system prompts, requests spread over LoRA adapters, an own cache salt per request, a dataset's
prompts, and the prefix-cache counters the server reports, stored with the run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from inferplan.bench.cache_counters import cache_counters, counter_increase
from inferplan.bench.deadline import Timeouts
from inferplan.bench.http import PooledTransport
from inferplan.bench.localserver import Behaviour, LocalServer
from inferplan.bench.multiturn import Session, SessionTraffic, make_sessions, turn_prompt
from inferplan.bench.record import Prompt
from inferplan.bench.store import ResultsStore
from inferplan.bench.telemetry import parse_prometheus
from inferplan.cli import app
from inferplan.perf.sessions import TrafficShape
from tests.benchserver import threaded_server

SAMPLE = Path(__file__).parent / "data" / "sharegpt_sample.jsonl"


def _serve(url: str, db: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
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
            "2",
            "--isl",
            "9",
            "--osl",
            "3",
            "--timeout",
            "20s",
            "--db",
            str(db),
            "--json",
            *extra,
        ],
    )
    return result.exit_code, json.loads(result.stdout) if result.exit_code == 0 else {}, result.output


def _sessions(bodies: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Chat bodies grouped into conversations: a turn's messages extend the turn before it."""
    done: list[list[dict[str, Any]]] = []
    for body in bodies:
        for conv in done:
            last = conv[-1]["messages"]
            if body["messages"][: len(last)] == last and len(body["messages"]) == len(last) + 2:
                conv.append(body)
                break
        else:
            done.append([body])
    return done


def test_multi_turn_with_shared_prompts_sends_the_conversation_and_stores_the_hits(tmp_path: Path) -> None:
    with threaded_server(lambda _: Behaviour()) as server:
        code, d, out = _serve(
            server.url,
            tmp_path / "r.db",
            "--endpoint",
            "chat",
            "--multi-turn",
            "3",
            "--shared-prefix",
            "2x12",
            "--num-requests",
            "7",  # rounded up to whole sessions: 3 sessions of 3 turns
        )
        bodies = [b for b in server.seen if "messages" in b]
    assert code == 0, out
    point = d["points"][0]
    s = point["summary"]
    assert s["sent"] == s["succeeded"] == 9
    convs = _sessions(bodies)
    assert sorted(len(c) for c in convs) == [3, 3, 3]
    systems = {c[0]["messages"][0]["content"] for c in convs}
    assert 1 <= len(systems) <= 2 and all(c[0]["messages"][0]["role"] == "system" for c in convs)
    for conv in convs:
        roles = [m["role"] for m in conv[-1]["messages"]]
        assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
        assert conv[1]["messages"][2]["content"].strip()  # the reply streamed back is sent on
    # the local server caches blocks of 4 words: later turns and a reused system prompt hit
    cache = s["prefix_cache"]
    assert cache["queried_tokens"] == sum(
        len(" ".join(f"{m['role']}: {m['content']}" for m in b["messages"]).split()) for b in bodies
    )
    assert 0.3 < cache["hit_rate"] < 1.0 and cache["hit_tokens"] == pytest.approx(
        cache["hit_rate"] * cache["queried_tokens"]
    )
    store = ResultsStore(tmp_path / "r.db")
    run = store.run(point["run_id"])
    traffic = run.config["traffic"]
    assert traffic["turns"] == 3 and len(traffic["prefix_of_session"]) == 3
    assert traffic["prefix_tokens_counted"] == [12, 12]
    assert run.summary["prefix_cache"] == cache
    assert len(store.records(point["run_id"])) == 9
    store.close()


def test_isolated_cache_and_adapters(tmp_path: Path) -> None:
    with threaded_server(lambda _: Behaviour()) as server:
        code, d, out = _serve(
            server.url,
            tmp_path / "r.db",
            "--multi-turn",
            "2",
            "--shared-prefix",
            "1x16",
            "--lora-adapters",
            "sql,chat",
            "--isolate-cache",
            "--num-requests",
            "8",
        )
        bodies = list(server.seen)
    assert code == 0, out
    s = d["points"][0]["summary"]
    assert s["succeeded"] == 8
    salts = [b["cache_salt"] for b in bodies if "prompt" in b]
    assert len(salts) == len(set(salts)) == 8  # no request can reuse another's KV
    assert s["prefix_cache"]["hit_rate"] == 0.0
    models = [b["model"] for b in bodies if "prompt" in b]
    assert set(models) <= {"sql", "chat"}
    # the completions endpoint sends a session's conversation as one text, turn 2 extending turn 1
    firsts = [b for b in bodies if "prompt" in b and len(b["prompt"].split()) < 16 + 9 + 3]
    seconds = [b for b in bodies if "prompt" in b and b not in firsts]
    assert len(firsts) == len(seconds) == 4
    for second in seconds:
        assert any(second["prompt"].startswith(f["prompt"]) and second["model"] == f["model"] for f in firsts)


def test_dataset_prompts_and_a_server_without_counters(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    firsts = {r["conversations"][0]["value"] for r in rows}
    with threaded_server(lambda _: Behaviour(), metrics="none") as server:
        code, d, out = _serve(server.url, tmp_path / "r.db", "--dataset", str(SAMPLE), "--num-requests", "6")
        prompts = [b["prompt"] for b in server.seen]
    assert code == 0, out
    s = d["points"][0]["summary"]
    assert s["succeeded"] == 6 and s["prefix_cache"] is None
    assert len(prompts) == 6 and set(prompts) <= firsts
    store = ResultsStore(tmp_path / "r.db")
    assert store.run(d["points"][0]["run_id"]).config["tokens_per_word"] == pytest.approx(4 / 3)
    store.close()


def test_counter_reads_and_their_increase() -> None:
    assert counter_increase(None, {"prefix_queries": 3.0}) is None
    assert counter_increase({"prefix_queries": 1.0}, {"prefix_hits": 1.0}) is None
    got = counter_increase({"prefix_queries": 10.0, "prefix_hits": 2.0}, {"prefix_queries": 30.0, "prefix_hits": 12.0})
    assert got == {"queried_tokens": 20.0, "hit_tokens": 10.0, "hit_rate": 0.5, "external_hit_tokens": None}
    same = counter_increase({"prefix_queries": 5.0}, {"prefix_queries": 5.0})
    assert same is not None and same["hit_rate"] is None  # nothing queried: no rate, never NaN

    async def read(metrics: str) -> dict[str, float] | None:
        server = LocalServer(lambda _: Behaviour(), metrics=metrics)
        await server.start()
        transport = PooledTransport(server.url)
        try:
            return await cache_counters(transport, server.url, Timeouts(connect_s=1.0, total_s=0.5))
        finally:
            await transport.aclose()
            await server.stop()

    assert asyncio.run(read("ok")) == {"prefix_queries": 0.0, "prefix_hits": 0.0}
    assert asyncio.run(read("none")) is None
    assert asyncio.run(read("hang")) is None  # bounded: the read gives up


def test_sglang_prefix_counters_are_read_over_their_labels() -> None:
    """SGLang's counters as prometheus_client writes them: per model and data-parallel rank, the
    cached tokens per cache source (device, host), with the ``_created`` timestamps beside them."""
    body = """# HELP sglang:prompt_tokens_total Number of prefill tokens processed.
# TYPE sglang:prompt_tokens_total counter
sglang:prompt_tokens_total{dp_rank="0",model_name="m"} 1200.0
sglang:prompt_tokens_total{dp_rank="1",model_name="m"} 800.0
sglang:prompt_tokens_created{dp_rank="0",model_name="m"} 1.7649e+09
# HELP sglang:cached_tokens_total Number of cached prompt tokens.
# TYPE sglang:cached_tokens_total counter
sglang:cached_tokens_total{cache_source="device",dp_rank="0",model_name="m"} 500.0
sglang:cached_tokens_total{cache_source="host",dp_rank="0",model_name="m"} 100.0
sglang:cached_tokens_total{cache_source="device",dp_rank="1",model_name="m"} 300.0
sglang:cached_tokens_created{cache_source="device",dp_rank="0",model_name="m"} 1.7649e+09
sglang:cache_hit_rate{model_name="m"} 0.4
"""
    after = parse_prometheus(body)
    assert after == {"prefix_queries": 2000.0, "prefix_hits": 900.0}
    before = {"prefix_queries": 1000.0, "prefix_hits": 400.0}
    assert counter_increase(before, after) == {
        "queried_tokens": 1000.0,
        "hit_tokens": 500.0,
        "hit_rate": 0.5,
        "external_hit_tokens": None,
    }


def test_turn_prompts_count_the_conversation() -> None:
    traffic = SessionTraffic(TrafficShape(turns=2, shared_prefixes=1, shared_prefix_tokens=5), ("a b c d e",), (5,))
    sessions = make_sessions(traffic, [Prompt("x y", 2, 4), Prompt("z", 1, 3), Prompt("w", 1, 3)], seed=1)
    assert len(sessions) == 1  # the odd message makes no whole session
    session: Session = sessions[0]
    first = turn_prompt(traffic, session, [], chat=True)
    assert first.messages == (("system", "a b c d e"), ("user", "x y")) and first.input_tokens == 7
    second = turn_prompt(traffic, session, [("x y", "r r r r")], chat=False)
    assert second.text == "a b c d e x yr r r r z"
    assert second.input_tokens == 5 + 2 + 4 + 1 and second.max_tokens == 3
