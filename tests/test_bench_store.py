"""The results database, telemetry parsing, and the bench / runs CLI end to end."""

from __future__ import annotations

import csv
import json
import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from inferplan.bench.client import RequestRecord
from inferplan.bench.import_formats import import_result_file
from inferplan.bench.localserver import Behaviour
from inferplan.bench.store import ResultsStore
from inferplan.bench.telemetry import parse_prometheus
from inferplan.cli import app
from inferplan.errors import ConfigError
from tests.benchserver import threaded_server


@pytest.fixture
def server_url() -> Iterator[str]:
    with threaded_server(lambda i: Behaviour(status=500) if i % 7 == 0 else Behaviour(token_delay_s=0.002)) as server:
        yield server.url


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
    with pytest.raises(ConfigError, match="is a folder"):
        ResultsStore(tmp_path)
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
    (run_id,) = import_result_file(store, path)
    recs = store.records(run_id)
    assert [r.output_tokens for r in recs] == [3, 2]
    assert recs[0].chunk_times_s == pytest.approx([0.05, 0.06, 0.072])
    assert store.run(run_id).kind == "vllm-bench"
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ConfigError, match="not a result file of vllm bench serve"):
        import_result_file(store, bad)
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
    assert result.exit_code == 9, result.output  # some requests failed (every 7th is an HTTP 500)
    assert "request(s) failed" in result.stderr
    d = json.loads(result.stdout)
    assert [p["concurrency"] for p in d["points"]] == [2, 4]
    for point in d["points"]:
        s = point["summary"]
        assert s["sent"] == 14 and s["sent"] == s["succeeded"] + s["failed"] + s["cancelled"]
        assert set(s["failures"]) == {"http_500"} and point["status"] == "partial"
        assert point["telemetry"] is True and s["telemetry"]["samples"] >= 1
        assert s["storage"] == {"written": s["storage"]["written"], "spilled": 0, "lost": 0}
        assert s["client"]["loop_lag_s"]["p99"] is not None
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
    assert table.exit_code in (0, 9) and "succeeded" in table.output


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
    assert result.exit_code == 8  # nothing succeeded: the server could not be reached
    assert "could not be reached" in result.stderr
    point = json.loads(result.stdout)["points"][0]
    assert point["summary"]["failures"] == {"connection": 2} and point["status"] == "failed"
    assert ResultsStore(tmp_path / "r.db").runs()[0].status == "failed"


def test_runs_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["runs", "show", "5", "--db", str(tmp_path / "r.db")])
    assert result.exit_code == 2 and "no run 5" in result.stderr
    result = runner.invoke(app, ["runs", "import", str(tmp_path / "none.json"), "--db", str(tmp_path / "r.db")])
    assert result.exit_code == 2 and "cannot read" in result.stderr


def _db_with_runs(path: Path, runs: int = 2, requests: int = 60) -> None:
    store = ResultsStore(path)
    for _ in range(runs):
        run_id = store.start_run("serve", {"x": "y" * 200}, {}, "http://h", "m")
        for i in range(requests):
            store.add_request(run_id, record(i))
        store.finish_run(run_id, "complete", {"sent": requests})
    store.close()


