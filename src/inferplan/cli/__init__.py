"""The ``inferplan`` command line: parse, call the library, render. No logic lives here.

Exit codes: 0 success; 1 other inferplan error; 2 bad input or malformed file; 3 unknown
name; 4 unsupported model; 5 does not fit; 6 infeasible targets; 7 offline; 8 a measurement
could not be made. Every error is one line on stderr.
"""

from __future__ import annotations

import os
import sys

import click
import typer

from inferplan.cli.bench import bench_app
from inferplan.cli.calibrate import calibrate_cmd
from inferplan.cli.common import print_error
from inferplan.cli.deploy import deploy, ui
from inferplan.cli.perf import predict, validate
from inferplan.cli.planning import cost, plan, report
from inferplan.cli.runs import runs_app
from inferplan.cli.sizing import fit, gpus, models
from inferplan.cli.sweep import bench_sweep

__all__ = ["app", "main"]

app = typer.Typer(
    name="inferplan",
    help="Size, predict, plan, cost and measure LLM inference deployments.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
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
app.add_typer(bench_app, name="bench")
app.add_typer(runs_app, name="runs")
app.command("calibrate")(calibrate_cmd)


def main() -> None:
    """Console entry point: usage errors as one line (exit 2), Ctrl-C as exit 130, a closed
    pipe (``inferplan ... | head``) ends quietly with exit 0."""
    try:
        code = app(standalone_mode=False)
    except click.exceptions.UsageError as exc:
        hint = f" (see 'inferplan {exc.ctx.command_path.partition(' ')[2]} --help')" if exc.ctx else ""
        print_error(f"{exc.format_message()}{hint}".replace("\n", " "))
        sys.exit(2)
    except click.exceptions.Abort:
        sys.exit(130)
    except BrokenPipeError:
        _quiet_stdout()
        sys.exit(0)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
    sys.exit(code if isinstance(code, int) else 0)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail on a closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
