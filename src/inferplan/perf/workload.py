"""Workloads: arrival processes and request lengths, each with its own seeded RNG.

Arrival processes: offline (all at t=0), Poisson at a rate, gamma (bursty, coefficient of
variation ``cv``), fixed concurrency (closed loop, arrivals made by the simulator), or a
trace file. Lengths: fixed, uniform within a range, lognormal with a mean and cv (``mu = ln(mean)
- sigma^2 / 2``, ``sigma^2 = ln(1 + cv^2)``), empirical (drawn uniformly from stated values), or a
dataset's joint (input, output) lengths (perf/datasets.py). Issue 13: multi-turn sessions, shared
system prompts and LoRA adapters (perf/sessions.py) shape the requests.
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inferplan.errors import ConfigError, InputError
from inferplan.limits import MAX_CONCURRENCY, MAX_INPUT_TOKENS, MAX_RATE_PER_S
from inferplan.perf.datasets import LengthSample
from inferplan.perf.prompt_paths import RequestLinks
from inferplan.perf.sessions import TrafficShape, shaped_requests

__all__ = ["Arrivals", "LengthDist", "Load", "Requests", "Workload", "load_trace", "make_requests"]


@dataclass(frozen=True, slots=True)
class LengthDist:
    """Token lengths: 'fixed' (mean), 'uniform' (mean +- spread), 'lognormal' (mean, cv) or
    'empirical' (drawn uniformly from ``values``; ``mean`` is their mean)."""

    mean: int
    kind: str = "fixed"
    spread: int = 0
    cv: float = 0.0
    minimum: int = 1
    maximum: int = 10_000_000
    values: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.mean <= MAX_INPUT_TOKENS:
            raise InputError(f"token length must be between 1 and {MAX_INPUT_TOKENS:,}, got {self.mean}")
        if not 0.0 <= self.cv <= 10.0:
            raise InputError(f"length spread must be between 0 and 10, got {self.cv}")
        if self.kind not in ("fixed", "uniform", "lognormal", "empirical"):
            raise InputError(f"length distribution '{self.kind}': use fixed, uniform, lognormal or empirical")
        if (self.kind == "empirical") != bool(self.values):
            raise InputError("an empirical length distribution needs its values, e.g. --isl-values 128,512,2048")
        if any(not 1 <= v <= MAX_INPUT_TOKENS for v in self.values):
            raise InputError(f"length values must be between 1 and {MAX_INPUT_TOKENS:,}")

    @staticmethod
    def empirical(values: tuple[int, ...]) -> LengthDist:
        return LengthDist(max(round(sum(values) / max(len(values), 1)), 1), "empirical", values=values)

    def describe(self) -> str:
        """The distribution with its parameters, as outputs state it."""
        if self.kind == "lognormal":
            sigma = math.sqrt(math.log(1 + self.cv**2))
            mu = math.log(self.mean) - sigma**2 / 2
            return f"lognormal, mean {self.mean:,}, cv {self.cv:g} (mu {mu:.3f}, sigma {sigma:.3f})"
        if self.kind == "uniform":
            return f"uniform {max(self.mean - self.spread, 1):,}-{self.mean + self.spread:,}"
        if self.kind == "empirical":
            shown = ", ".join(f"{v:,}" for v in self.values[:8]) + (", ..." if len(self.values) > 8 else "")
            return f"empirical over {len(self.values)} value(s) ({shown}), mean {self.mean:,}"
        return f"fixed {self.mean:,}"

    def sample(self, rng: random.Random, n: int) -> np.ndarray:
        if self.kind == "fixed":
            values = np.full(n, self.mean, dtype=np.int64)
        elif self.kind == "empirical":
            values = np.array([rng.choice(self.values) for _ in range(n)], dtype=np.int64)
        elif self.kind == "uniform":
            lo, hi = max(self.mean - self.spread, 1), self.mean + self.spread
            values = np.array([rng.randint(lo, hi) for _ in range(n)], dtype=np.int64)
        else:
            sigma = math.sqrt(math.log(1 + self.cv**2))
            mu = math.log(self.mean) - sigma**2 / 2
            values = np.array([round(rng.lognormvariate(mu, sigma)) for _ in range(n)], dtype=np.int64)
        return np.clip(values, self.minimum, self.maximum)


@dataclass(frozen=True, slots=True)
class Arrivals:
    """'offline', 'poisson' (rate_per_s), 'gamma' (rate_per_s, cv) or 'concurrency' (n)."""

    kind: str
    rate_per_s: float = 0.0
    cv: float = 1.0
    concurrency: int = 0

    def __post_init__(self) -> None:
        if self.kind in ("poisson", "gamma") and not 0 < self.rate_per_s <= MAX_RATE_PER_S:
            raise InputError(f"request rate must be in (0, {MAX_RATE_PER_S:g}] requests/s, got {self.rate_per_s}")
        if self.kind == "gamma" and not 0 < self.cv <= 100:
            raise InputError(f"burstiness cv must be in (0, 100], got {self.cv}")
        if self.kind == "concurrency" and not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise InputError(f"concurrency must be between 1 and {MAX_CONCURRENCY:,}, got {self.concurrency}")
        if self.kind not in ("offline", "poisson", "gamma", "concurrency"):
            raise InputError(f"arrival process '{self.kind}': use offline, poisson, gamma or concurrency")

    def times(self, rng: random.Random, n: int) -> np.ndarray:
        """Arrival times in seconds (all zero for offline and concurrency)."""
        if self.kind in ("offline", "concurrency"):
            return np.zeros(n)
        if self.kind == "poisson":
            gaps = [rng.expovariate(self.rate_per_s) for _ in range(n)]
        else:
            shape = 1.0 / self.cv**2
            gaps = [rng.gammavariate(shape, 1.0 / (shape * self.rate_per_s)) for _ in range(n)]
        return np.cumsum(gaps) - gaps[0]


@dataclass(frozen=True, slots=True)
class Load:
    """The load as people give it: exactly one of a request rate (Poisson, or gamma with a
    burstiness other than 1), a number of concurrent users (closed loop) or ``offline``
    requests queued at once."""

    rate_per_s: float | None = None
    concurrency: int | None = None
    offline: int | None = None
    burstiness: float = 1.0

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.rate_per_s, self.concurrency, self.offline)) != 1:
            raise InputError("give exactly one of --rate R, --concurrency C or --offline N")
        if self.offline is not None and not 1 <= self.offline <= 10_000_000:
            raise InputError(f"--offline must be between 1 and 10,000,000 requests, got {self.offline}")

    def arrivals(self) -> Arrivals:
        if self.rate_per_s is not None:
            kind = "poisson" if self.burstiness == 1.0 else "gamma"
            return Arrivals(kind, rate_per_s=self.rate_per_s, cv=self.burstiness)
        if self.concurrency is not None:
            return Arrivals("concurrency", concurrency=self.concurrency)
        return Arrivals("offline")


@dataclass(frozen=True, slots=True)
class Workload:
    """Lengths (or a dataset's joint ``lengths``: then ``input_tokens`` / ``output_tokens`` are its
    means), arrivals, and issue 13's ``shape``: sessions, shared prompts, adapters. With sessions the
    lengths are each turn's new message and reply."""

    input_tokens: LengthDist
    output_tokens: LengthDist
    arrivals: Arrivals
    num_requests: int = 1000
    seed: int = 0
    lengths: LengthSample | None = None
    shape: TrafficShape | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.num_requests <= 10_000_000:
            raise InputError(f"number of requests must be between 1 and 10,000,000, got {self.num_requests}")
        if not 0 <= self.seed < 2**63:
            raise InputError(f"--seed must be between 0 and 2^63, got {self.seed}")


