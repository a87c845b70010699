"""Shared pieces of the terminal output: rich tables and number formats."""

from __future__ import annotations

import math

from rich.table import Table

from inferplan.units import GIB

__all__ = ["gib", "money", "ms", "num", "table"]


def gib(num_bytes: float) -> str:
    return f"{num_bytes / GIB:,.2f}"


def ms(seconds: float | None, digits: int = 1) -> str:
    """Seconds as milliseconds, or '-' where there is no figure."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    return f"{seconds * 1e3:,.{digits}f}"


def num(x: float | None, spec: str = ",.2f", scale: float = 1.0) -> str:
    """A number in ``spec`` (times ``scale``), or '-' where there is none."""
    if x is None or not math.isfinite(x):
        return "-"
    return format(x * scale, spec)


def money(x: float | None, digits: int = 0) -> str:
    return f"${x:,.{digits}f}" if x is not None and math.isfinite(x) else "-"


def table(title: str, columns: list[str], rows: list[list[str]], caption: str = "") -> Table:
    """A rich table with right-aligned numeric columns after the first."""
    t = Table(title=title, caption=caption or None, title_justify="left", caption_justify="left")
    for i, col in enumerate(columns):
        t.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*row)
    return t
