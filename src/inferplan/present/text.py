"""Shared pieces of the terminal output: rich tables and number formats."""

from __future__ import annotations

import math

from rich.table import Table
from rich.text import Text

from inferplan.units import GIB

__all__ = ["MISSING", "NO_PRICE", "gib", "money", "ms", "num", "one_line", "table"]


#: What a table shows where a figure does not exist (never NaN): a dash, or words that say why.
MISSING = "-"
NO_PRICE = "no price"


def _finite(x: float | None) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def gib(num_bytes: float | None) -> str:
    """Bytes as GiB, or '-' where there is no figure."""
    return num(num_bytes, ",.2f", 1 / GIB)


def ms(seconds: float | None, digits: int = 1) -> str:
    """Seconds as milliseconds, or '-' where there is no figure."""
    return num(seconds, f",.{digits}f", 1e3)


def num(x: float | None, spec: str = ",.2f", scale: float = 1.0, missing: str = MISSING) -> str:
    """A number in ``spec`` (times ``scale``), or ``missing`` where there is none (None, NaN, infinite)."""
    if not _finite(x):
        return missing
    assert x is not None
    scaled = x * scale
    return format(scaled, spec) if math.isfinite(scaled) else missing


def money(x: float | None, digits: int = 0, missing: str = MISSING) -> str:
    """Dollars, or ``missing`` where there is no figure."""
    text = num(x, f",.{digits}f", missing=missing)
    return text if text == missing else f"${text}"


def one_line(text: str) -> str:
    """``text`` on one line: line breaks and other control characters written as escapes (a
    model name with a newline in it cannot split an error message, on a terminal or in JSON)."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def table(title: str, columns: list[str], rows: list[list[str]], caption: str = "") -> Table:
    """A rich table with right-aligned numeric columns after the first. Every cell, the title and
    the caption are plain text, never markup: a name such as '[red]x' prints as written."""
    t = Table(
        title=Text(title),
        caption=Text(caption) if caption else None,
        title_justify="left",
        caption_justify="left",
    )
    for i, col in enumerate(columns):
        t.add_column(Text(col), justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*(Text(cell) for cell in row))
    return t
