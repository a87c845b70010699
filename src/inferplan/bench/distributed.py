"""Load from several machines: one point's arrival schedule split over Ray workers, each with
its own event loop and connections, their records streamed back to this process (the
coordinator), which stores them in the one results database as they arrive.

* The split (:func:`split_load`): at an open-loop rate, request *i* of the one schedule goes to
  worker *i mod N* at its time in that schedule (so N workers send exactly the requests, at
  exactly the times, one process would); at a fixed concurrency C, each worker runs C // N
  streams (the first C mod N one more) over its share of the prompts; a cap on streams is
  split the same way.
* The clock: every worker starts its run at one wall-clock instant the coordinator chose
  (:data:`START_LEAD_S` ahead), and stamps on its own monotonic clock from there; records of
  workers on other machines are offset by the machines' clock difference (NTP: typically
  under a millisecond on one network).
* The stream: each worker is a Ray actor (:class:`LoadWorker`) whose ``run`` is a streaming
  generator; it yields its finished records every :data:`BATCH_S`, then its event loop's lags.
* Failures: a worker that dies (its process, its node) is reported with what it had sent;
  its finished records are kept, and the run is ``partial``. Every wait is bounded: workers
  must start within :data:`START_WAIT_S`, the run ends by its own bound (the schedule, the
  requests' timeouts, ``--duration``) plus :data:`GRACE_S`, and a stopped worker (Ctrl-C, or
  past that bound) has :data:`STOP_WAIT_S` to hand over its last records before it is killed.

Ray is the optional extra ``inferplan[distributed]``; it is imported only here, only when
``--ray`` is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
import platform
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from inferplan.bench.client import BenchConfig, run_load, schedule
from inferplan.bench.loop import LoopLag, loop_name, run
from inferplan.bench.record import Prompt, RequestRecord
from inferplan.errors import BenchmarkError, InputError
from inferplan.perf.workload import Arrivals

__all__ = ["BATCH_S", "LoadWorker", "RaySender", "Share", "connect_ray", "ray_senders", "split_load", "worker_name"]

START_LEAD_S = 2.0  # the common start is this far ahead of the dispatch
START_WAIT_S = 120.0
GRACE_S = 60.0
STOP_WAIT_S = 10.0
BATCH_S = 0.2
MAX_WORKERS = 1024


@dataclass(frozen=True, slots=True)
class Share:
    """One worker's part of a point: its settings, its requests (global index, scheduled
    time) and their prompts, in order."""

    worker: int
    cfg: BenchConfig
    records: list[RequestRecord]
    prompts: list[Prompt]


def _parts(total: int, n: int) -> list[int]:
    """``total`` split over ``n`` as evenly as whole numbers allow (the first ones larger)."""
    return [total // n + (1 if k < total % n else 0) for k in range(n)]


def split_load(cfg: BenchConfig, prompts: list[Prompt], workers: int) -> list[Share]:
    """The point's requests split over ``workers`` (fewer when there are fewer streams or
    requests than workers)."""
    if not 1 <= workers <= MAX_WORKERS:
        raise InputError(f"--workers must be between 1 and {MAX_WORKERS}")
    everyone = schedule(cfg, len(prompts))
    arr = cfg.arrivals
    n = min(workers, len(prompts), arr.concurrency if arr.kind == "concurrency" else workers)
    caps = _parts(cfg.max_concurrency, n) if cfg.max_concurrency else [0] * n
    shares = []
    for k in range(n):
        own = replace(cfg, max_concurrency=max(caps[k], 1) if cfg.max_concurrency else None)
        if arr.kind == "concurrency":
            own = replace(own, arrivals=Arrivals("concurrency", concurrency=_parts(arr.concurrency, n)[k]))
        shares.append(Share(k, own, everyone[k::n], prompts[k::n]))
    return shares


def run_bound_s(share: Share) -> float:
    """The longest the share's run can take: its last scheduled send, then its requests one
    after another on each stream, each within its whole-request limit (or ``--duration``)."""
    cfg = share.cfg
    last = max((r.scheduled_s for r in share.records), default=0.0)
    streams = cfg.arrivals.concurrency if cfg.arrivals.kind == "concurrency" else (cfg.max_concurrency or 0)
    rounds = math.ceil(len(share.records) / streams) if streams else 1
    bound = last + rounds * cfg.timeouts.total_s
    return min(bound, cfg.duration_s + cfg.timeouts.total_s) if cfg.duration_s else bound


_ACTORS = itertools.count()


def worker_name(worker: int) -> str:
    """A new Ray actor name for worker ``worker`` of this process (the one coordinator in it):
    ``inferplan-load-PID-SERIAL-wWORKER``."""
    return f"inferplan-load-{os.getpid()}-{next(_ACTORS)}-w{worker}"


class LoadWorker:
    """A Ray actor (``max_concurrency=2``: ``stop`` runs while ``run`` streams) that sends one
    share on an event loop of its own, in a thread of its own."""

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None

    def ready(self) -> dict[str, Any]:
        return {"host": platform.node(), "pid": os.getpid(), "event_loop": loop_name()}

    def stop(self) -> None:
        """Cancel the share's requests: those in flight are recorded as cancelled."""
        self._stopping.set()
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            loop.call_soon_threadsafe(task.cancel)

    def run(self, share: Share, start_wall_s: float) -> Iterator[dict[str, Any]]:
        """Yields ``{"records": [...]}`` batches, then ``{"loop_lags_s": [...], "error": ...}``."""
        out: queue.SimpleQueue[RequestRecord | dict[str, Any]] = queue.SimpleQueue()
        thread = threading.Thread(target=self._main, args=(share, start_wall_s, out), daemon=True)
        thread.start()
        while True:
            batch: list[RequestRecord] = []
            end: dict[str, Any] | None = None
            deadline = time.monotonic() + BATCH_S
            while end is None and (wait := deadline - time.monotonic()) > 0:
                try:
                    item = out.get(timeout=wait)
                except queue.Empty:
                    break
                if isinstance(item, dict):
                    end = item
                else:
                    batch.append(item)
            if batch:
                yield {"records": batch}
            if end is not None:
                yield end
                return

    def _main(self, share: Share, start_wall_s: float, out: queue.SimpleQueue[Any]) -> None:
        lag = LoopLag()
        error = None

        async def main() -> None:
            self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
            if self._stopping.is_set():
                return
            lag.start()
            await asyncio.sleep(max(start_wall_s - time.time(), 0.0))
            await run_load(share.cfg, share.prompts, out.put, None, share.records)

        try:
            run(main())
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # reported to the coordinator, which names the worker
            error = f"{type(exc).__name__}: {exc}"[:300]
        finally:
            lag.stop()
            out.put({"loop_lags_s": lag.lags_s(), "error": error})


