"""Sweeps to saturation against a server whose speed depends on its load (the local server's
batching model), the knee, the bisection, and the results database's schema migration."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from inferplan.bench.localserver import Batching, Behaviour
from inferplan.bench.store import ResultsStore
from inferplan.bench.sweep import SweepPoint, knee, meets_targets
from inferplan.cli import app
from inferplan.errors import ConfigError
from tests.benchserver import threaded_server

#: at most 4 streams, 10 ms + 2.5 ms per stream each step: 25 req/s of 8 tokens at saturation
BATCHING = Batching(max_running=4, step_s=0.01, step_per_running_s=0.0025)


@pytest.fixture(scope="module")
def batching_url() -> Iterator[str]:
    with threaded_server(lambda _: Behaviour(), batching=BATCHING) as server:
        yield server.url


def _sweep(url: str, db: Path, *extra: str) -> dict[str, object]:
    args = ["bench", "sweep", "--url", url, "--model", "m", "--isl", "4", "--osl", "8", "--db", str(db), "--json"]
    result = CliRunner().invoke(app, [*args, *extra])
    assert result.exit_code == 0, result.output
    payload: dict[str, object] = json.loads(result.stdout)
    return payload


def test_capacity_of_the_batching_model() -> None:
    assert BATCHING.step_time_s(4) == pytest.approx(0.02)
    assert BATCHING.capacity_per_s(8) == pytest.approx(25.0)


def test_sweep_from_one_at_a_time_to_saturation(batching_url: str, tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    sweep = _sweep(batching_url, db, "--num-requests", "24", "--points", "2")
    points = sweep["points"]
    assert isinstance(points, list)
    kinds = [p["kind"] for p in points]
    assert kinds == ["synchronous", "rate", "rate", "throughput"]  # ordered by the load offered
    sync, top = points[0], points[-1]
    # one stream: 8 steps of 12.5 ms a request; all at once: near the model's 25 req/s
    assert sync["achieved_per_s"] == pytest.approx(1 / (8 * BATCHING.step_time_s(1)), rel=0.3)
    assert top["achieved_per_s"] == pytest.approx(BATCHING.capacity_per_s(8), rel=0.3)
    rates = [p["offered_per_s"] for p in points[1:3]]
    assert sync["achieved_per_s"] < rates[0] < rates[1] < top["achieved_per_s"]
    assert top["ttft_p90_s"] > 5 * sync["ttft_p90_s"]  # 24 at once queue for 4 slots
    assert sweep["knee_run_id"] in [p["run_id"] for p in points] and sweep["status"] == "complete"
    store = ResultsStore(db)
    info = store.sweep(int(sweep["sweep_id"]))  # type: ignore[call-overload]
    assert sorted(info.run_ids) == sorted(p["run_id"] for p in points)
    assert info.status == "complete" and info.summary is not None
    assert info.summary["knee_run_id"] == sweep["knee_run_id"]
    for run_id in info.run_ids:
        run = store.run(run_id)
        s = run.summary or {}
        assert run.sweep_id == info.id and s["sent"] == s["succeeded"] + s["failed"] + s["cancelled"] == 24
    store.close()
    listed = CliRunner().invoke(app, ["runs", "--db", str(db)])
    assert listed.exit_code == 0 and f"sweep {info.id}" in listed.stdout


def test_bisection_for_the_highest_rate_meeting_the_targets(batching_url: str, tmp_path: Path) -> None:
    sweep = _sweep(
        batching_url, tmp_path / "r.db", "--num-requests", "30", "--find-max-rate", "--ttft", "40ms", "--tpot", "20ms"
    )
    points = sweep["points"]
    assert isinstance(points, list) and sweep["mode"] == "bisect"
    assert 3 <= len(points) <= 2 + 6  # the two ends, then at most --steps bisection runs
    met = [p for p in points if p["meets"]]
    missed = [p for p in points if p["meets"] is False]
    assert points[0]["meets"] and points[-1]["meets"] is False  # one at a time meets; all at once does not
    best = sweep["max_rate_meeting_targets_per_s"]
    assert best == max(p["offered_per_s"] or p["achieved_per_s"] for p in met)
    assert all(p["ttft_p90_s"] <= 0.040 and p["tpot_p90_s"] <= 0.020 for p in met)
    assert all(p["ttft_p90_s"] > 0.040 or p["tpot_p90_s"] > 0.020 for p in missed)


def test_find_max_rate_needs_a_target(tmp_path: Path) -> None:
    args = ["bench", "sweep", "--url", "http://127.0.0.1:9", "--model", "m", "--find-max-rate"]
    result = CliRunner().invoke(app, [*args, "--db", str(tmp_path / "r.db")])
    assert result.exit_code == 2 and "needs a target" in result.output


def _point(run_id: int, kind: str, rate: float | None, achieved: float, goodput: float) -> SweepPoint:
    return SweepPoint(run_id, kind, "complete", rate, achieved, goodput, {"ttft_p90_s": 0.1, "tpot_p90_s": 0.01})


def test_knee_is_the_least_load_near_the_most_goodput() -> None:
    points = [
        _point(1, "synchronous", None, 2.0, 2.0),
        _point(3, "rate", 4.0, 3.9, 3.9),
        _point(4, "rate", 6.0, 5.8, 5.7),
        _point(5, "rate", 8.0, 6.1, 5.9),  # within 95% of the best: the knee is the lighter load
        _point(2, "throughput", None, 6.2, 0.0),  # everything at once misses every target
    ]
    found = knee(points)
    assert found is not None and found.run_id == 4
    assert knee([_point(1, "synchronous", None, 0.0, 0.0)]) is None
    assert meets_targets(points[0], {"ttft_s": 0.2, "tpot_s": None}) is True
    assert meets_targets(points[0], {"ttft_s": 0.05}) is False
    assert meets_targets(points[0], {}) is None


V1_SCHEMA = """
CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, started_at TEXT NOT NULL,
  finished_at TEXT, status TEXT NOT NULL, url TEXT, model TEXT, config TEXT NOT NULL, machine TEXT NOT NULL,
  summary TEXT);
