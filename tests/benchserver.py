"""inferplan's local server on 127.0.0.1 in a thread of its own (the CLI under test runs its
own event loop), or in a process of its own (to be killed)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

from inferplan.bench.localserver import Batching, Behaviour, LocalServer


@contextlib.contextmanager
def threaded_server(
    plan: Callable[[int], Behaviour], metrics: str = "ok", tokenize: str = "none", batching: Batching | None = None
) -> Iterator[LocalServer]:
    ready = threading.Event()
    state: dict[str, object] = {}

    def main() -> None:
        async def run() -> None:
            server = LocalServer(plan, metrics, tokenize, batching)
            await server.start()
            stop = asyncio.Event()
            state["server"], state["stop"] = server, stop
            ready.set()
            await stop.wait()
            await server.stop()

        loop = asyncio.new_event_loop()
        state["loop"] = loop
        loop.run_until_complete(run())
        loop.close()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield state["server"]  # type: ignore[misc]
    finally:
        loop: asyncio.AbstractEventLoop = state["loop"]  # type: ignore[assignment]
        loop.call_soon_threadsafe(state["stop"].set)  # type: ignore[attr-defined]
        thread.join(10)


@contextlib.contextmanager
def process_server(token_delay_s: float, *options: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``python -m inferplan.bench.localserver`` in a child process (with more of its
    ``options``, e.g. "--ttft-delay", "0.05"); yields its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "inferplan.bench.localserver", "--token-delay", str(token_delay_s), *options],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield url, proc
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
