"""The results database, telemetry parsing, and the bench / runs CLI end to end."""

from __future__ import annotations

import asyncio
import csv
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from inferplan.bench.client import RequestRecord
from inferplan.bench.localserver import Behaviour, LocalServer
from inferplan.bench.store import ResultsStore
from inferplan.bench.telemetry import parse_prometheus
from inferplan.cli import app
from inferplan.errors import ConfigError


@pytest.fixture
def server_url() -> Iterator[str]:
    """inferplan's local server on 127.0.0.1 in a thread of its own (the CLI runs its own loop)."""
    ready = threading.Event()
    state: dict[str, object] = {}

    def main() -> None:
        async def run() -> None:
            server = LocalServer(lambda i: Behaviour(status=500) if i % 7 == 0 else Behaviour(token_delay_s=0.002))
            await server.start()
            state["url"], state["stop"] = server.url, asyncio.Event()
            ready.set()
            await state["stop"].wait()  # type: ignore[attr-defined]
            await server.stop()

        loop = asyncio.new_event_loop()
        state["loop"] = loop
        loop.run_until_complete(run())
        loop.close()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield str(state["url"])
    loop: asyncio.AbstractEventLoop = state["loop"]  # type: ignore[assignment]
    loop.call_soon_threadsafe(state["stop"].set)  # type: ignore[attr-defined]
    thread.join(10)


def record(i: int, error: str = "") -> RequestRecord:
    return RequestRecord(
        i,
        0.1 * i,
        0.1 * i,
        0.1 * i + 0.05,
        0.1 * i + 0.2,
        [0.1 * i + 0.05, 0.1 * i + 0.1, 0.1 * i + 0.2],
        10,
        3,
        "usage",
        200,
        error,
    )


def test_store_round_trip(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "r.db")
    run_id = store.start_run("serve", {"rate": 1}, {"host": "x"}, "http://h", "m")
    for i in range(3):
        store.add_request(run_id, record(i, "" if i else "timeout"))
    store.add_telemetry(run_id, 0.5, {"running": 2.0, "kv_usage": 0.1})
    store.finish_run(run_id, "complete", {"sent": 3})
    store.close()
    again = ResultsStore(tmp_path / "r.db")
    info = again.run(run_id)
    assert info.status == "complete" and info.num_requests == 3 and info.summary == {"sent": 3}
    recs = again.records(run_id)
    assert [r.error for r in recs] == ["timeout", "", ""]
    assert recs[1].chunk_times_s == pytest.approx([0.15, 0.2, 0.3])
    assert len(again.telemetry(run_id)) == 2
    exported = again.export_json(run_id)
    assert exported["schema"] == "inferplan.run/1" and len(exported["requests"]) == 3
    again.export_csv(run_id, tmp_path / "r.csv")
    rows = list(csv.DictReader((tmp_path / "r.csv").read_text().splitlines()))
    assert len(rows) == 3 and json.loads(rows[2]["itl_s"]) == pytest.approx([0.05, 0.1])
    with pytest.raises(ConfigError, match="no run 99"):
        again.run(99)
    again.close()


def test_each_request_is_committed_at_once(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "r.db")
    run_id = store.start_run("serve", {}, {})
    store.add_request(run_id, record(0))
    # another connection sees it before the run finishes: a crash now would lose nothing
    other = sqlite3.connect(tmp_path / "r.db")
    assert other.execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 1
    other.close()
    store.close()


def test_newer_schema_and_garbage_are_refused(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    con = sqlite3.connect(db)
    con.execute("PRAGMA user_version = 99")
    con.commit()
    con.close()
    with pytest.raises(ConfigError, match="newer than this"):
        ResultsStore(db)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError, match="not a usable results database"):
        ResultsStore(junk)


def test_import_vllm_bench_result(tmp_path: Path) -> None:
    path = tmp_path / "vllm.json"
    path.write_text(
        json.dumps(
            {
                "backend": "vllm",
                "model_id": "meta-llama/Llama-3.1-8B",
                "num_prompts": 2,
                "request_rate": 4.0,
                "duration": 3.2,
                "completed": 2,
                "ttfts": [0.05, 0.07],
                "itls": [[0.01, 0.012], [0.011]],
                "input_lens": [100, 120],
                "output_lens": [3, 2],
                "errors": ["", ""],
                "mean_ttft_ms": 60.0,
            }
        )
    )
    store = ResultsStore(tmp_path / "r.db")
    run_id = store.import_vllm_result(path)
    recs = store.records(run_id)
    assert [r.output_tokens for r in recs] == [3, 2]
    assert recs[0].chunk_times_s == pytest.approx([0.05, 0.06, 0.072])
    assert store.run(run_id).kind == "vllm-bench"
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ConfigError, match="not a 'vllm bench serve --save-result' file"):
        store.import_vllm_result(bad)
    store.close()


