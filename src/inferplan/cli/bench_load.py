"""Who sends a benchmark's load, and whether it can: the request headers and timeouts, the
``--ray``/``--workers``/``--gpu`` and request options shared by ``bench serve`` and ``bench sweep``, and the
warnings when the load needs more than the client processes sustain (:mod:`inferplan.bench.headroom`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from inferplan.bench.deadline import Timeouts
from inferplan.bench.headroom import (
    MEASUREMENT,
    needed_chunks_per_s,
    stored_capacity,
    took_chunks_per_s,
    worker_warning,
)
from inferplan.bench.selfcheck import SelfCheck, sustained_chunks_per_s
from inferplan.bench.serve import PointResult, ServeSpec, machine_description
from inferplan.bench.store import ResultsStore
from inferplan.cli.common import err
from inferplan.errors import InputError
from inferplan.specs.hardware import get_gpu
from inferplan.units import parse_duration_s

__all__ = [
    "ApiKeyOpt",
    "ConnectTimeoutOpt",
    "EndpointOpt",
    "HeaderOpt",
    "IgnoreEosOpt",
    "RayOpt",
    "SeedOpt",
    "ServerGpuOpt",
    "TimeoutOpt",
    "WarmupOpt",
    "WorkersOpt",
    "load_workers",
    "request_headers",
    "request_timeouts",
    "server_gpu_id",
    "store_self_check",
    "warn_after",
    "warn_before",
]

RayOpt = Annotated[
    str | None,
    typer.Option(
        "--ray",
        help="Send the load from Ray workers: 'local' (a Ray started on this machine) or a cluster's address, "
        "e.g. ray://head:10001 or auto (needs inferplan[distributed] on every node).",
    ),
]
WorkersOpt = Annotated[
    int | None, typer.Option(min=1, max=1024, help="Ray workers, each its own process and connections (default 2).")
]
ServerGpuOpt = Annotated[
    str | None, typer.Option("--gpu", help="The server's GPU, stored as a label for comparisons, e.g. H100.")
]
# The request options ``bench serve`` and ``bench sweep`` share, defined once.
WarmupOpt = Annotated[int, typer.Option(min=0, max=10_000)]
SeedOpt = Annotated[int, typer.Option()]
EndpointOpt = Annotated[str, typer.Option(help="completions or chat.")]
TimeoutOpt = Annotated[str, typer.Option(help="Whole-request limit.")]
ConnectTimeoutOpt = Annotated[str, typer.Option(help="Limit on opening a connection.")]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option(envvar="OPENAI_API_KEY", show_default=False, help="Sent as a bearer token; never stored."),
]
HeaderOpt = Annotated[
    list[str] | None, typer.Option(help="Extra request header 'Name: value' (repeatable); values never stored.")
]
IgnoreEosOpt = Annotated[bool, typer.Option(help="Ask for exactly --osl tokens (vLLM/SGLang field).")]


def load_workers(ray: str | None, workers: int | None) -> int:
    """How many processes send the load: 1 without --ray."""
    if ray is None:
        if workers is not None:
            raise InputError("--workers needs --ray ADDRESS (or --ray local), e.g. --ray local --workers 4")
        return 1
    if not ray.strip():
        raise InputError("--ray: give 'local' or the cluster's address, e.g. --ray ray://head:10001")
    return 2 if workers is None else workers


def server_gpu_id(name: str | None) -> str | None:
    """The catalog id of the GPU the user named (any spelling the catalog knows)."""
    return None if name is None else get_gpu(name).id


def _warn(message: str | None) -> None:
    if message:
        err.print(f"[yellow]warning:[/yellow] {escape(message)}", highlight=False)


def warn_before(spec: ServeSpec, store: ResultsStore, workers: int) -> float | None:
    """Warn when an open-loop rate needs more chunks per second per worker than one sustains;
    returns that capacity (None without a self-check on this machine)."""
    capacity = stored_capacity(store)
    for rate in spec.rates:
        message = worker_warning(needed_chunks_per_s(rate, spec.osl), workers, capacity, measured=False)
        if message:
            _warn(f"at {rate:g} req/s {message}")
            break
    return capacity


def warn_after(results: list[PointResult], workers: int, capacity: float | None) -> None:
    """Warn for each run whose workers each took more chunks per second than one sustains."""
    for r in results:
        s = r.summary
        took = took_chunks_per_s(int(s.get("content_chunks") or 0), float(s.get("duration_s") or 0.0))
        message = worker_warning(took, workers, capacity, measured=True)
        if message:
            _warn(f"run {r.run_id}: {message}")


def store_self_check(store: ResultsStore, points: list[SelfCheck], token_delay_s: float) -> float | None:
    """Keep the self-check in the results database (what ``bench serve`` warns against);
    returns the chunks per second one client process sustains."""
    sustained = sustained_chunks_per_s(points, token_delay_s)
    config = {"token_delay_s": token_delay_s, "concurrency": [p.concurrency for p in points]}
    run_id = store.start_run("self-check", config, machine_description())
    for p in points:
        params = {"concurrency": p.concurrency, "token_delay_s": token_delay_s, "kept_up": p.sustained(token_delay_s)}
        store.add_measurement(run_id, "chunks_per_s", p.chunks_per_s, "1/s", params)
    if sustained is not None:
        store.add_measurement(run_id, MEASUREMENT, sustained, "1/s", {"token_delay_s": token_delay_s})
    store.finish_run(run_id, "complete", {"sustained_chunks_per_s": sustained})
    return sustained


def request_headers(api_key: str | None, header: list[str] | None) -> tuple[tuple[str, str], ...]:
    """``--header 'Name: value'`` items and the API key as a bearer token."""
    pairs: list[tuple[str, str]] = []
    for item in header or []:
        name, sep, value = item.partition(":")
        if not sep or not name.strip() or any(c in name.strip() for c in " \t") or any(c in item for c in "\r\n"):
            raise InputError(f"--header '{item[:40]}': write 'Name: value', e.g. --header 'X-Team: research'")
        pairs.append((name.strip(), value.strip()))
    if api_key is not None:
        if not api_key.strip() or any(c in api_key for c in "\r\n"):
            raise InputError("--api-key (or OPENAI_API_KEY) is empty or has a line break")
        pairs.append(("Authorization", f"Bearer {api_key.strip()}"))
    return tuple(pairs)


def request_timeouts(timeout: str, connect: str, first_byte: str | None, idle: str | None) -> Timeouts:
    def seconds(text: str | None) -> float | None:
        return parse_duration_s(text) if text else None

    return Timeouts(parse_duration_s(timeout), seconds(connect), seconds(first_byte), seconds(idle))
