"""Unit constants and parsing of user-facing quantities.

Internally everything is SI: bytes, seconds, FLOP/s. GB = 1e9 bytes, GiB = 2**30 bytes.
"""

from __future__ import annotations

import math
import re

from inferplan.errors import InputError

__all__ = [
    "GB",
    "GIB",
    "MIB",
    "TB",
    "counted",
    "format_bytes",
    "format_duration",
    "parse_budget_usd_per_hour",
    "parse_bytes",
    "parse_duration_s",
]

KB = 1e3
MB = 1e6
GB = 1e9
TB = 1e12
KIB = 2**10
MIB = 2**20
GIB = 2**30

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[-+]?\d+)?)\s*(us|µs|ms|s|sec|m|min|h)?\s*$", re.I)
_DURATION_SCALE = {
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
}
_BYTES = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)?\s*$", re.I)
_BYTES_SCALE = {
    "b": 1.0,
    "kb": KB,
    "mb": MB,
    "gb": GB,
    "tb": TB,
    "kib": KIB,
    "mib": MIB,
    "gib": GIB,
    "tib": 2.0**40,
}


def parse_duration_s(text: str, *, default_unit: str = "s") -> float:
    """Parse '200ms', '1.5s', '2min' or a bare number (in ``default_unit``) into seconds."""
    match = _DURATION.match(str(text))
    if not match:
        raise InputError(f"cannot read duration '{text}': write a number with a unit, e.g. 200ms or 1.5s")
    value = float(match.group(1))
    unit = (match.group(2) or default_unit).lower()
    seconds = value * _DURATION_SCALE[unit]
    if not math.isfinite(seconds):
        raise InputError(f"duration '{text}' is too long to be a number; write e.g. 200ms or 1.5s")
    if seconds <= 0:
        raise InputError(f"duration '{text}' must be positive")
    return seconds


def parse_bytes(text: str, *, default_unit: str = "gb") -> float:
    """Parse '80GB', '79.2GiB', '512MiB' or a bare number (in ``default_unit``) into bytes."""
    match = _BYTES.match(str(text))
    if not match:
        raise InputError(f"cannot read size '{text}': write a number with a unit, e.g. 80GB or 79GiB")
    num_bytes = float(match.group(1)) * _BYTES_SCALE[(match.group(2) or default_unit).lower()]
    if not math.isfinite(num_bytes):
        raise InputError(f"size '{text}' is too large to be a number; write e.g. 80GB or 79GiB")
    return num_bytes


_BUDGET = re.compile(r"^\s*\$?\s*([0-9]*\.?[0-9]+)\s*(k)?\s*(?:/\s*(h|hour|hr|month|mo))?\s*$", re.I)


def parse_budget_usd_per_hour(text: str) -> float:
    """Parse '120/hour', '$50k/month' or a bare number (USD per month) into USD per hour."""
    match = _BUDGET.match(str(text))
    if not match:
        raise InputError(f"cannot read budget '{text}': write e.g. 120/hour or 50k/month")
    value = float(match.group(1)) * (1000.0 if match.group(2) else 1.0)
    per = (match.group(3) or "month").lower()
    hourly = value if per in ("h", "hour", "hr") else value / 730.0
    if not math.isfinite(hourly):
        raise InputError(f"budget '{text}' is too large to be a number; write e.g. 120/hour or 50k/month")
    if hourly <= 0:
        raise InputError(f"budget '{text}' must be positive")
    return hourly


def format_bytes(num_bytes: float, unit: str = "GiB") -> str:
    """Format bytes for display in GiB (default) or GB; the unit is always printed."""
    scale = GIB if unit == "GiB" else GB
    return f"{num_bytes / scale:,.2f} {unit}"


def format_duration(seconds: float) -> str:
    """Format seconds as ms below 1 s, else s."""
    if seconds < 1.0:
        return f"{seconds * 1e3:,.1f} ms"
    return f"{seconds:,.2f} s"


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """'1 replica', '3 replicas', '2 CPU sockets': a count and its noun, plural when not one."""
    return f"{count:,} {noun if count == 1 else (plural or noun + 's')}"
