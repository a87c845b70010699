"""``inferplan bench serve``: a rate or concurrency sweep against one server, each point a
run in the results database, with server telemetry beside the client's records.

Nothing measured is lost: records are written off the event loop as they complete
(:mod:`inferplan.bench.writer`), requests in flight at an interruption are recorded as
cancelled, and every run ends in a final status: ``complete`` (every request succeeded),
``partial`` (some failed), ``failed`` (none succeeded) or ``interrupted``. A sweep stops
early when a point could not reach the server at all.

Who sends the load is a :class:`Sender`: this process (:class:`LocalSender`, the default) or
Ray workers on other machines (:class:`inferplan.bench.distributed.RaySender`); the run's
storage, telemetry and summary are the same for both.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import os
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from inferplan.bench.cache_counters import cache_counters, counter_increase
from inferplan.bench.client import BenchConfig, run_load
from inferplan.bench.deadline import Timeouts
from inferplan.bench.distortion import client_lags, distortion_warning
from inferplan.bench.http import PooledTransport
from inferplan.bench.loop import LoopLag, loop_name
from inferplan.bench.multiturn import Session, SessionTraffic, make_sessions, run_sessions
from inferplan.bench.prompts import PROBE_TIMEOUT_S, TokenCounter, dataset_prompts, shared_prefixes, synthetic_prompts
from inferplan.bench.record import Prompt, RequestRecord
from inferplan.bench.server_info import probe_server
from inferplan.bench.store import ResultsStore
from inferplan.bench.summary import final_status, summarize_records
from inferplan.bench.telemetry import Scraper
from inferplan.bench.writer import RecordWriter, WriterReport
from inferplan.errors import InputError
from inferplan.perf.datasets import TOKENS_PER_WORD
from inferplan.perf.metrics import Slo
from inferplan.perf.sessions import TrafficShape
from inferplan.perf.workload import Arrivals

__all__ = [
    "LocalSender",
    "PointResult",
    "Sender",
    "ServeSpec",
    "machine_description",
    "public_url",
    "run_point",
    "run_sweep",
]

UNREACHABLE = frozenset({"connection", "connect_timeout"})


@dataclass(frozen=True, slots=True)
class ServeSpec:
    url: str
    model: str
    rates: tuple[float, ...] = ()
    concurrencies: tuple[int, ...] = ()
    isl: int = 512
    osl: int = 128
    dataset: Path | None = None
    num_requests: int = 200
    duration_s: float | None = None
    warmup: int = 0
    seed: int = 0
    endpoint: str = "completions"
    timeouts: Timeouts = field(default_factory=Timeouts)
    burstiness: float = 1.0
    max_concurrency: int | None = None
    ignore_eos: bool = True
    slo: Slo = field(default_factory=Slo)
    headers: tuple[tuple[str, str], ...] = ()  # an API key, extra headers: sent, never stored
    # issue 13: sessions and shared prompts, requests spread over adapters (model names), no KV reuse
    traffic: TrafficShape | None = None
    adapters: tuple[str, ...] = ()
    isolate_cache: bool = False
    tokens_per_word: float = TOKENS_PER_WORD
    server_gpu: str | None = None  # the server's GPU as the user named it (a label: no server tells it)
    telemetry: bool = True  # scrape the server's /metrics during the run

    @property
    def shaped(self) -> bool:
        """Whether requests go out as sessions (multi-turn, shared prompts, adapters, own cache salt)."""
        return self.traffic is not None or bool(self.adapters) or self.isolate_cache

    @property
    def shape(self) -> TrafficShape:
        return self.traffic or TrafficShape()

    def __post_init__(self) -> None:
        if bool(self.rates) == bool(self.concurrencies):
            raise InputError("give exactly one of --rate R[,R...] or --concurrency C[,C...]")
        if not 1 <= self.num_requests <= 1_000_000:
            raise InputError("--num-requests must be between 1 and 1,000,000")
        if self.warmup < 0 or self.warmup > 10_000:
            raise InputError("--warmup must be between 0 and 10,000")

    def points(self) -> list[Arrivals]:
        if self.rates:
            return [
                Arrivals("poisson" if self.burstiness == 1.0 else "gamma", rate_per_s=r, cv=self.burstiness)
                for r in self.rates
            ]
        return [Arrivals("concurrency", concurrency=c) for c in self.concurrencies]

    def config(self, arrivals: Arrivals) -> BenchConfig:
        return BenchConfig(
            self.url,
            self.model,
            arrivals,
            self.endpoint,
            self.timeouts,
            self.duration_s,
            self.seed,
            self.ignore_eos,
            self.max_concurrency,
            self.headers,
        )

    def stored(self, arrivals: Arrivals, exact: bool) -> dict[str, Any]:
        """The settings kept with the run: header names only, never their values."""
        return {
            "ignore_eos": self.ignore_eos,
            "arrivals": asdict(arrivals),
            "isl": self.isl,
            "osl": self.osl,
            "endpoint": self.endpoint,
            "num_requests": self.num_requests,
            "warmup": self.warmup,
            "seed": self.seed,
            "exact_prompt_tokens": exact,
            "dataset": str(self.dataset) if self.dataset else None,
            "tokens_per_word": self.tokens_per_word if self.dataset else None,
            "duration_s": self.duration_s,
            "timeouts": asdict(self.timeouts),
            "headers": sorted({name.lower() for name, _ in self.headers}),
            "telemetry": self.telemetry,
        }


@dataclass(frozen=True, slots=True)
class PointResult:
    run_id: int
    arrivals: Arrivals
    summary: dict[str, Any]
    warning: str | None
    telemetry: bool
    status: str = "complete"
    storage: WriterReport | None = None
    spill_file: Path | None = None  # records or the final status the database could not take

    @property
    def unreachable(self) -> bool:
        s = self.summary
        return s["sent"] > 0 and s["succeeded"] == 0 and set(s["failures"]) <= UNREACHABLE


class Sender(Protocol):
    """Sends one point's requests and hands each finished record to ``on_record``; what it
    knows of its own delays stays readable after an interruption."""

    async def send(self, cfg: BenchConfig, prompts: list[Prompt], on_record: Callable[[RequestRecord], None]) -> None:
        """Send every prompt; every sent request reaches ``on_record`` exactly once."""

    def loop_lags_s(self) -> list[float]:
        """How late the sending event loop(s) ran their timers."""

    def report(self) -> dict[str, Any]:
        """What the sender adds to the run's summary (e.g. its workers); empty for one process."""

    def incomplete(self) -> bool:
        """True when part of the load could not be sent or reported (a worker died)."""


