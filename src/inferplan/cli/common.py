"""Helpers every CLI module shares: one-line errors with exit codes, JSON output, the console."""

from __future__ import annotations

import errno
import functools
import math
import sys
from collections.abc import Callable
from typing import Annotated, ParamSpec, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape

from inferplan.errors import InferplanError, InputError
from inferplan.present.payload import to_json_text
from inferplan.present.text import one_line
from inferplan.units import parse_duration_s

__all__ = [
    "JsonOpt",
    "csv_list",
    "duration_ms",
    "emit_json",
    "err",
    "handles_errors",
    "one_line",
    "out",
    "parse_settings",
    "print_error",
]


class _Console(Console):
    """rich's console, except that a closed pipe raises BrokenPipeError (which ends the command
    quietly with exit 0, see :mod:`inferplan.cli`) instead of exiting with 1."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, "the reader closed the pipe")


out = _Console(soft_wrap=False, width=120)
err = _Console(stderr=True)
P = ParamSpec("P")
R = TypeVar("R")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (schema in docs/json.md).")]


def print_error(message: str) -> None:
    """One line on stderr; the message is text, never markup (install hints keep their [extras])."""
    err.print(f"[red]error:[/red] {escape(one_line(message))}", highlight=False, soft_wrap=True)


def handles_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Print an InferplanError as one line on stderr and exit with its code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except InferplanError as exc:
            print_error(str(exc))
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def emit_json(payload: BaseModel) -> None:
    """A payload as JSON on stdout (never NaN or Infinity)."""
    sys.stdout.write(to_json_text(payload))


def csv_list(text: str | None) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()] if text else []


def duration_ms(text: str | None, default_unit: str = "ms") -> float | None:
    """'200ms', '1.5s' or a bare number (in ``default_unit``) as milliseconds."""
    return parse_duration_s(text, default_unit=default_unit) * 1e3 if text else None


def parse_settings(items: list[str], option: str, example: str) -> dict[str, float]:
    """``NAME=NUMBER`` items (repeatable options such as --env-set) as a dict."""
    values: dict[str, float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not sep or not math.isfinite(number):
            raise InputError(f"{option} '{item}': write NAME=NUMBER with a finite number, e.g. {example}")
        values[key.strip()] = number
    return values
