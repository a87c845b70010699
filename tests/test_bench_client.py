"""The load generator against inferplan's local server: definitions, faults, accounting; the
transport's and the SSE parser's refusals of bytes that break the formats."""

from __future__ import annotations

import asyncio
import math
from collections import Counter

import pytest

from inferplan.bench.client import BenchConfig, Prompt, RequestRecord, run_load, server_root
from inferplan.bench.deadline import Timeouts
from inferplan.bench.http import MAX_CHUNK_BYTES, ProtocolError, _ChunkDecoder
from inferplan.bench.localserver import CORRUPTIONS, HTTP_FAULTS, Behaviour, serve
from inferplan.bench.sse import MAX_EVENT_BYTES, MalformedStream, SseParser, StreamAborted, parse_chunk
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
    timeouts: Timeouts | None = None,
    max_tokens: int = 8,
    **cfg,
):  # type: ignore[no-untyped-def]
    got: list[RequestRecord] = []
    async with serve(plan) as server:
        config = BenchConfig(
            server.url,
            "tiny",
            arrivals or Arrivals("concurrency", concurrency=4),
            endpoint,
            timeouts or Timeouts(10.0),
            **cfg,
        )
        records = await run_load(config, [Prompt("hello", 3, max_tokens)] * n, got.append)
    return records, got


def test_sse_parser_handles_split_events() -> None:
    parser = SseParser()
    stream = (
        b'data: {"choices":[{"delta":{"role":"assistant"}}]}\n\n'
        b'data: {"choices":[{"delta":{"content":"hi"}}]}\r\n\r\ndata: [DONE]\n\n'
    )
    payloads = [p for i in range(0, len(stream), 7) for p in parser.feed(stream[i : i + 7])]
    assert payloads[-1] == "[DONE]" and len(payloads) == 3
    assert parse_chunk(payloads[0]).content == ""  # a role-only chunk carries no token
    assert parse_chunk(payloads[1]).content == "hi"
    usage = parse_chunk('{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7}}')
    assert (usage.prompt_tokens, usage.completion_tokens) == (5, 7)
    assert parser.feed(b"data: x") == [] and parser.flush() == ["x"]


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        ("{not json", MalformedStream),
        ("[1, 2]", MalformedStream),
        ('{"choices": {"text": "x"}}', MalformedStream),
        ('{"choices": ["x"]}', MalformedStream),
        ('{"choices": [{"delta": "x"}]}', MalformedStream),
        ('{"choices": [{"text": 42}]}', MalformedStream),
        ('{"choices": [{"text": "x", "finish_reason": 7}]}', MalformedStream),
        ('{"choices": [], "usage": {"completion_tokens": "12"}}', MalformedStream),
        ('{"choices": [], "usage": {"completion_tokens": 7.5}}', MalformedStream),
        ('{"choices": [], "usage": {"completion_tokens": true}}', MalformedStream),
        ('{"choices": [], "usage": {"completion_tokens": -1}}', MalformedStream),
        ('{"choices": [], "usage": {"completion_tokens": NaN}}', MalformedStream),
        ('{"choices": [], "usage": [1]}', MalformedStream),
        ('{"usage": {"completion_tokens": ' + "9" * 5000 + "}}", MalformedStream),
        ("[" * 100_000 + "]" * 100_000, MalformedStream),
        ('{"error": {"message": "overloaded"}}', StreamAborted),
        ('{"choices": [{"text": "x", "finish_reason": "abort"}]}', StreamAborted),
    ],
)
def test_every_wrong_shape_is_refused(payload: str, kind: type[Exception]) -> None:
    with pytest.raises(kind):
        parse_chunk(payload)


def test_odd_but_valid_chunks_are_read() -> None:
    assert parse_chunk('{"choices": null, "usage": null}').content == ""
    tgi = parse_chunk('{"choices": [{"delta": {"content": "a"}, "finish_reason": "eos_token"}]}')
    assert (tgi.content, tgi.finish_reason) == ("a", "eos_token")
    reasoning = parse_chunk('{"choices": [{"delta": {"content": null, "reasoning_content": "hm"}}]}')
    assert reasoning.content == "hm"
    assert parse_chunk('{"choices": [{"text": "x", "finish_reason": ""}]}').finish_reason is None
    stamped = parse_chunk('{"choices": [], "inferplan_sent_s": "soon", "inferplan_received_s": 1.5}')
    assert stamped.sent_s is None and stamped.received_s == 1.5


