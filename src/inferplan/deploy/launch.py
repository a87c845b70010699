"""Start an engine from its generated command and wait, bounded, until ``/health`` answers."""

from __future__ import annotations

import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from inferplan.errors import BenchmarkError

__all__ = ["LAUNCHED", "engine_log_path", "launch_engine"]

#: Engines started by this process. They outlive it by design (own session); keeping the handles
#: stops Python from warning that a child is still running when a handle is collected.
LAUNCHED: list[subprocess.Popen[bytes]] = []


def engine_log_path(port: int, run_dir: Path | None = None) -> Path:
    """Where a launched engine writes its log: the run's folder when there is one, else a new
    temporary folder; never the current folder."""
    folder = run_dir if run_dir is not None else Path(tempfile.mkdtemp(prefix="inferplan-engine-"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"engine-{port}.log"


def launch_engine(cmd: list[str], port: int, wait_s: float, log: Path | None = None) -> tuple[str, int, Path]:
    """Start ``cmd`` in its own session (it keeps running after inferplan exits) and return
    its URL, pid and log file once it is healthy; stop it and raise if it dies or never gets
    there."""
    log = log or engine_log_path(port)
    try:
        with log.open("wb") as fh:
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
            LAUNCHED.append(proc)
    except OSError as exc:
        raise BenchmarkError(f"cannot start {cmd[0]}: {exc.strerror}; is the engine installed?") from exc
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-600:].replace("\n", " | ")
            raise BenchmarkError(f"the engine exited with code {proc.returncode}; last log lines: {tail}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:  # loopback only
                if resp.status == 200:
                    return url, proc.pid, log
        except OSError:
            pass
        time.sleep(1.0)
    proc.terminate()
    raise BenchmarkError(f"the engine was not healthy after {wait_s:.0f} s (log: {log}); it was stopped")
