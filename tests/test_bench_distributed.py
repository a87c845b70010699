"""Load from several processes: the schedule split over Ray workers, their records streamed to
the one results database, a worker that dies reported with its records kept. The Ray tests
start one local Ray instance on 127.0.0.1 (two CPUs, no dashboard, bounded memory) for the
module; they are slow only for Ray's start-up (~10-25 s)."""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from inferplan.bench.client import BenchConfig, schedule
from inferplan.bench.distributed import run_bound_s, split_load
from inferplan.bench.record import Prompt
from inferplan.bench.store import ResultsStore
from inferplan.cli import app
from inferplan.errors import InputError
from inferplan.perf.workload import Arrivals
from tests.benchserver import process_server

PROMPTS = [Prompt(f"p{i}", 4, 8) for i in range(10)]


def test_open_loop_schedule_is_split_round_robin_at_its_own_times() -> None:
    cfg = BenchConfig("http://127.0.0.1:1", "m", Arrivals("poisson", rate_per_s=5.0), seed=3, max_concurrency=5)
    one = schedule(cfg, len(PROMPTS))
    shares = split_load(cfg, PROMPTS, 3)
    assert [len(s.records) for s in shares] == [4, 3, 3]
    merged = sorted((r for s in shares for r in s.records), key=lambda r: r.index)
    assert [r.index for r in merged] == list(range(10))
    assert [r.scheduled_s for r in merged] == [r.scheduled_s for r in one]  # the one schedule, exactly
    assert [p.text for p in shares[1].prompts] == ["p1", "p4", "p7"]
    assert [s.cfg.max_concurrency for s in shares] == [2, 2, 1]  # the cap split too
    assert all(s.cfg.arrivals == cfg.arrivals for s in shares)


def test_concurrency_is_split_into_streams() -> None:
    cfg = BenchConfig("http://127.0.0.1:1", "m", Arrivals("concurrency", concurrency=5))
    shares = split_load(cfg, PROMPTS, 2)
    assert [s.cfg.arrivals.concurrency for s in shares] == [3, 2]
    assert sum(len(s.prompts) for s in shares) == 10
    assert len(split_load(replace_conc(cfg, 1), PROMPTS, 4)) == 1  # one stream: one worker
    assert len(split_load(cfg, PROMPTS[:2], 4)) == 2  # two requests: two workers
    with pytest.raises(InputError, match="--workers"):
        split_load(cfg, PROMPTS, 0)


def replace_conc(cfg: BenchConfig, c: int) -> BenchConfig:
    from dataclasses import replace

    return replace(cfg, arrivals=Arrivals("concurrency", concurrency=c))


def test_each_share_has_a_bound() -> None:
    cfg = BenchConfig("http://127.0.0.1:1", "m", Arrivals("concurrency", concurrency=2))
    share = split_load(cfg, PROMPTS, 1)[0]
    assert run_bound_s(share) == pytest.approx(5 * 120.0)  # 10 requests, 2 streams, 120 s each at most
    timed = split_load(BenchConfig(cfg.url, "m", cfg.arrivals, duration_s=30.0), PROMPTS, 1)[0]
    assert run_bound_s(timed) == pytest.approx(150.0)


def test_workers_need_ray(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["bench", "serve", "--url", "http://127.0.0.1:9", "--model", "m", "--rate", "1", "--workers", "2"],
    )
    assert result.exit_code == 2 and "--workers needs --ray" in result.output


# -- against a local Ray instance ---------------------------------------------------------------


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    ray = pytest.importorskip("ray", reason="the distributed tests need Ray (inferplan[distributed])")
    import ray._private.ray_constants as constants

    saved = constants.ENABLE_RAY_CLUSTER
    constants.ENABLE_RAY_CLUSTER = False  # Ray's node address on the loopback interface: 127.0.0.1 only
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        object_store_memory=100 << 20,
    )
    try:
        assert ray.nodes()[0]["NodeManagerAddress"] == "127.0.0.1"
        yield ray
    finally:
        ray.shutdown()
        constants.ENABLE_RAY_CLUSTER = saved


def _serve(url: str, db: Path, *extra: str) -> dict[str, Any]:
    args = ["bench", "serve", "--url", url, "--model", "m", "--isl", "8", "--osl", "8"]
    result = CliRunner().invoke(app, [*args, "--db", str(db), "--json", *extra])
    assert result.exit_code in (0, 9), result.output
    return {"exit": result.exit_code, **json.loads(result.stdout)["points"][0]}