def test_sse_limits() -> None:
    with pytest.raises(MalformedStream, match="SSE line"):
        SseParser().feed(b"data: " + b"x" * (MAX_EVENT_BYTES + 1))
    parser = SseParser()
    with pytest.raises(MalformedStream, match="SSE event"):
        for _ in range(5):
            parser.feed(b"data: " + b"x" * (MAX_EVENT_BYTES // 4) + b"\n")


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"zz\r\nhello\r\n", "invalid chunk size"),
        (b"-5\r\nhello\r\n", "invalid chunk size"),
        (b"%x\r\n" % (MAX_CHUNK_BYTES + 1), "over the"),
        (b"5\r\nhelloXX", "not followed by CRLF"),
        (b"5" * 2000, "chunk-size line"),
    ],
)
def test_chunk_decoder_refuses_bad_chunking(raw: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        _ChunkDecoder().feed(raw)


def test_chunk_decoder_trailers_and_leftovers() -> None:
    d = _ChunkDecoder()
    assert d.feed(b"3;ext=1\r\nabc\r\n0\r\nx-trailer: 1\r\n\r\n") == b"abc" and d.done and not d.buffer
    d = _ChunkDecoder()
    assert d.feed(b"2\r\nab\r\n0\r\n\r\nGARBAGE") == b"ab" and d.done and d.buffer == b"GARBAGE"


def test_base_url_with_or_without_v1() -> None:
    for url in ("http://h:8000", "http://h:8000/", "http://h:8000/v1", "http://h:8000/v1/"):
        assert server_root(url) == "http://h:8000"
    assert server_root("https://api.example.com/proxy/v1") == "https://api.example.com/proxy"


def test_success_records_and_usage() -> None:
    records, got = run(bench(lambda _: Behaviour(), n=12, max_tokens=8))
    assert len(records) == len(got) == 12
    assert all(r.ok and r.output_tokens == 8 and r.tokens_source == "usage" for r in records)
    assert all(len(r.chunk_times_s) == 8 and r.first_token_s == r.chunk_times_s[0] for r in records)
    assert all(len(r.server_times_s) == 8 and r.server_received_s <= r.server_times_s[0] for r in records)
    s = summarize_records(records)
    assert s["sent"] == s["succeeded"] == 12 and s["failed"] == s["cancelled"] == 0
    assert s["output_token_throughput_per_s"] > 0


def test_ttft_is_first_content_not_role_chunk() -> None:
    records, _ = run(bench(lambda _: Behaviour(ttft_delay_s=0.15), n=2))
    for r in records:
        assert r.ttft_s >= 0.15  # the role-only chunk came at once; content 150 ms later


def test_itl_tpot_and_e2e_end_at_the_last_token() -> None:
    records, _ = run(bench(lambda _: Behaviour(token_delay_s=0.03), n=2, max_tokens=6))
    s = summarize_records(records)
    assert 0.025 < s["itl_s"]["p50"] < 0.2
    assert s["tpot_s"]["mean"] == pytest.approx(s["itl_s"]["mean"], rel=0.3)
    for r in records:
        assert r.e2e_s == pytest.approx(r.chunk_times_s[-1] - r.scheduled_s)
        assert r.end_s >= r.chunk_times_s[-1]


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
        2: Behaviour(status=429, retry_after_s=7),
        3: Behaviour(stall_s=5.0),
        4: Behaviour(corrupt="not_json"),
        5: Behaviour(close_after=2),
        6: Behaviour(usage=False),
        7: Behaviour(max_tokens=0),
        8: Behaviour(corrupt="finish_abort"),
        9: Behaviour(http_fault="bad_chunk_size"),
    }
    records, got = run(
        bench(
            lambda i: faults.get(i, Behaviour()),
            n=12,
            timeouts=Timeouts(1.0),
            arrivals=Arrivals("concurrency", concurrency=1),
        )
    )
    assert len(records) == len(got) == 12
    by_error = Counter(r.error for r in records)
    assert by_error == Counter(
        {
            "": 4,
            "http_500": 1,
            "http_429": 1,
            "timeout": 1,
            "malformed": 1,
            "early_end": 1,
            "empty": 1,
            "aborted": 1,
            "protocol": 1,
        }
    )
    assert next(r.detail for r in records if r.error == "http_429").startswith("retry-after 7")
    assert all(r.detail.isprintable() for r in records)
    no_usage = [r for r in records if r.ok and r.tokens_source == "chunks"]
    assert len(no_usage) == 1 and no_usage[0].output_tokens == 8
    s = summarize_records(records)
    assert s["sent"] == s["succeeded"] + s["failed"] == 12
    assert s["output_tokens_from_usage"] is False


