"""The web server holds: bodies over the limit are refused unread (chunked too), every error is
JSON with its documented status (a bug too), booleans are not numbers, the API docs fetch
nothing, plans queue in a bounded pool (429 with Retry-After when full) and the health probe
answers within 100 ms at p99 while 50 plans run."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from inferplan.errors import InputError
from inferplan.present import web
from inferplan.present.web import MAX_BODY_BYTES, create_app
from inferplan.present.web_limits import BusyError, PlanPool
from tests.fuzzing import FIGURES

CHUNK = 64 * 1024
HUGE = 300 * 1024 * 1024


async def _call(app: Any, scope: dict[str, Any], chunks: Iterator[bytes]) -> tuple[int, bytes, int]:
    """Drive the ASGI app with a body streamed in chunks; (status, body, bytes it read)."""
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        chunk = next(chunks, None)
        if chunk is None:
            await asyncio.sleep(3600)  # a client that keeps the connection open
        assert chunk is not None
        read += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope, receive, send), timeout=30)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body, read


def _scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/plan",
        "raw_path": b"/api/plan",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8765),
    }


def test_a_chunked_body_over_the_limit_is_refused_unread() -> None:
    """300 MB sent without a Content-Length: refused with 413 after the limit, the rest never read."""
    chunks = (b"x" * CHUNK for _ in range(HUGE // CHUNK))
    status, body, read = asyncio.run(_call(create_app(), _scope([(b"transfer-encoding", b"chunked")]), chunks))
    assert status == 413 and "KiB" in json.loads(body)["error"]
    assert read <= MAX_BODY_BYTES + CHUNK  # 576 KiB of 300 MB


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    chunks = (b"x" * CHUNK for _ in range(HUGE // CHUNK))
    status, body, read = asyncio.run(_call(create_app(), _scope([(b"content-length", str(HUGE).encode())]), chunks))
    assert status == 413 and json.loads(body)["kind"] == "InputError"
    assert read == 0


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_app(), raise_server_exceptions=False)


@pytest.mark.parametrize(
    "raw", [b"{not json", b"", b"\xff\xfe{", b'{"model": "qwen3-0.6b", "isl": ' + b"9" * 5000 + b"}"]
)
def test_a_body_that_is_not_json_is_a_400(client: TestClient, raw: bytes) -> None:
    """docs/json.md: 400 for a body that is not JSON, with the JSON error shape."""
    answer = client.post("/api/plan", content=raw, headers={"content-type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert set(answer.json()) == {"error", "kind"} and "JSON" in answer.json()["error"]


NUMERIC_FIELDS = [
    "isl",
    "osl",
    "rate_per_s",
    "concurrency",
    "ttft_ms",
    "tpot_ms",
    "e2e_s",
    "min_output_tokens_per_s",
    "budget_usd_per_hour",
    "tp",
    "pp",
    "hours_fraction",
    "peak_to_mean",
    "top",
    "verify",
]


@pytest.mark.parametrize("field", NUMERIC_FIELDS)
@pytest.mark.parametrize("value", [True, False])
def test_booleans_are_not_numbers(client: TestClient, field: str, value: bool) -> None:
    body = {"model": "qwen3-0.6b", "gpus": ["l4"], "charts": False, field: value}
    answer = client.post("/api/plan", json=body)
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["error"]


def test_booleans_are_not_numbers_in_settings_and_queries(client: TestClient) -> None:
    for field, value in (("env_set", {"jitter_loss": True}), ("cost_set", {"pue": True}), ("charts", 1)):
        answer = client.post("/api/plan", json={"model": "qwen3-0.6b", "gpus": ["l4"], field: value})
        assert answer.status_code == 422 and field in answer.json()["error"], answer.text
    for limit in ("true", "1.5", "nan", "1e400", "9" * 400):
        answer = client.get("/api/models", params={"limit": limit})
        assert answer.status_code == 422 and "limit" in answer.json()["error"], (limit, answer.text)


def test_a_bug_answers_json_500_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app()

    @app.get("/api/broken")
    def broken() -> None:
        raise RuntimeError("a bug")

    with caplog.at_level("ERROR", logger="inferplan.web"):
        answer = TestClient(app, raise_server_exceptions=False).get("/api/broken")
    assert answer.status_code == 500 and answer.headers["content-type"] == "application/json"
    assert answer.json() == {
        "error": "internal error (RuntimeError); please report it with the request you sent",
        "kind": "InternalError",
    }
    assert "bug answering GET /api/broken" in caplog.text and "a bug" in caplog.text


def test_unknown_paths_and_methods_answer_json(client: TestClient) -> None:
    for method, path, status in (("GET", "/api/nope", 404), ("GET", "/api/plan", 405), ("DELETE", "/", 405)):
        answer = client.request(method, path)
        assert answer.status_code == status and answer.json()["kind"] == "HTTPError", answer.text


def test_api_docs_fetch_nothing(client: TestClient) -> None:
    page = client.get("/api/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "http://" not in page.text and "https://" not in page.text and "<script" not in page.text
    assert "/api/plan" in page.text and "PlanRequest" in page.text and "<code>isl</code>" in page.text
    assert "429" in page.text and "Retry-After" in page.text
    assert client.get("/api/openapi.json").json()["paths"]["/api/plan"]


def test_the_pool_refuses_past_its_queue_and_recovers() -> None:
    release = threading.Event()

    async def scenario() -> None:
        pool = PlanPool(workers=1, queue=1)
        first = asyncio.ensure_future(pool.run(lambda _: release.wait(10), None))
        second = asyncio.ensure_future(pool.run(lambda x: x, "queued"))
        await asyncio.sleep(0.05)
        assert pool.pending == 2
        with pytest.raises(BusyError) as info:
            await pool.run(lambda x: x, "refused")
        assert 1 <= info.value.retry_after_s <= 600
        release.set()
        assert await first is True and await second == "queued"
        assert pool.pending == 0
        assert await pool.run(lambda x: x, "again") == "again"
        pool.close()
        assert await pool.run(lambda x: x, "after a restart") == "after a restart"
        pool.close()

    asyncio.run(scenario())


def test_a_full_queue_answers_429_with_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    release, started = threading.Event(), threading.Event()

    def slow_plan(req: web.PlanRequest) -> web.PlanResponse:
        started.set()
        release.wait(10)
        raise InputError("stopped by the test")

    monkeypatch.setattr(web, "plan_response", slow_plan)
    client = TestClient(create_app(PlanPool(workers=1, queue=0)), raise_server_exceptions=False)
    body = {"model": "qwen3-0.6b", "gpus": ["l4"], "charts": False}
    with ThreadPoolExecutor(1) as runner:
        first = runner.submit(client.post, "/api/plan", json=body)
        assert started.wait(10)
        busy = client.post("/api/plan", json=body)
        assert client.get("/api/health").status_code == 200  # health never queues behind plans
        release.set()
        assert first.result(timeout=10).status_code == 422
    assert busy.status_code == 429
    assert int(busy.headers["retry-after"]) >= 1 and busy.json()["kind"] == "BusyError"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _server(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """``inferplan ui`` on 127.0.0.1 and a free port, stopped afterwards."""
    port = _free_port()
    log = (tmp_path / "ui.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from inferplan.cli import main; main()", "ui", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "ui.log").read_text()
            time.sleep(0.1)
        yield port, proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _post(port: int, body: dict[str, Any]) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("POST", "/api/plan", json.dumps(body), {"content-type": "application/json"})
        return conn.getresponse().status
    finally:
        conn.close()


def _health_s(port: int) -> float:
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/api/health")
        answer = conn.getresponse()
        answer.read()
        assert answer.status == 200
    finally:
        conn.close()
    return time.perf_counter() - start


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's RSS from /proc")
def test_a_real_server_refuses_a_chunked_300_mb_body_and_stays_small(tmp_path: Path) -> None:
    with _server(tmp_path) as (port, proc):
        rss_before = _rss_bytes(proc.pid)
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(
            b"POST /api/plan HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = f"{CHUNK:x}\r\n".encode() + b"x" * CHUNK + b"\r\n"
        sent, answer, started = 0, b"", time.monotonic()
        sock.setblocking(False)
        while sent < HUGE and time.monotonic() - started < 60:
            with contextlib.suppress(BlockingIOError):
                answer += sock.recv(65536)
            if answer:
                break
            try:
                sent += sock.send(chunk)
            except BlockingIOError:
                time.sleep(0.001)
            except OSError:  # the server closed the connection
                break
        sock.setblocking(True)
        sock.settimeout(10)
        with contextlib.suppress(OSError):
            answer += sock.recv(65536)
        sock.close()
        growth = _rss_bytes(proc.pid) - rss_before
        FIGURES["chunked 300 MB body"] = (
            f"413 after {sent / 2**20:.1f} MiB sent; server RSS grew {growth / 2**20:.1f} MiB"
        )
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert sent < 64 * 1024 * 1024, f"the server read {sent / 2**20:.0f} MiB before answering"
        assert growth < 64 * 1024 * 1024
        assert _health_s(port) < 5


@pytest.mark.slow
def test_health_answers_fast_while_50_plans_run(tmp_path: Path) -> None:
    """50 plans at once on a 2-worker pool: every plan is answered, and /api/health never queues
    behind them (measured from another process, as a load balancer would). The 100 ms p99 target
    is measured by benchmarks/bench_web_health.py: a timed unit test on a shared 2-core machine
    would be noise; this bound fails only when health waits for the plans (it did: 9.4 s)."""
    body = {"model": "llama-3.1-8b", "gpus": ["l40s", "h100-sxm"], "rate_per_s": 5, "charts": False, "verify": 0}
    with _server(tmp_path) as (port, _):
        assert _post(port, body) == 200  # warm: catalogs loaded
        with ThreadPoolExecutor(50) as clients:
            plans = [clients.submit(_post, port, body) for _ in range(50)]
            samples: list[float] = []
            deadline = time.monotonic() + 120
            while not all(p.done() for p in plans) and time.monotonic() < deadline:
                samples.append(_health_s(port))
                time.sleep(0.02)
            statuses = [p.result(timeout=120) for p in plans]
    assert statuses == [200] * 50
    assert len(samples) >= 50, f"only {len(samples)} health probes while the plans ran"
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(0.99 * len(samples)))]
    FIGURES["health p99 under 50 plans"] = (
        f"{p99 * 1e3:.1f} ms (p50 {samples[len(samples) // 2] * 1e3:.1f} ms, {len(samples)} probes)"
    )
    assert p99 < 1.0, f"health p99 {p99 * 1e3:.0f} ms while 50 plans ran: it waits for the plans"


def test_a_plan_with_missing_prices_answers_without_nan(client: TestClient) -> None:
    """Prices missing for b200: the JSON, the HTML fragments and the charts hold no NaN."""
    answer = client.post("/api/plan", json={"model": "mixtral-8x7b", "gpus": ["b200"], "verify": 0})
    assert answer.status_code == 200, answer.text
    assert not re.search(r"(?i)(?<![\w.])-?(nan|inf|infinity)(?!\w)", answer.text)
    assert answer.json()["charts"] and answer.json()["html"]["cost"]