@pytest.mark.slow
def test_two_workers_send_the_schedule_and_match_one_process(local_ray: Any, tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    with process_server(0.01, "--ttft-delay", "0.05") as (url, _):
        spread = _serve(url, db, "--rate", "20", "--num-requests", "60", "--ray", "local", "--workers", "2")
        alone = _serve(url, db, "--rate", "20", "--num-requests", "60")
    s, one = spread["summary"], alone["summary"]
    assert spread["exit"] == 0 and spread["status"] == "complete"
    assert s["sent"] == s["succeeded"] + s["failed"] + s["cancelled"] == 60
    workers = s["workers"]
    assert [(w["assigned"], w["reported"], w["status"]) for w in workers] == [(30, 30, "finished")] * 2
    store = ResultsStore(db)
    records = store.records(spread["run_id"])
    assert sorted(r.index for r in records) == list(range(60))  # every request stored once, by its global index
    info = store.run(spread["run_id"])
    assert info.machine["server"]["engine"] == "inferplan-local"
    store.close()
    # the same schedule from two processes measures what one process measures (server: 50 ms
    # to the first token, 10 ms between tokens); medians within 20% or 5 ms
    for key in ("ttft_s", "tpot_s", "itl_s"):
        a, b = s[key]["p50"], one[key]["p50"]
        assert math.isclose(a, b, rel_tol=0.2, abs_tol=0.005), (key, a, b)
    assert s["request_throughput_per_s"] == pytest.approx(one["request_throughput_per_s"], rel=0.25)


@pytest.mark.slow
def test_a_worker_that_dies_is_reported_and_its_records_kept(local_ray: Any, tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    outcome: dict[str, Any] = {}
    with process_server(0.02) as (url, _):
        args = ["--rate", "10", "--num-requests", "80", "--ray", "local", "--workers", "2"]
        thread = threading.Thread(target=lambda: outcome.update(_serve(url, db, *args)))
        thread.start()
        try:
            _kill_worker_after(local_ray, db, stored=5)
        finally:  # never leave the run's thread to outlive this test
            thread.join(180)
    assert not thread.is_alive()
    s = outcome["summary"]
    assert outcome["exit"] == 9 and outcome["status"] == "partial"
    died = [w for w in s["workers"] if w["status"] == "died"]
    assert len(died) == 1 and died[0]["worker"] == 1 and "Actor" in died[0]["error"]
    assert 0 < died[0]["reported"] < died[0]["assigned"] == 40
    assert s["sent"] == s["succeeded"] + s["failed"] + s["cancelled"] == sum(w["reported"] for w in s["workers"])
    store = ResultsStore(db)
    assert len(store.records(outcome["run_id"])) == s["sent"]  # the dead worker's finished records are kept
    store.close()


def _kill_worker_after(ray: Any, db: Path, stored: int) -> None:
    """Kill this process's newest worker 1 once it is running and ``stored`` requests are in the
    database (polled together: on a loaded machine either can come first)."""
    prefix = f"inferplan-load-{os.getpid()}-"
    end = time.monotonic() + 120
    while time.monotonic() < end:
        names = [n for n in ray.util.list_named_actors() if n.startswith(prefix) and n.endswith("-w1")]
        count = _stored_requests(db)
        if names and count >= stored:
            newest = max(names, key=lambda n: int(n.removeprefix(prefix).split("-")[0]))
            ray.kill(ray.get_actor(newest))
            return
        time.sleep(0.05)
    raise AssertionError(f"worker 1 was not running with {stored} requests stored within 120 s")


def _stored_requests(db: Path) -> int:
    """Requests in the database so far; 0 before the run has made it or its tables (the file
    exists a moment before its schema does)."""
    if not db.exists():
        return 0
    conn = sqlite3.connect(db, timeout=5)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0])
    except sqlite3.OperationalError:  # no table yet, or locked by the writer: ask again
        return 0
    finally:
        conn.close()


@pytest.mark.slow
def test_an_interrupted_distributed_run_keeps_what_was_in_flight(local_ray: Any, tmp_path: Path) -> None:
    """Ctrl-C (the run's task cancelled): the workers cancel their requests in flight and hand
    them over; they are stored as cancelled and the run as interrupted."""
    import asyncio

    from inferplan.bench.distributed import RaySender
    from inferplan.bench.serve import Point, ServeSpec, run_point

    store = ResultsStore(tmp_path / "r.db")
    sender = RaySender(2)
    with process_server(0.05) as (url, _):
        spec = ServeSpec(url, "m", concurrencies=(4,), isl=4, osl=40, num_requests=40)

        async def interrupt() -> None:
            task = asyncio.create_task(run_point(spec, store, spec.points()[0], None, Point(sender)))
            while not store.runs() or store.run(store.runs()[-1].id).num_requests < 2:
                await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(asyncio.wait_for(interrupt(), 120))
        sender.close()
    info = store.runs()[-1]
    records = store.records(info.id)
    cancelled = [r for r in records if r.cancelled]
    assert info.status == "interrupted" and cancelled and len(records) < 40
    assert all(r.ok or r.cancelled for r in records)
    assert {w["status"] for w in (info.summary or {})["workers"]} == {"stopped"}
    store.close()
