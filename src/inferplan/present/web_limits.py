"""What keeps the web server responsive under any load: a request body limit that holds for
chunked bodies too (:class:`BodyLimit`), and a bounded pool of plan workers with a bounded
queue (:class:`PlanPool`) that answers 429 with ``Retry-After`` when full. Plans never run on
the threads or the event loop that answer ``/api/health`` and the page.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inferplan.errors import InferplanError
from inferplan.limits import MAX_QUEUED_PLANS, MAX_REQUEST_BODY_BYTES, MAX_RUNNING_PLANS
from inferplan.present.text import one_line

__all__ = ["MAX_BODY_BYTES", "BodyLimit", "BusyError", "PlanPool", "error_response"]

MAX_BODY_BYTES = MAX_REQUEST_BODY_BYTES
T = TypeVar("T")
R = TypeVar("R")


def error_response(status: int, message: str, kind: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """Every answer that is not a success: ``{"error": one line, "kind": error class}``."""
    return JSONResponse({"error": one_line(message), "kind": kind}, status_code=status, headers=headers)


class BusyError(InferplanError):
    """Too many plans running and waiting (HTTP 429 with Retry-After)."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` is refused with 413 before any more of
    it is read, whether its size is declared (Content-Length) or not (chunked). A body within the
    limit is read once and handed on unchanged."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_REQUEST_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(bytes(body), receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"request body over {self.max_bytes // 1024:,} KiB; paste only config.json"
        # the rest of the body is never read: the server closes the connection after this answer
        response = error_response(413, message, "InputError", {"Connection": "close"})
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive channel that gives the body read so far, then what the client sends next
    (its disconnect)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class PlanPool:
    """Plans run on ``workers`` threads of their own; at most ``queue`` more wait, and one more
    is refused at once (:class:`BusyError`, HTTP 429) with an estimate of when to retry."""

    def __init__(self, workers: int = MAX_RUNNING_PLANS, queue: int = MAX_QUEUED_PLANS) -> None:
        if workers < 1 or queue < 0:
            raise ValueError("a plan pool needs at least one worker and a queue of zero or more")
        self.workers = workers
        self.capacity = workers + queue
        self._executor: ThreadPoolExecutor | None = None  # started on the first plan
        self._lock = threading.Lock()
        self._pending = 0
        self._mean_plan_s = 1.0

    @property
    def pending(self) -> int:
        """Plans running or waiting."""
        with self._lock:
            return self._pending

    def retry_after_s(self) -> int:
        """Seconds until the queue has likely moved on: waiting plans per worker x mean plan time."""
        with self._lock:
            wait_s = self._pending / self.workers * self._mean_plan_s
        return min(max(math.ceil(wait_s), 1), 600)

    async def run(self, fn: Callable[[T], R], arg: T) -> R:
        """``fn(arg)`` on a plan worker, awaited without holding the event loop."""
        with self._lock:
            full = self._pending >= self.capacity
            if not full:
                self._pending += 1
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="inferplan-plan")
                executor = self._executor
        if full:
            raise BusyError(
                f"the planner is busy: {self.capacity} plans are running or waiting; try again shortly",
                self.retry_after_s(),
            )
        future: Future[R] = executor.submit(self._timed, fn, arg)
        future.add_done_callback(self._finished)  # type: ignore[arg-type]  # also when cancelled before it ran
        return await asyncio.wrap_future(future)

    def _timed(self, fn: Callable[[T], R], arg: T) -> R:
        start = time.perf_counter()
        try:
            return fn(arg)
        finally:
            with self._lock:
                self._mean_plan_s = 0.8 * self._mean_plan_s + 0.2 * (time.perf_counter() - start)

    def _finished(self, _: Future[object]) -> None:
        with self._lock:
            self._pending -= 1

    def close(self) -> None:
        """Stop: waiting plans are dropped, running ones finish in the background; the next plan
        starts new workers (a server may start and stop the app more than once)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