def connect_ray(address: str, workers: int) -> bool:
    """Connect to the Ray cluster at ``address`` ('local': start one on this machine, on its
    loopback address only); returns whether this call started Ray (and should stop it)."""
    try:
        if address == "local":  # Ray's own switch: node addresses on the loopback interface
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        import ray
    except ImportError:
        raise InputError("--ray needs Ray: pip install 'inferplan[distributed]'") from None
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address == "local":
        ray.init(address="local", num_cpus=max(workers, os.cpu_count() or 1), **options)
    else:
        try:
            ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise BenchmarkError(f"cannot connect to the Ray cluster at {address}: {str(exc)[:200]}") from None
    return True


@dataclass(slots=True)
class _Worker:
    share: Share
    actor: Any
    host: str = "?"
    reported: int = 0
    status: str = "running"  # then finished, stopped, failed (its load raised), died or killed
    error: str | None = None


class RaySender:
    """Sends each point through ``workers`` Ray workers (see the module's description); the
    workers are kept from point to point (a dead one is replaced) until :meth:`close`."""

    def __init__(self, workers: int) -> None:
        if not 1 <= workers <= MAX_WORKERS:
            raise InputError(f"--workers must be between 1 and {MAX_WORKERS}")
        self.workers = workers
        self._actors: dict[int, Any] = {}
        self._lags: list[float] = []
        self._state: list[_Worker] = []
        self._lock = threading.Lock()

    def loop_lags_s(self) -> list[float]:
        return list(self._lags)

    def incomplete(self) -> bool:
        return any(w.status in ("failed", "died", "killed") for w in self._state)

    def report(self) -> dict[str, Any]:
        keys = ("host", "reported", "status", "error")
        return {
            "workers": [
                {"worker": w.share.worker, "assigned": len(w.share.records)} | {k: getattr(w, k) for k in keys}
                for w in self._state
            ]
        }

    def close(self) -> None:
        """Stop the workers (their processes end; nothing of theirs is waited for)."""
        import ray

        for actor in self._actors.values():
            ray.kill(actor)
        self._actors.clear()

    async def send(self, cfg: BenchConfig, prompts: list[Prompt], on_record: Callable[[RequestRecord], None]) -> None:
        import ray

        actor_class = ray.remote(LoadWorker)
        shares = split_load(cfg, prompts, self.workers)
        for s in shares:
            if s.worker not in self._actors:
                self._actors[s.worker] = actor_class.options(
                    num_cpus=1, max_concurrency=2, name=worker_name(s.worker)
                ).remote()
        self._state = [_Worker(s, self._actors[s.worker]) for s in shares]
        self._lags = []
        loop = asyncio.get_running_loop()
        done: asyncio.Future[BaseException | None] = loop.create_future()
        stop = threading.Event()

        def drive() -> None:
            error: BaseException | None = None
            try:
                self._drive(ray, stop, on_record)
            except BaseException as exc:  # handed to the event loop, raised there
                error = exc

            def finish() -> None:
                if not done.done():
                    done.set_result(error)

            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
                loop.call_soon_threadsafe(finish)

        threading.Thread(target=drive, name="inferplan-ray-drain", daemon=True).start()
        try:
            error = await asyncio.shield(done)
        except asyncio.CancelledError:
            stop.set()  # the workers cancel what is in flight and hand it over
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(done), STOP_WAIT_S + 5.0)
            raise
        if error is not None:
            raise error

    def _drive(self, ray: Any, stop: threading.Event, on_record: Callable[[RequestRecord], None]) -> None:
        self._await_ready(ray, stop)
        if stop.is_set():
            return
        start = time.time() + START_LEAD_S
        streaming = {"num_returns": "streaming"}
        gens = {w.share.worker: w.actor.run.options(**streaming).remote(w.share, start) for w in self._state}
        end = time.monotonic() + START_LEAD_S + max(run_bound_s(w.share) for w in self._state) + GRACE_S
        self._drain(ray, gens, (stop, end), on_record)
        for w in self._state:
            if w.status in ("died", "killed"):  # replaced at the next point
                ray.kill(w.actor)
                self._actors.pop(w.share.worker, None)

    def _await_ready(self, ray: Any, stop: threading.Event) -> None:
        pending = {w.actor.ready.remote(): w for w in self._state}
        end = time.monotonic() + START_WAIT_S
        while pending and not stop.is_set() and time.monotonic() < end:
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=1.0)
            for ref in ready:
                w = pending.pop(ref)
                try:
                    w.host = str(ray.get(ref, timeout=STOP_WAIT_S).get("host", "?"))[:100]
                except ray.exceptions.RayError as exc:
                    raise BenchmarkError(f"Ray worker {w.share.worker} could not start: {str(exc)[:200]}") from None
        if pending and not stop.is_set():
            free = ray.available_resources().get("CPU", 0)
            raise BenchmarkError(
                f"Ray did not start {len(self._state)} workers within {START_WAIT_S:g} s ({free:g} CPUs free in "
                "the cluster; each worker takes one): give fewer --workers or add nodes"
            )

    def _drain(
        self, ray: Any, gens: dict[int, Any], bounds: tuple[threading.Event, float], on_record: Callable[..., None]
    ) -> None:
        """Records as they arrive, until every worker has finished, died or been stopped."""
        stop, end = bounds
        live = dict(gens)
        stop_by: float | None = None
        while live:
            if stop_by is None and (stop.is_set() or time.monotonic() > end):
                stop_by = time.monotonic() + STOP_WAIT_S
                for k in live:
                    self._state[k].actor.stop.remote()
            if stop_by is not None and time.monotonic() > stop_by:
                for k in live:
                    self._state[k].status, self._state[k].error = "killed", f"no answer {STOP_WAIT_S:g} s after stop"
                return
            ready, _ = ray.wait(list(live.values()), num_returns=1, timeout=BATCH_S)
            for gen in ready:
                k = next(k for k, g in live.items() if g is gen)
                if not self._take(ray, k, gen, on_record):
                    del live[k]
                    if self._state[k].status == "running":
                        self._state[k].status = "stopped" if stop_by is not None else "finished"

    def _take(self, ray: Any, k: int, gen: Any, on_record: Callable[[RequestRecord], None]) -> bool:
        """One message from worker ``k``; False when it has no more."""
        w = self._state[k]
        try:
            msg = ray.get(next(gen), timeout=STOP_WAIT_S)
        except StopIteration:
            return False
        except ray.exceptions.RayError as exc:
            w.status, w.error = "died", " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            return False
        with self._lock:
            for rec in msg.get("records", []):
                w.reported += 1
                on_record(rec)
            self._lags += msg.get("loop_lags_s", [])
        if msg.get("error"):
            w.status, w.error = "failed", str(msg["error"])
        return True


@contextlib.contextmanager
def ray_senders(address: str | None, workers: int) -> Iterator[Callable[[], Any] | None]:
    """The sender factory for ``run_sweep``: None (this process) without ``address``, else one
    :class:`RaySender` over ``workers`` Ray workers for every point, closed (and a Ray this
    call started, stopped) at the end."""
    if address is None:
        yield None
        return
    started = connect_ray(address, workers)
    sender = RaySender(workers)
    try:
        yield lambda: sender
    finally:
        sender.close()
        if started:
            import ray

            ray.shutdown()
