"""Writing a run's records off the event loop, so that nothing measured waits on SQLite and
nothing measured is lost when SQLite cannot take it.

:class:`RecordWriter` is a thread with its own connection: records and telemetry samples are
queued from the event loop (no I/O there) and committed in batches, one per ``FLUSH_S``. A locked or failing
database is retried with back-off for up to ``lock_wait_s``; a batch that still cannot be
written is appended to a JSON-lines *spill file* beside the database (``<db>.spill.jsonl``),
which the next writable opening of the database replays (:func:`replay_spill`).
"""

from __future__ import annotations

import json
import math
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inferplan.bench.record import RequestRecord

__all__ = [
    "BUSY_TIMEOUT_S",
    "REQUEST_COLUMNS",
    "RecordWriter",
    "WriterReport",
    "append_spill",
    "replay_spill",
    "request_row",
    "retrying",
    "spill_path",
]

BUSY_TIMEOUT_S = 2.0  # SQLite's own wait on a lock, per attempt
FLUSH_S = 0.2  # records reach the database within this of being measured
REQUEST_COLUMNS = (
    "idx",
    "scheduled_s",
    "sent_s",
    "first_token_s",
    "end_s",
    "input_tokens",
    "output_tokens",
    "tokens_source",
    "http_status",
    "error",
    "detail",
    "itl_s",
)
INSERT_REQUEST = (
    f"INSERT OR REPLACE INTO requests (run_id, {', '.join(REQUEST_COLUMNS)}) VALUES ({', '.join('?' * 13)})"
)
#: many requests in one statement, from one JSON array of rows: SQLite runs it in one step, so
#: the writer thread hands the interpreter lock back and forth once, not once per row
INSERT_REQUESTS_JSON = (
    f"INSERT OR REPLACE INTO requests (run_id, {', '.join(REQUEST_COLUMNS)}) SELECT "
    + ", ".join(f"json_extract(value, '$[{i}]')" for i in range(13))
    + " FROM json_each(?)"
)
INSERT_TELEMETRY = "INSERT INTO telemetry VALUES (?, ?, ?, ?)"
FINISH_RUN = "UPDATE runs SET status = ?, finished_at = ?, summary = ? WHERE id = ?"


def spill_path(db: Path) -> Path:
    return db.with_name(db.name + ".spill.jsonl")


def _real(x: object) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) else None


def _whole(x: object) -> int:
    return int(x) if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) else 0


def request_row(run_id: int, r: RequestRecord) -> tuple[object, ...]:
    """One request as a row, each value of its column's type (NULL for a time never reached)."""
    return (
        int(run_id),
        _whole(r.index),
        _real(r.scheduled_s),
        _real(r.sent_s),
        _real(r.first_token_s),
        _real(r.end_s),
        _whole(r.input_tokens),
        _whole(r.output_tokens),
        str(r.tokens_source)[:16],
        _whole(r.http_status),
        str(r.error)[:40],
        str(r.detail)[:400],
        json.dumps([g for g in (_real(x) for x in r.gaps_s()) if g is not None]),
    )


def retrying(action: Callable[[], None], wait_s: float) -> str | None:
    """Run ``action`` (one transaction) until it succeeds or ``wait_s`` has passed; None on
    success, else the last error."""
    end = time.monotonic() + wait_s
    pause = 0.05
    while True:
        try:
            action()
            return None
        except sqlite3.Error as exc:
            if time.monotonic() + pause > end:
                return f"{type(exc).__name__}: {exc}"
        time.sleep(pause)
        pause = min(pause * 2, 1.0)


def append_spill(path: Path, entries: Iterable[dict[str, Any]]) -> bool:
    try:
        with path.open("a", encoding="utf-8") as fh:
            fh.writelines(json.dumps(e) + "\n" for e in entries)
    except OSError:
        return False
    return True


def replay_spill(db: sqlite3.Connection, path: Path) -> int:
    """Write a spill file's entries into ``db`` (one transaction) and remove the file;
    lines that are not well-formed entries are skipped. Returns the entries written."""
    written = 0
    with db:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line)
                if entry.get("kind") == "request" and len(entry["row"]) == 13:
                    db.execute(INSERT_REQUEST, tuple(entry["row"]))
                elif entry.get("kind") == "telemetry":
                    db.execute(INSERT_TELEMETRY, tuple(entry["row"]))
                elif entry.get("kind") == "finish":
                    db.execute(FINISH_RUN, tuple(entry["row"]))
                else:
                    continue
            except (ValueError, TypeError, KeyError, AttributeError, sqlite3.InterfaceError):
                continue
            written += 1
    path.unlink()
    return written


