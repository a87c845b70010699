"""The results database: every run and every request in SQLite, written as it happens, so
a crash or Ctrl-C loses nothing already measured.

Schema version 1 (``PRAGMA user_version``): ``runs`` (one benchmark run or import),
``requests`` (one row per request, inter-token gaps as JSON), ``telemetry`` (server
metrics sampled during a run), ``measurements`` (micro-benchmark figures).
"""

from __future__ import annotations

import csv
import json
import math
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inferplan.bench.client import RequestRecord
from inferplan.errors import ConfigError

__all__ = ["SCHEMA_VERSION", "ResultsStore", "RunInfo", "default_db_path"]

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, started_at TEXT NOT NULL,
  finished_at TEXT, status TEXT NOT NULL, url TEXT, model TEXT, config TEXT NOT NULL,
  machine TEXT NOT NULL, summary TEXT);
CREATE TABLE IF NOT EXISTS requests (
  run_id INTEGER NOT NULL REFERENCES runs(id), idx INTEGER NOT NULL, scheduled_s REAL,
  sent_s REAL, first_token_s REAL, end_s REAL, input_tokens INTEGER, output_tokens INTEGER,
  tokens_source TEXT, http_status INTEGER, error TEXT, detail TEXT, itl_s TEXT,
  PRIMARY KEY (run_id, idx));
CREATE TABLE IF NOT EXISTS telemetry (
  run_id INTEGER NOT NULL REFERENCES runs(id), t_s REAL NOT NULL, name TEXT NOT NULL, value REAL);
CREATE TABLE IF NOT EXISTS measurements (
  run_id INTEGER NOT NULL REFERENCES runs(id), name TEXT NOT NULL, value REAL NOT NULL,
  unit TEXT NOT NULL, params TEXT NOT NULL);