@dataclass(frozen=True, slots=True)
class Requests:
    """Requests to serve. ``cached_tokens``: prompt tokens whose KV arrives with the request (a
    disaggregated decode pool receives the prefill pool's KV); None: none. Issue 13: ``links``,
    the tokens requests share and the turns they follow (an arrival of ``inf`` waits for its
    predecessor); ``adapter``: each request's LoRA adapter (-1: the base model)."""

    arrival_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    cached_tokens: np.ndarray | None = None
    links: RequestLinks | None = None
    adapter: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.arrival_s)

    def every(self, start: int, step: int) -> Requests:
        """Requests ``start``, ``start + step``, ... (one engine's share, round-robin)."""
        return self.share(start, step)[0]

    def share(self, start: int, step: int) -> tuple[Requests, np.ndarray]:
        """One engine's share and the requests' indices: round-robin by request, or by session when
        requests belong to sessions (a session stays on its engine and its prefix cache)."""
        if self.links is None:
            index = np.arange(len(self))[start::step]
        else:
            index = np.nonzero(self.links.session % step == start)[0]
        return self.subset(index), index

    def subset(self, index: np.ndarray) -> Requests:
        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return a[index] if a is not None else None

        links = self.links.subset(index) if self.links is not None else None
        return Requests(
            self.arrival_s[index],
            self.input_tokens[index],
            self.output_tokens[index],
            pick(self.cached_tokens),
            links,
            pick(self.adapter),
        )