@dataclass(frozen=True, slots=True)
class WriterReport:
    written: int
    spilled: int
    lost: int
    spill_file: Path | None
    error: str | None


class RecordWriter:
    """A thread that commits one run's records and telemetry in batches."""

    def __init__(self, db_path: Path, run_id: int, lock_wait_s: float = 60.0) -> None:
        self.db_path, self.run_id, self.lock_wait_s = db_path, run_id, lock_wait_s
        # requests as JSON text, made on the event loop one record at a time (a few microseconds
        # each), so that the writer never holds the interpreter lock long enough to be felt there
        self._queue: queue.SimpleQueue[tuple[str, Any] | None] = queue.SimpleQueue()
        self.written = self.spilled = self.lost = 0
        self.error: str | None = None
        self._thread = threading.Thread(target=self._main, name=f"inferplan-writer-{run_id}", daemon=True)
        self._thread.start()

    def add_request(self, rec: RequestRecord) -> None:
        self._queue.put(("request", json.dumps(request_row(self.run_id, rec))))

    def add_telemetry(self, t_s: float, values: dict[str, float]) -> None:
        for name, value in values.items():
            self._queue.put(("telemetry", (self.run_id, float(t_s), str(name), _real(value))))

    def close(self, timeout_s: float | None = None) -> WriterReport:
        """Write what is queued (waiting at most ``lock_wait_s`` plus a margin) and stop."""
        self._queue.put(None)
        self._thread.join(self.lock_wait_s + 30.0 if timeout_s is None else timeout_s)
        if self._thread.is_alive():  # still stuck: what it holds is counted as lost, never silently
            self.lost += self._queue.qsize()
        spill = spill_path(self.db_path)
        return WriterReport(self.written, self.spilled, self.lost, spill if self.spilled else None, self.error)

    def _main(self) -> None:
        try:
            db = sqlite3.connect(self.db_path, timeout=BUSY_TIMEOUT_S)
        except sqlite3.Error as exc:
            db, self.error = None, f"{type(exc).__name__}: {exc}"
        try:
            while True:
                batch, stop = self._next_batch()
                if batch:
                    self._write(db, batch)
                if stop:
                    return
        finally:
            if db is not None:
                db.close()

    def _next_batch(self) -> tuple[list[tuple[str, Any]], bool]:
        """What arrived in one flush interval: one commit, one hand-over of the interpreter
        lock per interval rather than per record, so the event loop is rarely held up."""
        item = self._queue.get()
        if item is not None:
            time.sleep(FLUSH_S)
        batch = []
        while item is not None:
            batch.append(item)
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, False
        return batch, True

    def _write(self, db: sqlite3.Connection | None, batch: list[tuple[str, Any]]) -> None:
        requests = [row for kind, row in batch if kind == "request"]
        rows = "[" + ",".join(requests) + "]"

        def transaction() -> None:
            assert db is not None
            with db:
                if requests:
                    try:
                        db.execute(INSERT_REQUESTS_JSON, (rows,))
                    except sqlite3.OperationalError as exc:
                        if "no such function" not in str(exc):  # an SQLite built without JSON
                            raise
                        db.executemany(INSERT_REQUEST, [tuple(json.loads(r)) for r in requests])
                db.executemany(INSERT_TELEMETRY, [row for kind, row in batch if kind == "telemetry"])

        # after one batch has waited its full time, later ones try once: closing stays bounded
        wait_s = self.lock_wait_s if self.error is None else 0.0
        error = retrying(transaction, wait_s) if db is not None else self.error
        if error is None:
            self.written += len(batch)
            return
        self.error = error
        entries = ({"kind": k, "row": json.loads(r) if k == "request" else list(r)} for k, r in batch)
        if append_spill(spill_path(self.db_path), entries):
            self.spilled += len(batch)
        else:
            self.lost += len(batch)
