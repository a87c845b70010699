"""Opening the results database file: its schema, and what is refused before anything is
measured into it.

A database that can be written is put in WAL mode with a busy timeout (readers never block
the writer), its schema is created or checked, and a spill file left by an earlier run
(:mod:`inferplan.bench.writer`) is written into it. ``check=True`` also runs SQLite's
``quick_check`` and refuses a corrupt file. A database that cannot be written (read-only
media, permissions) is opened read-only, also when it is in WAL mode and no ``-shm`` file
can be made beside it (SQLite's ``immutable`` open).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from inferplan.bench.writer import BUSY_TIMEOUT_S, replay_spill, retrying, spill_path
from inferplan.errors import ConfigError

__all__ = [
    "LOCK_WAIT_S",
    "MIGRATIONS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "Opened",
    "default_db_path",
    "has_column",
    "open_database",
    "refusal",
]

SCHEMA_VERSION = 2
LOCK_WAIT_S = 60.0  # how long a write waits out another process's lock before giving up
SCHEMA = """
CREATE TABLE IF NOT EXISTS sweeps (
  id INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT NOT NULL, finished_at TEXT,
  status TEXT NOT NULL, url TEXT, model TEXT, config TEXT NOT NULL, summary TEXT);
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, started_at TEXT NOT NULL,
  finished_at TEXT, status TEXT NOT NULL, url TEXT, model TEXT, config TEXT NOT NULL,
  machine TEXT NOT NULL, summary TEXT, sweep_id INTEGER REFERENCES sweeps(id));
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
#: what each schema version added to the one before: (table, column, its declaration); a
#: database of an older version gets each missing column when it is next opened for writing
#: (the tables are created by :data:`SCHEMA`)
MIGRATIONS = {
    2: [("runs", "sweep_id", "INTEGER REFERENCES sweeps(id)")],  # sweeps: the runs of one `bench sweep`
}
READ_ONLY = "the results database is read-only (inferplan runs can still read it)"


def default_db_path() -> Path:
    """``$INFERPLAN_DB``, else ``~/.inferplan/results.db``."""
    return Path(os.environ.get("INFERPLAN_DB") or Path.home() / ".inferplan" / "results.db")


def refusal(path: Path, what: str, exc: BaseException | str | None = None) -> ConfigError:
    detail = f" ({' '.join(str(exc).split())[:200]})" if exc else ""
    return ConfigError(f"{path}: {what}{detail}; give --db another path")


@dataclass(frozen=True, slots=True)
class Opened:
    db: sqlite3.Connection
    read_only: bool
    recovered: int  # spill-file entries written in


def open_database(path: Path, writable: bool | None, check: bool) -> Opened:
    """``writable``: True must write (else refused), False reads only, None writes where it can."""
    if path.is_dir():
        raise refusal(path, "is a folder, not a results database file")
    opened = Opened(_read_only(path), True, 0) if writable is False else _writable(path, must=bool(writable))
    if check:
        _check(path, opened.db)
    return opened


def _is_read_only(error: str) -> bool:
    return "readonly" in error or "unable to open" in error


def _writable(path: Path, must: bool) -> Opened:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)
        _version(path, db)
        recovered: list[int] = []
        error = retrying(lambda: recovered.append(_setup(path, db)), LOCK_WAIT_S)
    except (OSError, sqlite3.Error) as exc:
        error = f"{type(exc).__name__}: {exc}"
        if not path.exists() or not _is_read_only(error):
            raise refusal(path, "not a usable results database", exc) from exc
    else:
        if error is None:
            return Opened(db, False, sum(recovered))
        db.close()
        if not _is_read_only(error):
            raise refusal(path, "not a usable results database", error)
    if must:
        raise refusal(path, READ_ONLY)
    return Opened(_read_only(path), True, 0)


def has_column(db: sqlite3.Connection, table: str, column: str) -> bool:
    return any(row[1] == column for row in db.execute(f"PRAGMA table_info({table})"))


def _migrate(db: sqlite3.Connection) -> None:
    """Add what later schema versions added (each step checked, so it is never applied twice)."""
    for version in sorted(MIGRATIONS):
        for table, column, declaration in MIGRATIONS[version]:
            if not has_column(db, table, column):
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


def _setup(path: Path, db: sqlite3.Connection) -> int:
    db.execute("PRAGMA journal_mode=WAL")
    with db:
        db.executescript(SCHEMA)
        _migrate(db)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    spill = spill_path(path)
    return replay_spill(db, spill) if spill.exists() else 0


def _version(path: Path, db: sqlite3.Connection) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        db.close()
        raise ConfigError(
            f"{path}: results database schema {version} is newer than this "
            f"inferplan ({SCHEMA_VERSION}); upgrade inferplan or use --db"
        )


def _read_only(path: Path) -> sqlite3.Connection:
    if not path.exists():  # nothing stored yet: an empty database in memory
        db = sqlite3.connect(":memory:")
        db.executescript(SCHEMA)
        return db
    uri = f"file:{quote(str(path.resolve()))}"
    last: sqlite3.Error | None = None
    for query in ("mode=ro", "immutable=1"):  # immutable: WAL on media where no -shm can be made
        try:
            db = sqlite3.connect(f"{uri}?{query}", uri=True)
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            last = exc
            continue
        _version(path, db)
        return db
    raise refusal(path, "cannot read the results database", last)


def _check(path: Path, db: sqlite3.Connection) -> None:
    """Refuse a damaged database before anything is measured into it."""
    try:
        rows = db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        db.close()
        raise refusal(path, "the results database is corrupt", exc) from exc
    if rows != [("ok",)]:
        db.close()
        first = " ".join(str(rows[0][0]).replace("*** in database main ***", "").split())
        raise refusal(path, f"the results database is corrupt (quick_check: {first[:100]})")
