"""Workloads: arrival processes and request lengths, each with its own seeded RNG.

Arrival processes: offline (all at t=0), Poisson at a rate, gamma (bursty, coefficient of
variation ``cv``), fixed concurrency (closed loop, arrivals made by the simulator), or a
trace file. Lengths: fixed, uniform within a range, or lognormal with a mean and cv.
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

__all__ = ["Arrivals", "LengthDist", "Load", "Requests", "Workload", "load_trace", "make_requests"]


@dataclass(frozen=True, slots=True)
class LengthDist:
    """Token lengths: 'fixed' (mean), 'uniform' (mean +- spread), 'lognormal' (mean, cv)."""

    mean: int
    kind: str = "fixed"
    spread: int = 0
    cv: float = 0.0
    minimum: int = 1
    maximum: int = 10_000_000

    def __post_init__(self) -> None:
        if not 1 <= self.mean <= MAX_INPUT_TOKENS:
            raise InputError(f"token length must be between 1 and {MAX_INPUT_TOKENS:,}, got {self.mean}")
        if not 0.0 <= self.cv <= 10.0:
            raise InputError(f"length spread must be between 0 and 10, got {self.cv}")
        if self.kind not in ("fixed", "uniform", "lognormal"):
            raise InputError(f"length distribution '{self.kind}': use fixed, uniform or lognormal")

    def sample(self, rng: random.Random, n: int) -> np.ndarray:
        if self.kind == "fixed":
            values = np.full(n, self.mean, dtype=np.int64)
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
    input_tokens: LengthDist
    output_tokens: LengthDist
    arrivals: Arrivals
    num_requests: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.num_requests <= 10_000_000:
            raise InputError(f"number of requests must be between 1 and 10,000,000, got {self.num_requests}")
        if not 0 <= self.seed < 2**63:
            raise InputError(f"--seed must be between 0 and 2^63, got {self.seed}")


@dataclass(frozen=True, slots=True)
class Requests:
    """Requests to serve. ``cached_tokens``: prompt tokens whose KV arrives with the request (a
    disaggregated decode pool receives the prefill pool's KV); None: none."""

    arrival_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    cached_tokens: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.arrival_s)

    def every(self, start: int, step: int) -> Requests:
        """Requests ``start``, ``start + step``, ... (one engine's share, round-robin)."""
        cached = self.cached_tokens[start::step] if self.cached_tokens is not None else None
        return Requests(
            self.arrival_s[start::step], self.input_tokens[start::step], self.output_tokens[start::step], cached
        )


def make_requests(w: Workload) -> Requests:
    """Draw the requests of a workload; arrivals and each length use separate seeded RNGs."""
    arrival_rng = random.Random(w.seed)
    input_rng = random.Random(w.seed + 1)
    output_rng = random.Random(w.seed + 2)
    return Requests(
        w.arrivals.times(arrival_rng, w.num_requests),
        w.input_tokens.sample(input_rng, w.num_requests),
        w.output_tokens.sample(output_rng, w.num_requests),
    )


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