CREATE TABLE requests (run_id INTEGER NOT NULL REFERENCES runs(id), idx INTEGER NOT NULL, scheduled_s REAL,
  sent_s REAL, first_token_s REAL, end_s REAL, input_tokens INTEGER, output_tokens INTEGER, tokens_source TEXT,
  http_status INTEGER, error TEXT, detail TEXT, itl_s TEXT, PRIMARY KEY (run_id, idx));
CREATE TABLE telemetry (run_id INTEGER NOT NULL REFERENCES runs(id), t_s REAL NOT NULL, name TEXT NOT NULL, value REAL);
CREATE TABLE measurements (run_id INTEGER NOT NULL REFERENCES runs(id), name TEXT NOT NULL, value REAL NOT NULL,
  unit TEXT NOT NULL, params TEXT NOT NULL);
INSERT INTO runs (kind, started_at, status, config, machine, summary)
  VALUES ('serve', '2026-01-01T00:00:00+00:00', 'complete', '{}', '{}', '{"sent": 1}');
PRAGMA user_version = 1;
"""


def test_a_version_1_database_is_migrated_when_opened_for_writing(tmp_path: Path) -> None:
    db = tmp_path / "v1.db"
    con = sqlite3.connect(db)
    con.executescript(V1_SCHEMA)
    con.close()
    db.chmod(0o444)  # read-only first: it reads as having no sweeps, and nothing is changed
    reader = ResultsStore(db, writable=False)
    assert [(r.id, r.sweep_id) for r in reader.runs()] == [(1, None)]
    with pytest.raises(ConfigError, match="no sweep 1"):
        reader.sweep(1)
    reader.close()
    db.chmod(0o644)
    store = ResultsStore(db, writable=True)
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == 2
    sweep_id = store.start_sweep({"mode": "rates"}, "http://h", "m")
    store.add_to_sweep(1, sweep_id)
    assert store.run(1).sweep_id == sweep_id and store.run(1).summary == {"sent": 1}
    store.close()
    again = ResultsStore(db, writable=True)  # a second opening migrates nothing twice
    assert again.sweep(sweep_id).run_ids == [1]
    again.close()
