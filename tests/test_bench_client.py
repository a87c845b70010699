"""The load generator against inferplan's local server: definitions, faults, accounting."""

from __future__ import annotations

import asyncio
import math
from collections import Counter

import pytest

from inferplan.bench.client import BenchConfig, Prompt, RequestRecord, run_load
from inferplan.bench.localserver import Behaviour, serve
from inferplan.bench.sse import MalformedStream, SseParser, parse_chunk
from inferplan.bench.summary import summarize_records
from inferplan.errors import InputError
from inferplan.perf.metrics import Slo
from inferplan.perf.workload import Arrivals


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 60))


async def bench(
    plan,
    n: int = 10,
    arrivals: Arrivals | None = None,
    endpoint: str = "chat",
    timeout_s: float = 10.0,
    max_tokens: int = 8,
    **cfg,
):  # type: ignore[no-untyped-def]
    got: list[RequestRecord] = []
    async with serve(plan) as server:
        config = BenchConfig(
            server.url, "tiny", arrivals or Arrivals("concurrency", concurrency=4), endpoint, timeout_s, **cfg
        )
        records = await run_load(config, [Prompt("hello", 3, max_tokens)] * n, got.append)
    return records, got


def test_sse_parser_handles_split_events() -> None:
    parser = SseParser()
    stream = (
        b'data: {"choices":[{"delta":{"role":"assistant"}}]}\n\n'
        b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n'
    )
    payloads = [p for i in range(0, len(stream), 7) for p in parser.feed(stream[i : i + 7])]
    assert payloads[-1] == "[DONE]" and len(payloads) == 3
    assert parse_chunk(payloads[0]).content == ""  # a role-only chunk carries no token
    assert parse_chunk(payloads[1]).content == "hi"
    usage = parse_chunk('{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7}}')
    assert (usage.prompt_tokens, usage.completion_tokens) == (5, 7)
    assert parser.feed(b"data: x") == [] and parser.flush() == ["x"]
    with pytest.raises(MalformedStream):
        parse_chunk("{not json")
    with pytest.raises(MalformedStream):
        parse_chunk('{"error": {"message": "overloaded"}}')


def test_success_records_and_usage() -> None:
    records, got = run(bench(lambda _: Behaviour(), n=12, max_tokens=8))
    assert len(records) == len(got) == 12
    assert all(r.ok and r.output_tokens == 8 and r.tokens_source == "usage" for r in records)
    assert all(len(r.chunk_times_s) == 8 and r.first_token_s == r.chunk_times_s[0] for r in records)
    s = summarize_records(records)
    assert s["sent"] == s["succeeded"] == 12 and s["failed"] == 0
    assert s["output_token_throughput_per_s"] > 0


def test_ttft_is_first_content_not_role_chunk() -> None:
    records, _ = run(bench(lambda _: Behaviour(ttft_delay_s=0.15), n=2))
    for r in records:
        assert r.ttft_s >= 0.15  # the role-only chunk came at once; content 150 ms later


def test_itl_and_tpot() -> None:
    records, _ = run(bench(lambda _: Behaviour(token_delay_s=0.03), n=2, max_tokens=6))
    s = summarize_records(records)
    assert 0.025 < s["itl_s"]["p50"] < 0.2
    assert s["tpot_s"]["mean"] == pytest.approx(s["itl_s"]["mean"], rel=0.3)


def test_waiting_for_a_slot_counts_in_ttft() -> None:
    # an open loop capped at one stream: the second request waits for the first
    arrivals = Arrivals("poisson", rate_per_s=1000.0)
    records, _ = run(
        bench(lambda _: Behaviour(token_delay_s=0.05), n=3, arrivals=arrivals, max_tokens=4, max_concurrency=1)
    )
    ttfts = sorted(r.ttft_s for r in records)
    assert ttfts[-1] > 0.25  # waited for two earlier streams of ~0.15 s


def test_every_fault_is_classified_and_counted() -> None:
    faults = {
        1: Behaviour(status=500),
        2: Behaviour(status=429),
        3: Behaviour(stall_s=5.0),
        4: Behaviour(malformed=True),
        5: Behaviour(close_after=2),
        6: Behaviour(usage=False),
        7: Behaviour(max_tokens=0),
    }
    records, got = run(
        bench(
            lambda i: faults.get(i, Behaviour()), n=10, timeout_s=1.0, arrivals=Arrivals("concurrency", concurrency=1)
        )
    )
    assert len(records) == len(got) == 10
    by_error = Counter(r.error for r in records)
    assert by_error == Counter(
        {"": 4, "http_500": 1, "http_429": 1, "timeout": 1, "malformed": 1, "early_end": 1, "empty": 1}
    )
    no_usage = [r for r in records if r.ok and r.tokens_source == "chunks"]
    assert len(no_usage) == 1 and no_usage[0].output_tokens == 8
    s = summarize_records(records)
    assert s["sent"] == s["succeeded"] + s["failed"] == 10
    assert s["output_tokens_from_usage"] is False


def test_server_killed_mid_run_keeps_what_was_measured() -> None:
    async def scenario() -> list[RequestRecord]:
        got: list[RequestRecord] = []
        async with serve(lambda _: Behaviour(token_delay_s=0.02)) as server:
            cfg = BenchConfig(server.url, "tiny", Arrivals("concurrency", concurrency=2), "chat", 5.0)
            task = asyncio.create_task(run_load(cfg, [Prompt("x", 1, 5)] * 40, got.append))
            while len(got) < 6:
                await asyncio.sleep(0.01)
            await server.stop()
            records = await task
        return records, got  # type: ignore[return-value]

    records, got = run(scenario())  # type: ignore[misc]
    assert len(records) == len(got) == 40
    ok = [r for r in records if r.ok]
    assert len(ok) >= 6
    assert {r.error for r in records if not r.ok} <= {"connection", "early_end"}


def test_duration_bound_stops_sending() -> None:
    records, _ = run(
        bench(
            lambda _: Behaviour(token_delay_s=0.05),
            n=200,
            duration_s=0.3,
            max_tokens=3,
            arrivals=Arrivals("concurrency", concurrency=2),
        )
    )
    assert 0 < len(records) < 200


def test_completions_endpoint_and_goodput() -> None:
    records, _ = run(bench(lambda _: Behaviour(), n=5, endpoint="completions"))
    assert all(r.ok for r in records)
    strict = summarize_records(records, Slo(ttft_s=1e-9))
    loose = summarize_records(records, Slo(ttft_s=10.0, tpot_s=10.0))
    assert strict["goodput_requests_per_s"] == 0.0
    assert loose["goodput_requests_per_s"] == pytest.approx(loose["request_throughput_per_s"])


def test_refused_connection_is_a_classified_failure() -> None:
    cfg = BenchConfig("http://127.0.0.1:9", "tiny", Arrivals("concurrency", concurrency=1), "chat", 2.0)
    records = run(run_load(cfg, [Prompt("x", 1, 2)] * 2, lambda _: None))
    assert [r.error for r in records] == ["connection", "connection"]
    assert all(not math.isnan(r.end_s) for r in records)


@pytest.mark.parametrize("kwargs", [{"url": "ftp://x"}, {"endpoint": "embeddings"}, {"timeout_s": 0}])
def test_bad_config(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = {"url": "http://127.0.0.1:1", "model": "m", "arrivals": Arrivals("offline")}
    with pytest.raises(InputError):
        BenchConfig(**(base | kwargs))  # type: ignore[arg-type]
