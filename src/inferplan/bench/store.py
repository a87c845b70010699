"""The results database: every run and every request in SQLite, written as it happens, so
a crash or Ctrl-C loses nothing already measured.

Schema version 2 (``PRAGMA user_version``): ``runs`` (one benchmark run or import; ``sweep_id``
when it is a point of a sweep), ``sweeps`` (one ``bench sweep``: its settings and its knee),
``requests`` (one row per request, inter-token gaps as JSON), ``telemetry`` (server
metrics sampled during a run), ``measurements`` (micro-benchmark figures). A version-1
database gets the ``sweeps`` table and the ``sweep_id`` column when next opened for writing
(:data:`~inferplan.bench.database.MIGRATIONS`); opened read-only, it reads as having no sweeps.

Opening (:mod:`inferplan.bench.database`) refuses a corrupt database and opens one that
cannot be written read-only: it can be listed, shown and exported, and every write is
refused with a one-line error. Writes wait out a locked database (``LOCK_WAIT_S``); rows
written by older versions with values of the wrong type are read back as the column's type.
"""

from __future__ import annotations

import csv
import json
import math
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from inferplan.bench.database import (
    LOCK_WAIT_S,
    READ_ONLY,
    SCHEMA_VERSION,
    default_db_path,
    has_column,
    open_database,
    refusal,
)
from inferplan.bench.imported import Imported
from inferplan.bench.record import RequestRecord
from inferplan.bench.writer import (
    FINISH_RUN,
    INSERT_REQUEST,
    REQUEST_COLUMNS,
    append_spill,
    request_row,
    retrying,
    spill_path,
)
from inferplan.errors import ConfigError

__all__ = ["REQUEST_COLUMNS", "SCHEMA_VERSION", "ResultsStore", "RunInfo", "SweepInfo", "default_db_path"]

T = TypeVar("T")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _float(x: object) -> float:
    """A stored time as a float (NaN when absent or not a number)."""
    if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x):
        return float(x)
    return float("nan")


def _int(x: object) -> int:
    """A stored count as an int (0 when absent or not a whole number, e.g. text from old rows)."""
    if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x):
        return int(x)
    return int(x) if isinstance(x, str) and x.strip().isdigit() and len(x) < 19 else 0


def _json(text: object, default: T) -> Any:
    try:
        return json.loads(text) if isinstance(text, str | bytes) else default
    except (ValueError, RecursionError):
        return default


@dataclass(frozen=True, slots=True)
class RunInfo:
    id: int
    kind: str
    started_at: str
    finished_at: str | None
    status: str
    url: str | None
    model: str | None
    config: dict[str, Any]
    machine: dict[str, Any]
    summary: dict[str, Any] | None
    num_requests: int
    sweep_id: int | None = None

    @property
    def traffic(self) -> dict[str, Any] | None:
        """The shaped traffic the run sent (multi-turn sessions, shared prompts, adapters; what
        :meth:`inferplan.bench.multiturn.SessionTraffic.stored` kept), or None."""
        found = self.config.get("traffic") if isinstance(self.config, dict) else None
        return found if isinstance(found, dict) else None


@dataclass(frozen=True, slots=True)
class SweepInfo:
    id: int
    started_at: str
    finished_at: str | None
    status: str
    url: str | None
    model: str | None
    config: dict[str, Any]
    summary: dict[str, Any] | None
    run_ids: list[int]


_RUN_COLUMNS = "r.id, r.kind, r.started_at, r.finished_at, r.status, r.url, r.model, r.config, r.machine, r.summary"
_COUNT = "(SELECT COUNT(*) FROM requests q WHERE q.run_id = r.id)"