@pytest.mark.parametrize("corrupt", sorted(CORRUPTIONS))
def test_each_corruption_fails_one_request_only(corrupt: str) -> None:
    records, _ = run(bench(lambda i: Behaviour(corrupt=corrupt) if i == 2 else Behaviour(), n=4))
    assert Counter(r.ok for r in records) == Counter({True: 3, False: 1})
    bad = next(r for r in records if not r.ok)
    assert bad.error in ("malformed", "aborted") and bad.detail
    assert isinstance(bad.output_tokens, int)


@pytest.mark.parametrize("fault", HTTP_FAULTS)
def test_each_http_fault_fails_one_request_only(fault: str) -> None:
    records, _ = run(bench(lambda i: Behaviour(http_fault=fault) if i == 2 else Behaviour(), n=4))
    assert Counter(r.ok for r in records) == Counter({True: 3, False: 1})
    assert next(r for r in records if not r.ok).error in ("protocol", "malformed")


def test_phase_timeouts_name_the_phase() -> None:
    timeouts = Timeouts(5.0, first_byte_s=0.3, idle_s=0.3)
    cases = {1: Behaviour(never_answer=True), 2: Behaviour(stall_after_first_s=30.0)}
    records, _ = run(
        bench(
            lambda i: cases.get(i, Behaviour()), n=3, timeouts=timeouts, arrivals=Arrivals("concurrency", concurrency=1)
        )
    )
    assert [r.error for r in records] == ["first_byte_timeout", "idle_timeout", ""]
    assert all(r.end_s - r.sent_s < 1.0 for r in records)
    stalled = records[1]
    assert len(stalled.chunk_times_s) == 1 and not math.isnan(stalled.first_token_s)  # partial timings kept


def test_server_killed_mid_run_keeps_what_was_measured() -> None:
    async def scenario() -> tuple[list[RequestRecord], list[RequestRecord]]:
        got: list[RequestRecord] = []
        async with serve(lambda _: Behaviour(token_delay_s=0.02)) as server:
            cfg = BenchConfig(server.url, "tiny", Arrivals("concurrency", concurrency=2), "chat", Timeouts(5.0))
            task = asyncio.create_task(run_load(cfg, [Prompt("x", 1, 5)] * 40, got.append))
            while len(got) < 6:
                await asyncio.sleep(0.01)
            await server.stop()
            records = await task
        return records, got

    records, got = run(scenario())
    assert len(records) == len(got) == 40
    ok = [r for r in records if r.ok]
    assert len(ok) >= 6
    assert {r.error for r in records if not r.ok} <= {"connection", "early_end"}


def test_cancelled_in_flight_requests_are_recorded() -> None:
    async def scenario() -> list[RequestRecord]:
        got: list[RequestRecord] = []
        async with serve(lambda _: Behaviour(token_delay_s=0.05)) as server:
            cfg = BenchConfig(server.url, "tiny", Arrivals("concurrency", concurrency=3), "chat", Timeouts(5.0))
            task = asyncio.create_task(run_load(cfg, [Prompt("x", 1, 20)] * 30, got.append))
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        return got

    got = run(scenario())
    cancelled = [r for r in got if r.cancelled]
    assert len(cancelled) == 3  # one per stream, each with the chunks it had received
    assert all(r.chunk_times_s and r.first_token_s == r.chunk_times_s[0] for r in cancelled)
    s = summarize_records(got)
    assert s["sent"] == s["succeeded"] + s["failed"] + s["cancelled"] and s["cancelled"] == 3


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
    cfg = BenchConfig("http://127.0.0.1:9", "tiny", Arrivals("concurrency", concurrency=1), "chat", Timeouts(2.0))
    records = run(run_load(cfg, [Prompt("x", 1, 2)] * 2, lambda _: None))
    assert [r.error for r in records] == ["connection", "connection"]
    assert all(not math.isnan(r.end_s) for r in records)


@pytest.mark.parametrize("kwargs", [{"url": "ftp://x"}, {"url": "http://"}, {"endpoint": "embeddings"}])
def test_bad_config(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = {"url": "http://127.0.0.1:1", "model": "m", "arrivals": Arrivals("offline")}
    with pytest.raises(InputError):
        BenchConfig(**(base | kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs", [{"total_s": 0}, {"total_s": math.nan}, {"connect_s": -1}, {"idle_s": 1e9}])
def test_bad_timeouts(kwargs: dict[str, float]) -> None:
    with pytest.raises(InputError):
        Timeouts(**kwargs)
