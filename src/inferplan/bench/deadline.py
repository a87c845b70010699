"""The limits on one network exchange: connecting, waiting for the first byte of the response,
silence between two reads, and the whole exchange. :class:`Deadline` enforces them on one
``asyncio.timeout`` that it moves as the exchange goes from phase to phase, so a phase
limit costs nothing when it is no tighter than the whole-exchange limit."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass

from inferplan.errors import InputError

__all__ = ["PHASES", "Deadline", "Timeouts", "bounded"]

PHASES = ("connect", "first_byte", "idle")
MAX_TIMEOUT_S = 3600.0


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds; a phase limit of None is the whole-exchange limit."""

    total_s: float = 120.0
    connect_s: float | None = 10.0
    first_byte_s: float | None = None
    idle_s: float | None = None

    def __post_init__(self) -> None:
        for name, value in (
            ("--timeout", self.total_s),
            ("--connect-timeout", self.connect_s),
            ("--first-byte-timeout", self.first_byte_s),
            ("--idle-timeout", self.idle_s),
        ):
            if value is not None and not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT_S):
                raise InputError(f"{name} must be between 0 and {MAX_TIMEOUT_S:g} s, not {value:g} s")

    def phase_s(self, phase: str) -> float | None:
        """The phase's own limit, or None where the whole-exchange limit is as tight."""
        limit = {"connect": self.connect_s, "first_byte": self.first_byte_s, "idle": self.idle_s}[phase]
        return limit if limit is not None and limit < self.total_s else None

    def capped(self, total_s: float) -> Timeouts:
        """The same limits, none over ``total_s`` (for probes and scrapes)."""
        cap = min(self.total_s, total_s)
        return Timeouts(
            cap, *(None if x is None else min(x, cap) for x in (self.connect_s, self.first_byte_s, self.idle_s))
        )


class Deadline:
    """Where one exchange is, and which limit will end it."""

    __slots__ = ("_cm", "_limits", "binding", "end", "loop", "phase", "timeouts")

    def __init__(self, timeouts: Timeouts, cm: asyncio.Timeout) -> None:
        self.loop = asyncio.get_running_loop()
        self.timeouts = timeouts
        self.end = self.loop.time() + timeouts.total_s
        self._cm = cm
        self._limits = {p: timeouts.phase_s(p) for p in PHASES}
        self.phase = "connect"
        self.binding = "total"
        cm.reschedule(self.end)

    def enter(self, phase: str) -> None:
        """The exchange starts waiting for ``phase`` (one of :data:`PHASES`)."""
        self.phase = phase
        limit = self._limits[phase]
        if limit is not None:
            when = self.loop.time() + limit
            if when < self.end:
                self._cm.reschedule(when)
                self.binding = phase
                return
        if self.binding != "total":
            self._cm.reschedule(self.end)
            self.binding = "total"

    def outcome(self) -> tuple[str, str]:
        """(error kind, one-line detail) once the timeout fired."""
        if self.binding == "total":
            return "timeout", f"no complete response within {self.timeouts.total_s:g} s (--timeout)"
        limit = self._limits[self.binding]
        flag = {"connect": "--connect-timeout", "first_byte": "--first-byte-timeout", "idle": "--idle-timeout"}
        what = {"connect": "no connection", "first_byte": "no response", "idle": "no bytes"}[self.binding]
        return f"{self.binding}_timeout", f"{what} within {limit:g} s ({flag[self.binding]})"


@contextlib.asynccontextmanager
async def bounded(timeouts: Timeouts) -> AsyncIterator[Deadline]:
    """``async with bounded(t) as deadline:`` raises TimeoutError when a limit passes."""
    async with asyncio.timeout(None) as cm:
        yield Deadline(timeouts, cm)
