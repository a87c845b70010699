"""The benchmark client against real OpenAI-compatible servers started on 127.0.0.1 with a
tiny model built here (random weights, local tokenizer): transformers serve in every run."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from inferplan.bench.store import ResultsStore
from inferplan.cli import app
from tests.realserver.servers import transformers_serve
from tests.realserver.tiny_model import make_tiny_model

pytest.importorskip("transformers", reason="install inferplan[integration] (.ci/run does)")
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with transformers_serve(tiny_model, tmp_path_factory.mktemp("log") / "serve.log") as (url, _):
        yield url


def test_bench_against_transformers_serve(server: str, tiny_model: Path, tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "serve",
            "--url",
            server,
            "--model",
            str(tiny_model),
            "--endpoint",
            "chat",
            "--concurrency",
            "1,3",
            "--num-requests",
            "6",
            "--isl",
            "12",
            "--osl",
            "6",
            "--no-ignore-eos",
            "--warmup",
            "1",
            "--timeout",
            "60s",
            "--db",
            str(db),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    points = json.loads(result.stdout)["points"]
    store = ResultsStore(db)
    for point in points:
        s = point["summary"]
        assert s["sent"] == 6 and s["succeeded"] == 6, s
        assert s["output_tokens_from_usage"] is True  # the server's own counts, from its last chunk
        for rec in store.records(point["run_id"]):
            assert 1 <= rec.output_tokens <= 6
            # a chunk carries one token or, when the server runs behind, several; never zero
            assert 1 <= len(rec.chunk_times_s) <= rec.output_tokens
            assert rec.sent_s <= rec.first_token_s <= rec.end_s
    store.close()


def test_real_server_killed_mid_run_loses_nothing(tiny_model: Path, tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    with transformers_serve(tiny_model, tmp_path / "serve.log") as (url, proc):
        outcome: dict[str, object] = {}

        def run() -> None:
            outcome["result"] = CliRunner().invoke(
                app,
                [
                    "bench",
                    "serve",
                    "--url",
                    url,
                    "--model",
                    str(tiny_model),
                    "--endpoint",
                    "chat",
                    "--concurrency",
                    "2",
                    "--num-requests",
                    "40",
                    "--isl",
                    "8",
                    "--osl",
                    "30",
                    "--no-ignore-eos",
                    "--timeout",
                    "20s",
                    "--db",
                    str(db),
                    "--json",
                ],
            )

        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if db.exists():
                con = sqlite3.connect(db)
                try:
                    done = con.execute("SELECT COUNT(*) FROM requests WHERE error = ''").fetchone()[0]
                except sqlite3.OperationalError:
                    done = 0
                con.close()
                if done >= 3:
                    break
            time.sleep(0.2)
        proc.kill()
        worker.join(120)
    result = outcome["result"]
    assert result.exit_code == 9, result.output  # type: ignore[attr-defined]  # some requests failed
    point = json.loads(result.stdout)["points"][0]  # type: ignore[attr-defined]
    s = point["summary"]
    assert s["sent"] == s["succeeded"] + s["failed"] + s["cancelled"]
    assert s["succeeded"] >= 3 and s["failed"] >= 1 and point["status"] == "partial"
    assert set(s["failures"]) <= {"connection", "early_end", "timeout", "idle_timeout"}
    store = ResultsStore(db, writable=False)
    assert store.runs()[0].num_requests == s["sent"] and store.runs()[0].status == "partial"
    store.close()