def corrupt(db: Path) -> None:
    """A database with runs whose every b-tree page after the first has a damaged header."""
    _db_with_runs(db)
    size = db.stat().st_size
    with db.open("r+b") as fh:
        for page in range(1, size // 4096):
            fh.seek(page * 4096)
            fh.write(b"\x0d\xff\xff\xff\xff")


def test_values_of_the_wrong_type_are_stored_and_read_as_the_column_type(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    store = ResultsStore(db)
    run_id = store.start_run("serve", {}, {})
    bad = record(0)
    bad.output_tokens = "12"  # type: ignore[assignment]  # what an unchecked server once put here
    store.add_request(run_id, bad)
    store.close()
    con = sqlite3.connect(db)
    assert con.execute("SELECT typeof(output_tokens), typeof(input_tokens) FROM requests").fetchone() == (
        "integer",
        "integer",
    )
    # a row an older inferplan wrote with text in an INTEGER column still reads
    con.execute("INSERT INTO requests (run_id, idx, output_tokens, itl_s) VALUES (?, 1, 'abc', 'not json')", (run_id,))
    con.commit()
    con.close()
    again = ResultsStore(db, writable=False)
    recs = again.records(run_id)
    assert [r.output_tokens for r in recs] == [0, 0] and recs[1].chunk_times_s == []
    again.close()
    result = CliRunner().invoke(app, ["runs", "show", str(run_id), "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output


def test_corrupt_database_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    corrupt(db)
    with pytest.raises(ConfigError, match="corrupt"):
        ResultsStore(db, writable=True, check=True)


def test_spill_file_is_written_in_at_the_next_opening(tmp_path: Path) -> None:
    from inferplan.bench.writer import RecordWriter, spill_path

    db = tmp_path / "r.db"
    store = ResultsStore(db)
    run_id = store.start_run("serve", {}, {})
    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # another process holds the database longer than the writer waits
    writer = RecordWriter(db, run_id, lock_wait_s=0.3)
    for i in range(5):
        writer.add_request(record(i))
    writer.add_telemetry(0.5, {"running": 2.0})
    report = writer.close()
    assert (report.written, report.spilled, report.lost) == (0, 6, 0)
    assert report.spill_file == spill_path(db) and spill_path(db).exists()
    assert store.finish_run(run_id, "complete", {"sent": 5}, wait_s=0.3) == spill_path(db)
    store.close()
    locker.execute("COMMIT")
    locker.close()
    with spill_path(db).open("a") as fh:
        fh.write('{"kind": "request", "row": [1, 2]}\n{not json\n')  # a torn last line is skipped
    again = ResultsStore(db)
    assert again.recovered == 7 and not spill_path(db).exists()
    assert again.run(run_id).status == "complete" and again.run(run_id).num_requests == 5
    assert len(again.telemetry(run_id)) == 1
    again.close()


def test_api_key_and_headers_are_sent_never_stored_or_printed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "r.db"
    secret = "sk-test-0123456789abcdef"
    args = ["bench", "serve", "--model", "tiny", "--concurrency", "1", "--num-requests", "2", "--osl", "3"]
    with threaded_server(lambda _: Behaviour()) as server:
        result = CliRunner().invoke(
            app,
            [*args, "--url", f"{server.url}/v1/", "--api-key", secret, "--header", "X-Team: research", "--db", str(db)],
        )
        assert result.exit_code == 0, result.output
        path, headers = server.last_request
        assert path == "/v1/completions"  # not /v1/v1/completions
        assert headers["authorization"] == f"Bearer {secret}" and headers["x-team"] == "research"
        monkeypatch.setenv("OPENAI_API_KEY", secret + "-env")
        from_env = CliRunner().invoke(app, [*args, "--url", server.url, "--db", str(db), "--json"])
        assert from_env.exit_code == 0, from_env.output
        assert server.last_request[1]["authorization"] == f"Bearer {secret}-env"
    for out in (result.output, from_env.output):
        assert secret not in out
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("r.db"))
    assert secret.encode() not in stored and b"research" not in stored
    config = ResultsStore(db, writable=False).runs()[0].config
    assert config["headers"] == ["authorization", "x-team"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--header", "no colon"], "--header"),
        (["--header", "Bad Name: x"], "--header"),
        (["--api-key", " "], "--api-key"),
        (["--idle-timeout", "0s"], "must be positive"),
        (["--connect-timeout", "2h"], "--connect-timeout must be between"),
    ],
)
def test_client_options_refused_in_one_line(args: list[str], message: str, tmp_path: Path) -> None:
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
            *args,
            "--db",
            str(tmp_path / "r.db"),
        ],
    )
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("json_in_sqlite", [True, False])
def test_writer_stores_each_value_as_its_column_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, json_in_sqlite: bool
) -> None:
    from inferplan.bench import writer as writer_module

    if not json_in_sqlite:  # an SQLite built without its JSON functions: one row at a time
        monkeypatch.setattr(writer_module, "INSERT_REQUESTS_JSON", "SELECT no_such_function(?)")
    db = tmp_path / "r.db"
    store = ResultsStore(db)
    run_id = store.start_run("serve", {}, {})
    unsent = RequestRecord(7, 0.5)  # never sent: every time NaN
    writer = writer_module.RecordWriter(db, run_id)
    for rec in (record(0), record(1, "timeout"), unsent):
        writer.add_request(rec)
    report = writer.close()
    assert (report.written, report.spilled, report.lost) == (3, 0, 0)
    con = sqlite3.connect(db)
    types = con.execute(
        "SELECT typeof(idx), typeof(scheduled_s), typeof(sent_s), typeof(output_tokens), typeof(error), typeof(itl_s) "
        "FROM requests ORDER BY idx"
    ).fetchall()
    con.close()
    assert types[0] == ("integer", "real", "real", "integer", "text", "text")
    assert types[2][2] == "null"  # NaN is stored as NULL, never as text
    recs = store.records(run_id)
    assert recs[0].chunk_times_s == pytest.approx(record(0).chunk_times_s)
    assert [r.error for r in recs] == ["", "timeout", ""] and math.isnan(recs[2].sent_s)
    store.close()
