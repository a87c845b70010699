"""``inferplan bench serve``: a rate or concurrency sweep against one server, each point a
run in the results database, with server telemetry beside the client's records."""

from __future__ import annotations

import asyncio
import os
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inferplan.bench.client import BenchConfig, Prompt, RequestRecord, run_load
from inferplan.bench.http import PooledTransport
from inferplan.bench.prompts import TokenCounter, load_dataset, synthetic_prompts
from inferplan.bench.selfcheck import scheduling_lag_warning
from inferplan.bench.store import ResultsStore
from inferplan.bench.summary import summarize_records
from inferplan.bench.telemetry import scrape_loop
from inferplan.errors import InputError
from inferplan.perf.metrics import Slo
from inferplan.perf.workload import Arrivals

__all__ = ["PointResult", "ServeSpec", "machine_description", "run_sweep"]


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
    timeout_s: float = 120.0
    burstiness: float = 1.0
    max_concurrency: int | None = None
    ignore_eos: bool = True
    slo: Slo = field(default_factory=Slo)

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


@dataclass(frozen=True, slots=True)
class PointResult:
    run_id: int
    arrivals: Arrivals
    summary: dict[str, Any]
    warning: str | None
    telemetry: bool


def machine_description() -> dict[str, Any]:
    return {
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "client": "inferplan",
    }


async def _prompts(spec: ServeSpec, transport: PooledTransport, n: int, seed: int) -> tuple[list[Prompt], bool]:
    if spec.dataset is not None:
        return load_dataset(spec.dataset, spec.osl, n), False
    return await synthetic_prompts(n, (spec.isl, spec.osl), seed, TokenCounter(transport, spec.url, spec.model))


async def run_sweep(
    spec: ServeSpec, store: ResultsStore, progress: Callable[[int, RequestRecord], None] | None = None
) -> list[PointResult]:
    """Run every point of the sweep; records are stored as they complete. On interruption the
    current run is marked 'interrupted' with a summary of what was measured."""
    results = []
    for arrivals in spec.points():
        cfg = BenchConfig(
            spec.url,
            spec.model,
            arrivals,
            spec.endpoint,
            spec.timeout_s,
            spec.duration_s,
            spec.seed,
            spec.ignore_eos,
            max_concurrency=spec.max_concurrency,
        )
        helper = PooledTransport(spec.url)
        prompts, exact = await _prompts(spec, helper, spec.num_requests + spec.warmup, spec.seed)
        if spec.warmup:
            warm = BenchConfig(
                spec.url,
                spec.model,
                Arrivals("concurrency", concurrency=min(spec.warmup, 8)),
                spec.endpoint,
                spec.timeout_s,
                ignore_eos=spec.ignore_eos,
            )
            await run_load(warm, prompts[: spec.warmup], lambda _: None)
        config = {
            "ignore_eos": spec.ignore_eos,
            "arrivals": asdict(arrivals),
            "isl": spec.isl,
            "osl": spec.osl,
            "endpoint": spec.endpoint,
            "num_requests": spec.num_requests,
            "warmup": spec.warmup,
            "seed": spec.seed,
            "exact_prompt_tokens": exact,
            "dataset": str(spec.dataset) if spec.dataset else None,
            "duration_s": spec.duration_s,
            "timeout_s": spec.timeout_s,
        }
        run_id = store.start_run("serve", config, machine_description(), spec.url, spec.model)
        records: list[RequestRecord] = []

        def on_record(rec: RequestRecord, run_id: int = run_id, records: list[RequestRecord] = records) -> None:
            store.add_request(run_id, rec)
            records.append(rec)
            if progress:
                progress(run_id, rec)

        def on_sample(t_s: float, values: dict[str, float], run_id: int = run_id) -> None:
            store.add_telemetry(run_id, t_s, values)

        stop = asyncio.Event()
        scraper = asyncio.create_task(scrape_loop(helper, spec.url, on_sample, stop))
        try:
            await run_load(cfg, prompts[spec.warmup :], on_record)
        except BaseException:
            store.finish_run(run_id, "interrupted", summarize_records(records, spec.slo) if records else None)
            raise
        finally:
            stop.set()
            has_metrics = await scraper
            await helper.aclose()
        summary = summarize_records(records, spec.slo)
        warning = scheduling_lag_warning(records)
        summary["warning"] = warning
        store.finish_run(run_id, "complete", summary)
        results.append(PointResult(run_id, arrivals, summary, warning, has_metrics))
    return results