class LocalSender:
    """The load from this process, on its own event loop."""

    def __init__(self) -> None:
        self._lag = LoopLag()

    async def send(self, cfg: BenchConfig, prompts: list[Prompt], on_record: Callable[[RequestRecord], None]) -> None:
        self._lag.start()
        try:
            await run_load(cfg, prompts, on_record)
        finally:
            self._lag.stop()

    def loop_lags_s(self) -> list[float]:
        return self._lag.lags_s()

    def report(self) -> dict[str, Any]:
        return {}

    def incomplete(self) -> bool:
        return False


class SessionSender(LocalSender):
    """Issue 13's shaped traffic from this process: sessions whose turns wait for the replies
    before them, shared prompts, adapters; the prompts were dealt into ``sessions`` already."""

    def __init__(self, traffic: SessionTraffic, sessions: list[Session]) -> None:
        super().__init__()
        self._traffic, self._sessions = traffic, sessions

    async def send(self, cfg: BenchConfig, prompts: list[Prompt], on_record: Callable[[RequestRecord], None]) -> None:
        del prompts  # dealt into the sessions
        self._lag.start()
        try:
            await run_sessions(cfg, self._traffic, self._sessions, on_record)
        finally:
            self._lag.stop()


def public_url(url: str) -> str:
    """The URL as stored and printed: no user name, password, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    return urlunsplit((parts.scheme, netloc + (f":{parts.port}" if parts.port else ""), parts.path, "", ""))


def machine_description() -> dict[str, Any]:
    return {
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "client": "inferplan",
        "event_loop": loop_name(),
    }


def _counter(spec: ServeSpec, transport: PooledTransport) -> TokenCounter:
    root = spec.config(spec.points()[0]).root
    return TokenCounter(transport, root, spec.model, spec.timeouts.capped(PROBE_TIMEOUT_S))


async def _prompts(spec: ServeSpec, transport: PooledTransport, n: int) -> tuple[list[Prompt], bool]:
    counter = _counter(spec, transport)
    if spec.dataset is not None:
        return await dataset_prompts(spec.dataset, n, (spec.seed, spec.tokens_per_word), counter)
    return await synthetic_prompts(n, (spec.isl, spec.osl), spec.seed, counter)


async def _traffic(spec: ServeSpec, transport: PooledTransport) -> SessionTraffic:
    """The shared prompts (their tokens counted by the server where it can) and the adapters."""
    shape = spec.shape
    texts, counts = await shared_prefixes(shape, spec.seed, _counter(spec, transport))
    return SessionTraffic(shape, texts, counts, spec.adapters, spec.isolate_cache)


async def run_sweep(
    spec: ServeSpec,
    store: ResultsStore,
    progress: Callable[[int, RequestRecord], None] | None = None,
    sender: Callable[[], Sender] = LocalSender,
) -> list[PointResult]:
    """Run every point of the sweep; records are stored as they complete. ``sender`` makes
    the sender of each point."""
    store.require_writable()
    results: list[PointResult] = []
    for arrivals in spec.points():
        results.append(await run_point(spec, store, arrivals, progress, Point(sender())))
        if results[-1].unreachable:
            break  # the next points would fail the same way
    return results


@dataclass(frozen=True, slots=True)
class Point:
    """How one point is sent and where it is filed: its sender, and the sweep it belongs to."""

    sender: Sender = field(default_factory=LocalSender)
    sweep_id: int | None = None


async def run_point(
    spec: ServeSpec,
    store: ResultsStore,
    arrivals: Arrivals,
    progress: Callable[[int, RequestRecord], None] | None = None,
    point: Point | None = None,
) -> PointResult:
    """One point at ``arrivals``: warm-up, then a run stored as it goes."""
    point = point or Point()
    cfg = spec.config(arrivals)
    helper = cfg.transport()
    turns = spec.shape.turns
    measured = math.ceil(spec.num_requests / turns) * turns if spec.shaped else spec.num_requests
    try:
        prompts, exact = await _prompts(spec, helper, measured + spec.warmup)
        if spec.warmup:
            warm = BenchConfig(
                cfg.url,
                cfg.model,
                Arrivals("concurrency", concurrency=min(spec.warmup, 8)),
                cfg.endpoint,
                cfg.timeouts,
                ignore_eos=cfg.ignore_eos,
                headers=cfg.headers,
            )
            await run_load(warm, prompts[: spec.warmup], lambda _: None)
        server = await probe_server(helper, cfg.root, spec.timeouts) | {"gpu": spec.server_gpu}
        machine = machine_description() | {"server": server}
        stored = spec.stored(arrivals, exact)
        sender = point.sender
        if spec.shaped:  # issue 13: sessions, shared prompts, adapters
            if not isinstance(sender, LocalSender):
                raise InputError(
                    "--multi-turn, --shared-prefix, --lora-adapters and --isolate-cache send from one process "
                    "(each turn waits for the reply before it); drop --ray/--workers for such traffic"
                )
            traffic = await _traffic(spec, helper)
            sessions = make_sessions(traffic, prompts[spec.warmup :], spec.seed)
            stored["traffic"] = traffic.stored(sessions)
            sender = SessionSender(traffic, sessions)
        run_id = store.start_run("serve", stored, machine, public_url(spec.url), spec.model)
        if point.sweep_id is not None:
            store.add_to_sweep(run_id, point.sweep_id)
        return await _measure(spec, store, (run_id, cfg, helper, sender), prompts[spec.warmup :], progress)
    finally:
        await helper.aclose()


async def _measure(
    spec: ServeSpec,
    store: ResultsStore,
    run: tuple[int, BenchConfig, PooledTransport, Sender],
    prompts: list[Prompt],
    progress: Callable[[int, RequestRecord], None] | None,
) -> PointResult:
    run_id, cfg, helper, sender = run
    writer = RecordWriter(store.path, run_id, store.lock_wait_s)
    records: list[RequestRecord] = []

    def on_record(rec: RequestRecord) -> None:
        writer.add_request(rec)
        records.append(rec)
        if progress:
            progress(run_id, rec)

    before = await cache_counters(helper, cfg.root, spec.timeouts)  # issue 13: the server's hit counters
    scraper = Scraper(helper, cfg.root, writer.add_telemetry, spec.timeouts)
    if not spec.telemetry:
        scraper.available, scraper.error = False, "not scraped (--no-telemetry)"
    stop = asyncio.Event()
    scraping = asyncio.create_task(scraper.run(stop))
    status, after = "interrupted", None
    gc.collect()
    gc.freeze()  # a collection during the run walks only what the run made, not every loaded module
    try:
        await sender.send(cfg, prompts, on_record)
        status = final_status(records)
        if sender.incomplete():  # a worker died: what it had not reported was never measured
            status = "partial" if any(r.ok for r in records) else "failed"
        after = await cache_counters(helper, cfg.root, spec.timeouts)
    finally:
        gc.unfreeze()
        stop.set()
        scraping.cancel()  # a scrape in flight is dropped, not waited for
        with contextlib.suppress(asyncio.CancelledError):
            await scraping
        storage = writer.close()
        summary = summarize_records(records, spec.slo)
        summary |= {"client": client_lags(sender.loop_lags_s(), records), "telemetry": scraper.summary()}
        summary |= sender.report()
        summary["prefix_cache"] = counter_increase(before, after)
        summary["warning"] = distortion_warning(summary)
        summary["storage"] = {"written": storage.written, "spilled": storage.spilled, "lost": storage.lost}
        spill = store.finish_run(run_id, status, summary)
    return PointResult(
        run_id,
        cfg.arrivals,
        summary,
        summary["warning"],
        scraper.samples > 0,
        status,
        storage,
        spill or storage.spill_file,
    )