def _lengths(w: Workload, n: int) -> tuple[np.ndarray, np.ndarray]:
    if w.lengths is not None:
        return w.lengths.draw(random.Random(w.seed + 1), n)
    return w.input_tokens.sample(random.Random(w.seed + 1), n), w.output_tokens.sample(random.Random(w.seed + 2), n)


def make_requests(w: Workload) -> Requests:
    """Draw the requests of a workload; arrivals and each length use separate seeded RNGs. With a
    shape, sessions of ``turns`` requests: ``ceil(num_requests / turns)`` of them."""
    shape = w.shape
    if shape is None or not (shape.shares_tokens or shape.adapters):
        inputs, outputs = _lengths(w, w.num_requests)
        return Requests(w.arrivals.times(random.Random(w.seed), w.num_requests), inputs, outputs)
    sessions = math.ceil(w.num_requests / shape.turns)
    arr = w.arrivals
    if arr.kind in ("poisson", "gamma"):
        arr = Arrivals(arr.kind, rate_per_s=arr.rate_per_s / shape.turns, cv=arr.cv)
    starts = arr.times(random.Random(w.seed), sessions)
    if w.arrivals.kind == "concurrency":
        starts = np.where(np.arange(sessions) < w.arrivals.concurrency, 0.0, np.inf)
    made = shaped_requests(shape, starts, _lengths(w, sessions * shape.turns), random.Random(w.seed + 3))
    return Requests(made.arrival_s, made.input_tokens, made.output_tokens, None, made.links, made.adapter)


def load_trace(path: Path) -> Requests:
    """A CSV trace with columns arrival_s, input_tokens, output_tokens (header required)."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise ConfigError(f"cannot read trace {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte offset {exc.start}); save the trace as UTF-8") from None
    if not rows:
        raise ConfigError(f"{path}: the trace has no rows")
    arrival, inp, out = [], [], []
    for line, row in enumerate(rows, start=2):
        try:
            arrival.append(float(row["arrival_s"]))
            inp.append(int(row["input_tokens"]))
            out.append(int(row["output_tokens"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"{path}, line {line}: need numeric arrival_s, input_tokens, output_tokens ({exc})"
            ) from exc
        if not (1 <= inp[-1] <= MAX_INPUT_TOKENS and 1 <= out[-1] <= MAX_INPUT_TOKENS and 0 <= arrival[-1] < 1e9):
            raise ConfigError(
                f"{path}, line {line}: lengths must be 1 to {MAX_INPUT_TOKENS:,} and arrival_s a finite number >= 0"
            )
    order = np.argsort(arrival, kind="stable")
    return Requests(np.array(arrival)[order], np.array(inp)[order], np.array(out)[order])