"""
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


def default_db_path() -> Path:
    """``$INFERPLAN_DB``, else ``~/.inferplan/results.db``."""
    return Path(os.environ.get("INFERPLAN_DB") or Path.home() / ".inferplan" / "results.db")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


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


class ResultsStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_db_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path)
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ConfigError(
                    f"{self.path}: results database schema {version} is newer than this "
                    f"inferplan ({SCHEMA_VERSION}); upgrade inferplan or use --db"
                )
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(_SCHEMA)
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self.db.commit()
        except (sqlite3.DatabaseError, ConfigError) as exc:
            if hasattr(self, "db"):
                self.db.close()
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"{self.path}: not a usable results database ({exc}); use --db another path") from exc

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
        cur = self.db.execute(
            "INSERT INTO runs (kind, started_at, status, url, model, config, machine) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (kind, _now(), "running", url, model, json.dumps(config), json.dumps(machine)),
        )
        self.db.commit()
        assert cur.lastrowid is not None
        return cur.lastrowid

    def add_request(self, run_id: int, r: RequestRecord) -> None:
        itl = [b - a for a, b in zip(r.chunk_times_s, r.chunk_times_s[1:], strict=False)]
        self.db.execute(
            f"INSERT OR REPLACE INTO requests (run_id, {', '.join(REQUEST_COLUMNS)}) VALUES ({', '.join('?' * 13)})",
            (
                run_id,
                r.index,
                _num(r.scheduled_s),
                _num(r.sent_s),
                _num(r.first_token_s),
                _num(r.end_s),
                r.input_tokens,
                r.output_tokens,
                r.tokens_source,
                r.http_status,
                r.error,
                r.detail,
                json.dumps(itl),
            ),
        )
        self.db.commit()

    def add_telemetry(self, run_id: int, t_s: float, values: dict[str, float]) -> None:
        self.db.executemany(
            "INSERT INTO telemetry VALUES (?, ?, ?, ?)", [(run_id, t_s, k, v) for k, v in values.items()]
        )
        self.db.commit()

    def add_measurement(self, run_id: int, name: str, value: float, unit: str, params: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT INTO measurements VALUES (?, ?, ?, ?, ?)", (run_id, name, value, unit, json.dumps(params))
        )
        self.db.commit()

    def finish_run(self, run_id: int, status: str, summary: dict[str, Any] | None) -> None:
        self.db.execute(
            "UPDATE runs SET status = ?, finished_at = ?, summary = ? WHERE id = ?",
            (status, _now(), json.dumps(summary) if summary is not None else None, run_id),
        )
        self.db.commit()

    # -- reading ---------------------------------------------------------------------------
    def runs(self) -> list[RunInfo]:
        rows = self.db.execute(
            "SELECT r.*, (SELECT COUNT(*) FROM requests q WHERE q.run_id = r.id) FROM runs r ORDER BY r.id"
        ).fetchall()
        return [self._info(row) for row in rows]

    def run(self, run_id: int) -> RunInfo:
        row = self.db.execute(
            "SELECT r.*, (SELECT COUNT(*) FROM requests q WHERE q.run_id = r.id) FROM runs r WHERE r.id = ?",
            (run_id,),
        ).fetchone()
        if row is None:
            known = ", ".join(str(r.id) for r in self.runs()[-10:]) or "none"
            raise ConfigError(f"no run {run_id} in {self.path}; recent runs: {known} (inferplan runs)")
        return self._info(row)

    @staticmethod
    def _info(row: tuple[Any, ...]) -> RunInfo:
        return RunInfo(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            row[6],
            json.loads(row[7]),
            json.loads(row[8]),
            json.loads(row[9]) if row[9] else None,
            row[10],
        )

    def requests(self, run_id: int) -> list[dict[str, Any]]:
        rows = self.db.execute(
            f"SELECT {', '.join(REQUEST_COLUMNS)} FROM requests WHERE run_id = ? ORDER BY idx", (run_id,)
        ).fetchall()
        return [dict(zip(REQUEST_COLUMNS, row, strict=True)) | {"itl_s": json.loads(row[-1] or "[]")} for row in rows]

    def records(self, run_id: int) -> list[RequestRecord]:
        """Requests as records again (chunk times rebuilt from the first token and the gaps)."""
        out = []
        for q in self.requests(run_id):
            nan = float("nan")
            first = q["first_token_s"] if q["first_token_s"] is not None else nan
            times = [first]
            for gap in q["itl_s"]:
                times.append(times[-1] + gap)
            out.append(
                RequestRecord(
                    q["idx"],
                    q["scheduled_s"] if q["scheduled_s"] is not None else nan,
                    q["sent_s"] if q["sent_s"] is not None else nan,
                    first,
                    q["end_s"] if q["end_s"] is not None else nan,
                    times if q["first_token_s"] is not None else [],
                    q["input_tokens"] or 0,
                    q["output_tokens"] or 0,
                    q["tokens_source"] or "usage",
                    q["http_status"] or 0,
                    q["error"] or "",
                    q["detail"] or "",
                )
            )
        return out

    def telemetry(self, run_id: int) -> list[tuple[float, str, float]]:
        rows = self.db.execute("SELECT t_s, name, value FROM telemetry WHERE run_id = ? ORDER BY t_s", (run_id,))
        return [(float(t), str(n), float(v)) for t, n, v in rows]

    def measurements(self, run_id: int) -> list[dict[str, Any]]:
        return [
            {"name": n, "value": v, "unit": u, "params": json.loads(p)}
            for n, v, u, p in self.db.execute(
                "SELECT name, value, unit, params FROM measurements WHERE run_id = ?", (run_id,)
            )
        ]

    # -- export / import ---------------------------------------------------------------------
    def export_json(self, run_id: int) -> dict[str, Any]:
        info = self.run(run_id)
        return {
            "schema": "inferplan.run/1",
            "run": _asdict(info),
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

    def import_vllm_result(self, path: Path) -> int:
        """A ``vllm bench serve --save-result`` JSON file becomes a run (kind 'vllm-bench')."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read {path} as JSON: {exc}") from exc
        need = ("ttfts", "itls", "input_lens", "output_lens")
        missing = [k for k in need if not isinstance(data.get(k), list)]
        if missing:
            raise ConfigError(
                f"{path}: not a 'vllm bench serve --save-result' file (missing {', '.join(missing)}); "
                "save with --save-result --save-detailed"
            )
        config = {
            k: data.get(k)
            for k in (
                "backend",
                "model_id",
                "tokenizer_id",
                "num_prompts",
                "request_rate",
                "burstiness",
                "max_concurrency",
                "date",
            )
        }
        run_id = self.start_run("vllm-bench", config, {"source": str(path)}, model=str(data.get("model_id") or ""))
        errors = data.get("errors") or [""] * len(data["ttfts"])
        for i, (ttft, itl, n_in, n_out) in enumerate(
            zip(data["ttfts"], data["itls"], data["input_lens"], data["output_lens"], strict=False)
        ):
            err = str(errors[i]) if i < len(errors) and errors[i] else ""
            times = [float(ttft)] if ttft else []
            for gap in itl or []:
                times.append(times[-1] + float(gap))
            rec = RequestRecord(
                i,
                0.0,
                0.0,
                float(ttft) if ttft else float("nan"),
                times[-1] if times else float("nan"),
                times,
                int(n_in or 0),
                int(n_out or 0),
                "usage",
                200 if not err else 0,
                "imported_error" if err else "",
                err[:200],
            )
            self.add_request(run_id, rec)
        summary = {
            k: data.get(k)
            for k in (
                "duration",
                "completed",
                "request_throughput",
                "output_throughput",
                "total_token_throughput",
                "mean_ttft_ms",
                "median_ttft_ms",
                "p99_ttft_ms",
                "mean_tpot_ms",
                "mean_itl_ms",
            )
        }
        self.finish_run(run_id, "imported", summary)
        return run_id


def _asdict(info: RunInfo) -> dict[str, Any]:
    return {f: getattr(info, f) for f in info.__dataclass_fields__}
