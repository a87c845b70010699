"""The client's self-check of every metric it reports, the warnings a run gives when its own
delays could distort a metric, and the local server's OpenAI stream formats (read by the
``openai`` client itself)."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from inferplan.bench.distortion import client_lags, distortion_warning
from inferplan.bench.localserver import Behaviour
from inferplan.bench.record import RequestRecord
from inferplan.bench.selfcheck import self_check_figures
from inferplan.bench.summary import summarize_records
from inferplan.cli import app
from tests.benchserver import threaded_server

openai = pytest.importorskip("openai", reason="install inferplan[dev]")


def _client(url: str):  # type: ignore[no-untyped-def]
    return openai.OpenAI(base_url=f"{url}/v1", api_key="local", max_retries=0, timeout=10.0)


def test_completions_stream_reads_with_the_openai_client() -> None:
    with threaded_server(lambda _: Behaviour()) as server:
        stream = _client(server.url).completions.create(
            model="tiny", prompt="one two three", max_tokens=4, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(stream)
    assert {c.object for c in chunks} == {"text_completion"}
    assert len({c.id for c in chunks}) == 1 and chunks[0].model == "tiny"
    text = [c.choices[0].text for c in chunks if c.choices]
    assert text == ["t0 ", "t1 ", "t2 ", "t3 "]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (3, 4)
    assert chunks[-1].usage.total_tokens == 7


def test_chat_stream_reads_with_the_openai_client() -> None:
    with threaded_server(lambda _: Behaviour()) as server:
        client = _client(server.url)
        stream = client.chat.completions.create(
            model="tiny",
            messages=[{"role": "user", "content": "hello"}],
            max_tokens=3,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        plain = list(client.chat.completions.create(model="tiny", messages=[], max_tokens=2, stream=True))
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.content == ""
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "t0 t1 t2 "
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert all(c.usage is None for c in plain)  # usage only when stream_options asks for it


def _record(client_delays: list[float], server_gap: float = 0.01) -> RequestRecord:
    """A request whose server sent chunks ``server_gap`` apart and whose client stamped each
    one ``client_delays[i]`` later; scheduled at 0, sent 1 ms late, read by the server at 2 ms."""
    server = [0.005 + i * server_gap for i in range(len(client_delays))]
    chunks = [s + d for s, d in zip(server, client_delays, strict=True)]
    return RequestRecord(
        0,
        0.0,
        0.001,
        chunks[0],
        chunks[-1] + 0.001,
        chunks,
        1,
        len(chunks),
        server_received_s=0.002,
        server_times_s=server,
    )


def test_self_check_figures_separate_client_from_server() -> None:
    fig = self_check_figures([_record([0.0005, 0.0005, 0.0035, 0.0005])])
    assert fig["ttft"]["server"]["p50"] == pytest.approx(0.004)  # written at 1 ms, first chunk sent at 5 ms
    assert fig["ttft"]["client"]["p50"] == pytest.approx(0.0015)  # sent 1 ms late, stamped 0.5 ms late
    assert fig["itl"]["server"]["max"] == pytest.approx(0.01)
    assert fig["itl"]["client"]["max"] == pytest.approx(0.003)  # the third chunk was stamped 3 ms late
    assert fig["itl"]["client"]["p50"] == pytest.approx(0.0)
    assert fig["tpot"]["client"]["p50"] == pytest.approx(0.0)  # first and last chunk equally late
    assert fig["e2e"]["client"]["p50"] == pytest.approx(0.0015)


def test_self_check_cli_reports_every_metric() -> None:
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "self-check",
            "--concurrency",
            "1,8",
            "--num-requests",
            "24",
            "--tokens",
            "4",
            "--token-delay",
            "5ms",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "TTFT" in result.output and "ITL" in result.output and "TPOT" in result.output
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "self-check",
            "--concurrency",
            "8",
            "--num-requests",
            "40",
            "--tokens",
            "4",
            "--token-delay",
            "5ms",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    (point,) = d["points"]
    assert point["succeeded"] == 40 and point["concurrency"] == 8
    figures = {(f["metric"], f["percentile"]): f for f in point["figures"]}
    assert set(figures) == {(m, q) for m in ("ttft", "itl", "tpot", "e2e") for q in ("p50", "p99", "max")}
    for f in figures.values():
        assert f["measured_s"] == pytest.approx(f["server_s"] + f["client_s"], abs=0.05)  # all finite
        assert abs(f["client_s"]) < 0.5
    assert figures[("itl", "p50")]["server_s"] == pytest.approx(0.005, abs=0.004)
    assert point["receive_delay_s"]["p50"] >= 0 and point["loop_lag_s"]["max"] is not None


def test_distortion_warning_names_the_metric_and_percentile() -> None:
    records = [_record([0.0005] * 8, server_gap=0.02) for _ in range(3)]
    for r in records:
        r.sent_s = r.scheduled_s  # sent on time
    summary = summarize_records(records)
    summary["client"] = client_lags([0.0001] * 99 + [0.004], records)
    assert distortion_warning(summary) is None  # 0.1 ms of lag against 20 ms gaps
    summary["client"] = client_lags([0.003] * 100, records)
    warning = distortion_warning(summary)
    assert warning is not None and "ITL p99" in warning and "TTFT p50" in warning
    assert "TPOT" not in warning  # 3 ms spread over 7 tokens is 2% of a 20 ms TPOT
    assert not math.isnan(summary["itl_s"]["p99"])