def test_prometheus_parsing() -> None:
    text = (
        '# HELP x\nvllm:num_requests_running{model_name="m"} 3\nvllm:num_requests_waiting{model_name="m"} 1\n'
        'vllm:kv_cache_usage_perc{model_name="m"} 0.25\nother_metric 7\nsglang:num_queue_reqs 2\n'
    )
    assert parse_prometheus(text) == {"running": 3.0, "waiting": 3.0, "kv_usage": 0.25}


def test_bench_serve_cli_sweep_and_runs(server_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    db = tmp_path / "results.db"
    result = runner.invoke(
        app,
        [
            "bench",
            "serve",
            "--url",
            server_url,
            "--model",
            "tiny",
            "--concurrency",
            "2,4",
            "--num-requests",
            "14",
            "--isl",
            "16",
            "--osl",
            "5",
            "--warmup",
            "2",
            "--db",
            str(db),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert [p["concurrency"] for p in d["points"]] == [2, 4]
    for point in d["points"]:
        s = point["summary"]
        assert s["sent"] == 14 and s["sent"] == s["succeeded"] + s["failed"]
        assert set(s["failures"]) <= {"http_500"}
        assert point["telemetry"] is True
    listing = json.loads(runner.invoke(app, ["runs", "--db", str(db), "--json"]).stdout)
    assert [r["num_requests"] for r in listing["runs"]] == [14, 14]
    run_id = str(listing["runs"][0]["id"])
    show = runner.invoke(app, ["runs", "show", run_id, "--db", str(db)])
    assert show.exit_code == 0 and "TTFT" in show.output
    out = tmp_path / "run.csv"
    assert (
        runner.invoke(app, ["runs", "export", run_id, "--format", "csv", "-o", str(out), "--db", str(db)]).exit_code
        == 0
    )
    assert len(list(csv.DictReader(out.read_text().splitlines()))) == 14
    store = ResultsStore(db)
    assert store.telemetry(int(run_id))
    store.close()
    table = runner.invoke(
        app,
        [
            "bench",
            "serve",
            "--url",
            server_url,
            "--model",
            "tiny",
            "--rate",
            "50",
            "--num-requests",
            "10",
            "--osl",
            "4",
            "--db",
            str(db),
        ],
    )
    assert table.exit_code == 0 and "succeeded" in table.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "1", "--concurrency", "2"], "exactly one"),
        (["--rate", "fast"], "numbers separated by commas"),
        (["--rate", "-1"], "must be positive"),
        (["--concurrency", "2", "--endpoint", "embed"], "--endpoint"),
        (["--concurrency", "2", "--timeout", "soon"], "cannot read duration"),
    ],
)
def test_bench_serve_bad_input(args: list[str], message: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["bench", "serve", "--url", "http://127.0.0.1:9", "--model", "m", *args, "--db", str(tmp_path / "r.db")]
    )
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output


def test_bench_serve_unreachable_server_records_failures(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "serve",
            "--url",
            "http://127.0.0.1:9",
            "--model",
            "m",
            "--concurrency",
            "1",
            "--num-requests",
            "2",
            "--db",
            str(tmp_path / "r.db"),
            "--json",
        ],
    )
    assert result.exit_code == 0
    s = json.loads(result.stdout)["points"][0]["summary"]
    assert s["failures"] == {"connection": 2}


def test_self_check_small(tmp_path: Path) -> None:
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
    assert d["succeeded"] == 40 and 0 <= d["client_ttft_p50_s"] < 0.5


def test_runs_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["runs", "show", "5", "--db", str(tmp_path / "r.db")])
    assert result.exit_code == 2 and "no run 5" in result.stderr
    result = runner.invoke(app, ["runs", "import", str(tmp_path / "none.json"), "--db", str(tmp_path / "r.db")])
    assert result.exit_code == 2 and "cannot read" in result.stderr
