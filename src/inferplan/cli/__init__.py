"""The ``inferplan`` command line: parse, call the library, render. No logic lives here.

Exit codes: 0 success; 1 other inferplan error; 2 bad input or malformed file; 3 unknown
name; 4 unsupported model; 5 does not fit; 6 infeasible targets; 7 offline; 8 a measurement
could not be made; 130 interrupted. Every error is one line on stderr, whether the command
runs from the console entry point (:func:`main`) or from typer's test runner: the group class
below handles usage errors, a closed pipe and a bug the same way for both.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click
import typer
from typer.core import TyperGroup

from inferplan.cli.bench import bench_app
from inferplan.cli.bench_gpu import bench_gpu
from inferplan.cli.calibrate import calibrate_cmd
from inferplan.cli.common import print_error
from inferplan.cli.deploy import deploy, ui
from inferplan.cli.perf import predict, validate
from inferplan.cli.planning import cost, plan, report
from inferplan.cli.runs import runs_app
from inferplan.cli.sizing import fit, gpus, models
from inferplan.cli.sweep import bench_sweep

__all__ = ["app", "main"]

#: Set to 1 to see the traceback of an unexpected error (a bug) instead of its one line.
TRACEBACK_ENV = "INFERPLAN_TRACEBACK"


def _click_classes(name: str) -> tuple[type[BaseException], ...]:
    """click's exception class ``name`` and typer's own copy of it (newer typers vendor click)."""
    found: set[type[BaseException]] = {getattr(click.exceptions, name)}
    found |= {c for c in typer.BadParameter.__mro__ if c.__name__ == name}
    return tuple(found)


_USAGE_ERRORS = _click_classes("UsageError")
_CLICK_ERRORS = _click_classes("ClickException")
_ABORTS: tuple[type[BaseException], ...] = (*_click_classes("Abort"), typer.Abort)


def _usage_line(exc: BaseException) -> str:
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path.partition(" ")[2] if ctx is not None else ""
    hint = f" (see 'inferplan {path} --help')" if path else " (see 'inferplan --help')"
    return f"{exc.format_message()}{hint}"  # type: ignore[attr-defined]


def run_one_line(call: Callable[[], Any]) -> int:
    """Run a command in click's non-standalone mode and turn every way it can end into an exit
    code, printing at most one line: a usage error (2), Ctrl-C (130), a closed pipe (0, quietly)
    or a bug (1, with a request to report it)."""
    try:
        code = call()
    except _USAGE_ERRORS as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # 'inferplan' alone prints the help
            sys.stdout.write(exc.format_message() + "\n")  # type: ignore[attr-defined]
            return 0
        print_error(_usage_line(exc))
        return 2
    except _CLICK_ERRORS as exc:
        print_error(exc.format_message())  # type: ignore[attr-defined]
        return int(getattr(exc, "exit_code", 1))
    except _ABORTS:
        return 130
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    except Exception as exc:
        if os.environ.get(TRACEBACK_ENV) == "1":
            raise
        print_error(
            f"internal error ({type(exc).__name__}: {exc}); please report it with the command you ran "
            f"({TRACEBACK_ENV}=1 shows the traceback)"
        )
        return 1
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
    return code if isinstance(code, int) else 0


class OneLineGroup(TyperGroup):
    """The top-level group: standalone runs (the console script, typer's CliRunner) go through
    :func:`run_one_line`; a closed stdout inside a command ends it quietly."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        def call() -> Any:
            return super(OneLineGroup, self).main(args, prog_name, complete_var, False, **extra)

        if not standalone_mode:
            return call()
        sys.exit(run_one_line(call))

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:  # 'inferplan ... | head': the reader has all it wanted
            _quiet_stdout()
            raise typer.Exit(0) from None


app = typer.Typer(
    name="inferplan",
    help="Size, predict, plan, cost and measure LLM inference deployments.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=OneLineGroup,
)
app.command()(fit)
app.command()(models)
app.command()(gpus)
app.command()(predict)
app.command("validate")(validate)
app.command()(plan)
app.command("report")(report)
app.command()(cost)
app.command()(deploy)
app.command()(ui)
bench_app.command("sweep")(bench_sweep)
bench_app.command("gpu")(bench_gpu)
app.add_typer(bench_app, name="bench")
app.add_typer(runs_app, name="runs")
app.command("calibrate")(calibrate_cmd)


def main() -> None:
    """Console entry point: every error one line, Ctrl-C exit 130, ``inferplan ... | head``
    ends quietly with exit 0; text that the terminal cannot encode is escaped, not a crash."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    app()


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail on a closed pipe."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # not a real file (a test runner's buffer)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