class ResultsStore:
    """``writable``: True must write (else refused), False reads only, None writes where it can."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        writable: bool | None = None,
        check: bool = False,
        lock_wait_s: float = LOCK_WAIT_S,
    ) -> None:
        self.path = path or default_db_path()
        self.lock_wait_s = lock_wait_s  # how long a write waits out another process's lock
        opened = open_database(self.path, writable, check)
        self.db, self.read_only = opened.db, opened.read_only
        self.recovered = opened.recovered  # spill-file entries written in at opening
        self._sweeps = self._read(lambda: has_column(self.db, "runs", "sweep_id"))  # False: a version-1 file

    def _refuse(self, what: str, exc: BaseException | None = None) -> ConfigError:
        return refusal(self.path, what, exc)

    def require_writable(self) -> None:
        if self.read_only:
            raise self._refuse(READ_ONLY)

    def _read(self, action: Callable[[], T]) -> T:
        try:
            return action()
        except sqlite3.Error as exc:
            raise self._refuse("cannot read the results database", exc) from exc

    def _write(self, action: Callable[[], object], wait_s: float | None = None) -> None:
        self.require_writable()

        def transaction() -> None:
            with self.db:
                action()

        error = retrying(transaction, self.lock_wait_s if wait_s is None else wait_s)
        if error is not None:
            raise self._refuse("cannot write the results database", Exception(error))

    def close(self) -> None:
        self.db.close()

    # -- writing ---------------------------------------------------------------------------
    def start_run(
        self,
        kind: str,
        config: dict[str, Any],
        machine: dict[str, Any],
        url: str | None = None,
        model: str | None = None,
    ) -> int:
        ids: list[int] = []
        row = (kind, _now(), "running", url, model, json.dumps(config), json.dumps(machine))

        def insert() -> None:
            cur = self.db.execute(
                "INSERT INTO runs (kind, started_at, status, url, model, config, machine) VALUES (?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            ids.append(int(cur.lastrowid or 0))

        self._write(insert)
        return ids[-1]

    def add_request(self, run_id: int, r: RequestRecord) -> None:
        self._write(lambda: self.db.execute(INSERT_REQUEST, request_row(run_id, r)))

    def add_telemetry(self, run_id: int, t_s: float, values: dict[str, float]) -> None:
        rows = [(run_id, t_s, k, v if math.isfinite(v) else None) for k, v in values.items()]
        self._write(lambda: self.db.executemany("INSERT INTO telemetry VALUES (?, ?, ?, ?)", rows))

    def add_measurement(self, run_id: int, name: str, value: float, unit: str, params: dict[str, Any]) -> None:
        row = (run_id, name, value, unit, json.dumps(params))
        self._write(lambda: self.db.execute("INSERT INTO measurements VALUES (?, ?, ?, ?, ?)", row))

    def finish_run(
        self, run_id: int, status: str, summary: dict[str, Any] | None, wait_s: float | None = None
    ) -> Path | None:
        """Set the run's final status; when the database cannot take it in ``wait_s``, the
        update goes to the spill file, whose path is returned (None when written)."""
        row = [status, _now(), json.dumps(summary) if summary is not None else None, run_id]
        try:
            self._write(lambda: self.db.execute(FINISH_RUN, row), wait_s)
        except ConfigError:
            spill = spill_path(self.path)
            if self.read_only or not append_spill(spill, [{"kind": "finish", "row": row}]):
                raise
            return spill
        return None

    def start_sweep(self, config: dict[str, Any], url: str | None, model: str | None) -> int:
        ids: list[int] = []
        row = (_now(), "running", url, model, json.dumps(config))

        def insert() -> None:
            sql = "INSERT INTO sweeps (started_at, status, url, model, config) VALUES (?, ?, ?, ?, ?)"
            ids.append(int(self.db.execute(sql, row).lastrowid or 0))

        self._write(insert)
        return ids[-1]

    def add_to_sweep(self, run_id: int, sweep_id: int) -> None:
        self._write(lambda: self.db.execute("UPDATE runs SET sweep_id = ? WHERE id = ?", (sweep_id, run_id)))

    def finish_sweep(self, sweep_id: int, status: str, summary: dict[str, Any]) -> None:
        row = (status, _now(), json.dumps(_finite(summary)), sweep_id)
        sql = "UPDATE sweeps SET status = ?, finished_at = ?, summary = ? WHERE id = ?"
        self._write(lambda: self.db.execute(sql, row))

    # -- reading ---------------------------------------------------------------------------
    def sweep(self, sweep_id: int) -> SweepInfo:
        def read() -> tuple[Any, list[Any]]:
            if not self._sweeps:  # a version-1 file: no sweeps
                return None, []
            row = self.db.execute("SELECT * FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
            runs = self.db.execute("SELECT id FROM runs WHERE sweep_id = ? ORDER BY id", (sweep_id,)).fetchall()
            return row, runs if row else []

        row, runs = self._read(read)
        if row is None:
            raise ConfigError(f"no sweep {sweep_id} in {self.path}; 'inferplan runs' lists the sweeps beside the runs")
        config, summary = _json(row[6], None), _json(row[7], None)
        return SweepInfo(
            _int(row[0]),
            str(row[1]),
            None if row[2] is None else str(row[2]),
            str(row[3]),
            None if row[4] is None else str(row[4]),
            None if row[5] is None else str(row[5]),
            config if isinstance(config, dict) else {},
            summary if isinstance(summary, dict) else None,
            [_int(r[0]) for r in runs],
        )

    def _select_runs(self, where: str) -> str:
        sweep = "r.sweep_id" if self._sweeps else "NULL"
        return f"SELECT {_RUN_COLUMNS}, {_COUNT}, {sweep} FROM runs r {where} ORDER BY r.id"

    def runs(self) -> list[RunInfo]:
        rows = self._read(lambda: self.db.execute(self._select_runs("")).fetchall())
        return [self._info(row) for row in rows]

    def run(self, run_id: int) -> RunInfo:
        row = self._read(lambda: self.db.execute(self._select_runs("WHERE r.id = ?"), (run_id,)).fetchone())
        if row is None:
            known = ", ".join(str(r.id) for r in self.runs()[-10:]) or "none"
            raise ConfigError(f"no run {run_id} in {self.path}; recent runs: {known} (inferplan runs)")
        return self._info(row)

    @staticmethod
    def _info(row: tuple[Any, ...]) -> RunInfo:
        def text(x: object) -> str | None:
            return None if x is None else str(x)

        config, machine, summary = (_json(row[i], None) for i in (7, 8, 9))
        return RunInfo(
            _int(row[0]),
            str(row[1]),
            str(row[2]),
            text(row[3]),
            str(row[4]),
            text(row[5]),
            text(row[6]),
            config if isinstance(config, dict) else {},
            machine if isinstance(machine, dict) else {},
            summary if isinstance(summary, dict) else None,
            _int(row[10]),
            _int(row[11]) if row[11] is not None else None,
        )

    def requests(self, run_id: int) -> list[dict[str, Any]]:
        rows = self._read(
            lambda: self.db.execute(
                f"SELECT {', '.join(REQUEST_COLUMNS)} FROM requests WHERE run_id = ? ORDER BY idx", (run_id,)
            ).fetchall()
        )
        out = []
        for row in rows:
            q = dict(zip(REQUEST_COLUMNS, row, strict=True))
            gaps = _json(q["itl_s"], [])
            q["itl_s"] = [g for g in (_float(x) for x in gaps) if not math.isnan(g)] if isinstance(gaps, list) else []
            for key in ("idx", "input_tokens", "output_tokens", "http_status"):
                q[key] = _int(q[key])
            for key in ("scheduled_s", "sent_s", "first_token_s", "end_s"):
                q[key] = None if math.isnan(_float(q[key])) else _float(q[key])
            for key in ("tokens_source", "error", "detail"):
                q[key] = "" if q[key] is None else str(q[key])
            out.append(q)
        return out

    def records(self, run_id: int) -> list[RequestRecord]:
        """Requests as records again (chunk times rebuilt from the first token and the gaps)."""
        out = []
        for q in self.requests(run_id):
            first = _float(q["first_token_s"])
            times = [] if math.isnan(first) else [first]
            for gap in q["itl_s"] if times else []:
                times.append(times[-1] + gap)
            out.append(
                RequestRecord(
                    q["idx"],
                    _float(q["scheduled_s"]),
                    _float(q["sent_s"]),
                    first,
                    _float(q["end_s"]),
                    times,
                    q["input_tokens"],
                    q["output_tokens"],
                    q["tokens_source"] or "usage",
                    q["http_status"],
                    q["error"],
                    q["detail"],
                )
            )
        return out

    def telemetry(self, run_id: int) -> list[tuple[float, str, float]]:
        rows = self._read(
            lambda: self.db.execute(
                "SELECT t_s, name, value FROM telemetry WHERE run_id = ? ORDER BY t_s", (run_id,)
            ).fetchall()
        )
        return [(_float(t), str(n), _float(v)) for t, n, v in rows if not math.isnan(_float(v))]

    def measurements(self, run_id: int) -> list[dict[str, Any]]:
        rows = self._read(
            lambda: self.db.execute(
                "SELECT name, value, unit, params FROM measurements WHERE run_id = ?", (run_id,)
            ).fetchall()
        )
        return [
            {
                "name": str(n),
                "value": None if math.isnan(_float(v)) else _float(v),
                "unit": str(u),
                "params": _json(p, {}),
            }
            for n, v, u, p in rows
        ]

    # -- export / import ---------------------------------------------------------------------
    def export_json(self, run_id: int) -> dict[str, Any]:
        info = self.run(run_id)
        return {
            "schema": "inferplan.run/1",
            "run": _finite(_asdict(info)),
            "requests": self.requests(run_id),
            "telemetry": [{"t_s": t, "name": n, "value": v} for t, n, v in self.telemetry(run_id)],
            "measurements": self.measurements(run_id),
        }

    def export_csv(self, run_id: int, path: Path) -> None:
        rows = self.requests(run_id)
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(REQUEST_COLUMNS))
            writer.writeheader()
            for row in rows:
                writer.writerow(row | {"itl_s": json.dumps(row["itl_s"])})

    def add_imported(self, run: Imported) -> int:
        """A run read from another client's result file (kind vllm-bench, guidellm or aiperf)."""
        self.require_writable()
        run_id = self.start_run(run.kind, run.config, run.machine, model=run.model)
        rows = [request_row(run_id, rec) for rec in run.records]
        self._write(lambda: self.db.executemany(INSERT_REQUEST, rows))
        self.finish_run(run_id, "imported", _finite(run.summary))
        return run_id


def _finite(value: Any) -> Any:
    """JSON data with NaN and infinities (old stored summaries may hold them) as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _asdict(info: RunInfo) -> dict[str, Any]:
    return {f: getattr(info, f) for f in info.__dataclass_fields__}
