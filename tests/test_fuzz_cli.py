"""Fuzz the command line: random commands with hostile and edge values for every numeric and
named option, and hostile config files as the model. Run in-process through the same group
class as the console script (usage errors, closed pipes and bugs handled as `inferplan` does).
Seeded (derandomize), bounded in cases and time. Fails on any traceback, an undocumented exit
code, an error of more than one line, NaN or Infinity in any output, or --json that a strict
parser refuses."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from inferplan.cli import app
from tests.fuzzing import ADVERSARIAL_CONFIGS, COUNTS, allowed_tokens, check_cli_answer

COMMAND = typer.main.get_command(app)  # built once: typer builds it anew on every CliRunner.invoke
RUNNER = CliRunner()

NUMBER_EDGES = [
    "0",
    "-1",
    "-0",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "1e400",
    "-1e400",
    "1e-400",
    "9" * 400,
    "1.5",
    "4096.5",
    "4096.0",
    "true",
    "",
    " ",
    "0x10",
    "1_000",
    "2147483648",
    "99999999999999999999",
    "abc",
]
EDGES = st.sampled_from(NUMBER_EDGES)


def ints(low: int, high: int) -> st.SearchStrategy[str]:
    """A whole number in range half the time, an edge or garbage the other half."""
    return st.integers(low, high).map(str) | EDGES | st.integers(-(10**12), 10**12).map(str)


def floats(low: float, high: float) -> st.SearchStrategy[str]:
    return st.floats(low, high).map(repr) | EDGES | st.floats(allow_nan=True, allow_infinity=True).map(repr)


DURATIONS = st.sampled_from(["200ms", "1.5s", "50ms", "20s", "2min"]) | st.sampled_from(
    [*NUMBER_EDGES, "0s", "-5ms", "1e400s", "nan ms", "9" * 400 + "ms", "5 parsecs", "1e-9ms", "100000h"]
)
BYTES = st.sampled_from(["80GB", "1.5GiB", "2TB", "512MiB"]) | st.sampled_from(
    [*NUMBER_EDGES, "0GB", "1e400GB", "9" * 400 + "TiB", "-1GB", "99999999TB"]
)
BUDGETS = st.sampled_from(["120/hour", "50k/month", "5/h"]) | st.sampled_from(
    [*NUMBER_EDGES, "$0", "1e400/hour", "9" * 400, "-5/hour", "1/fortnight"]
)
SETTINGS = st.builds(
    lambda k, v: f"{k}={v}",
    st.sampled_from(["usd_per_kwh", "pue", "gpu_load", "amortisation_months", "jitter_loss", "cpu_overhead", "nope"]),
    floats(0, 3),
) | st.sampled_from(["pue", "=", "pue=", "=1", "PUE=1.2", "pue=1=2", "jitter_loss=0.2", "usd_per_kwh=0.2"])
GPUS = st.sampled_from(["l4", "h100", "b200", "mi300x", "h100-sxm:3g.40gb", "h900", "", ",", "l4,l4", "A100 80GB"])
PRECISIONS = st.sampled_from(["auto", "bf16", "fp8", "int4", "fp3", "", "fp8,int4", "nvfp4"])
NAMES = st.sampled_from(["vllm", "sglang", "magic", "", "[red]x[/red]", "a\nb", "x" * 300, "x" * 5000]) | st.text(
    max_size=6
)
ENVS = st.sampled_from(["bare-metal", "vm", "vgpu", "mig:3g.40gb", "mig:", "moon", ""])
PORTS = st.sampled_from(["0", "-1", "65536", "99999", "nan", "1e400", "abc", "", "8000.5"])

OPTIONS: dict[str, dict[str, Any]] = {
    "fit": {
        "--count": ints(1, 8),
        "--tp": ints(1, 8),
        "--pp": ints(1, 4),
        "--dtype": PRECISIONS,
        "--kv-dtype": PRECISIONS,
        "--context": ints(1, 200_000),
        "--concurrency": ints(1, 512),
        "--engine": NAMES,
        "--gpu-memory-utilization": floats(0.05, 1.0),
        "--max-num-batched-tokens": ints(16, 65_536),
        "--max-num-seqs": ints(1, 1024),
        "--block-size": st.sampled_from(["8", "16", "32", "128"]) | EDGES,
        "--non-torch": BYTES,
        "--json": None,
    },
    "predict": {
        "--isl": ints(1, 20_000),
        "--osl": ints(1, 2000),
        "--rate": floats(0.01, 100),
        "--concurrency": ints(1, 64),
        "--offline": ints(1, 64),
        "--num-requests": ints(1, 50),
        "--burstiness": floats(0.1, 10),
        "--length-dist": st.sampled_from(["fixed", "uniform", "lognormal", "zipf"]),
        "--length-cv": floats(0, 1),
        "--tp": ints(1, 8),
        "--dp": ints(1, 4),
        "--env": ENVS,
        "--env-set": SETTINGS,
        "--ttft": DURATIONS,
        "--tpot": DURATIONS,
        "--e2e": DURATIONS,
        "--seed": ints(0, 2**32 - 1),
        "--calibration": NAMES,
        "--json": None,
    },
    "plan": {
        "--isl": ints(1, 100_000),
        "--osl": ints(1, 10_000),
        "--rate": floats(0.01, 1000),
        "--concurrency": ints(1, 10_000),
        "--ttft": DURATIONS,
        "--tpot": DURATIONS,
        "--e2e": DURATIONS,
        "--min-throughput": floats(1, 1e6),
        "--budget": BUDGETS,
        "--gpus": GPUS,
        "--dtypes": PRECISIONS,
        "--kv-dtypes": PRECISIONS,
        "--engine": NAMES,
        "--env": ENVS,
        "--env-set": SETTINGS,
        "--cost-set": SETTINGS,
        "--rank": st.sampled_from(["cost", "latency", "gpus", "speed"]),
        "--top": ints(1, 50),
        "--hours-fraction": floats(0.01, 1),
        "--peak-to-mean": floats(1, 10),
        "--calibration": NAMES,
        "--json": None,
        "--markdown": None,
    },
    "cost": {
        "--tp": ints(1, 8),
        "--pp": ints(1, 4),
        "--dtype": PRECISIONS,
        "--kv-dtype": PRECISIONS,
        "--isl": ints(1, 100_000),
        "--osl": ints(1, 10_000),
        "--rate": floats(0.01, 1000),
        "--ttft": DURATIONS,
        "--tpot": DURATIONS,
        "--env": ENVS,
        "--hours-fraction": floats(0.01, 1),
        "--peak-to-mean": floats(1, 10),
        "--cost-set": SETTINGS,
        "--json": None,
    },
    "deploy": {
        "--engine": st.sampled_from(["vllm", "sglang", "trtllm"]),
        "--format": st.sampled_from(["shell", "compose", "k8s", "yaml"]),
        "--count": ints(1, 8),
        "--tp": ints(1, 8),
        "--dp": ints(1, 4),
        "--context": ints(256, 131_072),
        "--concurrency": ints(1, 256),
        "--max-num-batched-tokens": ints(16, 65_536),
        "--port": ints(1, 65_535),
        "--wait": DURATIONS,
        "--model-id": NAMES,
    },
    "gpus": {"--min-memory": BYTES, "--json": None},
    "models": {"--moe": None, "--dense": None, "--json": None},
    "ui": {"--port": PORTS},
}
#: What each command needs besides its options; MODEL is replaced by the model under test.
BASE = {
    "fit": ["fit", "MODEL", "--gpu", "l4"],
    "predict": ["predict", "MODEL", "--gpu", "h100", "--num-requests", "8"],
    "plan": ["plan", "MODEL", "--gpus", "l4", "--verify", "0"],
    "cost": ["cost", "MODEL", "--gpu", "l4"],
    "deploy": ["deploy", "MODEL", "--gpu", "h100", "--concurrency", "4", "--context", "2048"],
    "gpus": ["gpus"],
    "models": ["models"],
    "ui": ["ui", "--host", "127.0.0.1"],  # --port always given, and never a valid one (the UI would serve)
}
MODELS = [
    "qwen3-0.6b",
    "llama-3.1-8b",
    "mixtral-8x7b",
    "deepseek-v2-lite",
    "no-such-model",
    "",
    "FOLDER",
    "MISSING",
    "x" * 5000,
    "../..",
    "/",
    "[red]llama[/red]",
    "a\nb",
]


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("configs")
    for name, raw in ADVERSARIAL_CONFIGS.items():
        (folder / f"{name}.json").write_bytes(raw)
    (folder / "model").mkdir()
    (folder / "model" / "config.json").write_bytes(ADVERSARIAL_CONFIGS["nan"])
    return folder


@pytest.fixture(autouse=True, scope="module")
def offline() -> Iterator[None]:
    """No hub download is ever attempted from the fuzz."""
    old = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    yield
    if old is None:
        del os.environ["HF_HUB_OFFLINE"]
    else:
        os.environ["HF_HUB_OFFLINE"] = old


class CaseTimeout(BaseException):
    """A command ran past its time (a BaseException: no handler of the CLI may swallow it)."""


def _alarm(signum: int, frame: Any) -> None:
    raise CaseTimeout


def run_cli(args: list[str], limit_s: float = 60.0) -> tuple[int, str, str]:
    """The command as the console script runs it, in-process, within ``limit_s``."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit_s)
    try:
        with RUNNER.isolation() as (out, err, _):
            try:
                COMMAND.main(args=args, prog_name="inferplan")
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            finally:
                stdout, stderr = out.getvalue(), err.getvalue()
    except CaseTimeout:
        raise AssertionError(f"{args} ran for more than {limit_s:g} s") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return code, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace")


@st.composite
def commands(draw: st.DrawFn, config_dir: Path) -> list[str]:
    name = draw(st.sampled_from(sorted(OPTIONS)))
    model = draw(st.sampled_from([*MODELS, *(str(config_dir / f"{n}.json") for n in ADVERSARIAL_CONFIGS)]))
    model = {"FOLDER": str(config_dir / "model"), "MISSING": str(config_dir / "missing.json")}.get(model, model)
    args = [model if a == "MODEL" else a for a in BASE[name]]
    table = OPTIONS[name]
    chosen = draw(st.lists(st.sampled_from(sorted(table)), min_size=1 if name == "ui" else 0, max_size=4, unique=True))
    for option in chosen:
        strategy = table[option]
        args += [option] if strategy is None else [option, draw(strategy)]
    if name == "predict" and not {"--rate", "--concurrency", "--offline"} & set(chosen):
        args += ["--rate", "2"]  # predict needs a load; without one every case would stop there
    return args


def _config_text(args: list[str]) -> bytes:
    """The hostile config file the command names, if any (its words may be quoted back)."""
    for arg in args:
        path = Path(arg)
        with contextlib.suppress(OSError):
            if arg and path.is_dir():
                path = path / "config.json"
            if arg and path.is_file():
                return path.read_bytes()[:10_000]
    return b""


CASES = 1000
BUDGET_S = 150.0


def test_cli_fuzz(config_dir: Path) -> None:
    """{CASES} random commands: every one ends in an answer or one clear line."""
    before, started = COUNTS["cli cases"], time.monotonic()

    @settings(
        max_examples=CASES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(commands(config_dir))
    def one(args: list[str]) -> None:
        code, stdout, stderr = run_cli(args)
        check_cli_answer(args, code, stdout, stderr, allowed_tokens(*args, _config_text(args)))

    one()
    ran = COUNTS["cli cases"] - before
    assert ran >= CASES, f"only {ran} cases ran"
    assert time.monotonic() - started < BUDGET_S


@pytest.mark.parametrize("name", sorted(ADVERSARIAL_CONFIGS))
def test_hostile_config_files_end_in_one_line(config_dir: Path, name: str) -> None:
    """Each hostile config.json: exit 2 and one line that names the file."""
    path = config_dir / f"{name}.json"
    code, stdout, stderr = run_cli(["fit", str(path), "--gpu", "l4", "--json"])
    check_cli_answer(["fit", str(path)], code, stdout, stderr, allowed_tokens(path.read_bytes()[:10_000]))
    assert code == 2, stderr
    assert str(path) in stderr.replace("\n", "")


HOSTILE_TRACES = {
    "non_utf8": b"\xff\xfe\x00arrival_s",
    "nan_arrival": b"arrival_s,input_tokens,output_tokens\nnan,100,10\n",
    "infinite_arrival": b"arrival_s,input_tokens,output_tokens\n1e400,100,10\n",
    "huge_tokens": b"arrival_s,input_tokens,output_tokens\n0," + b"9" * 400 + b",10\n",
    "decimal_tokens": b"arrival_s,input_tokens,output_tokens\n0,100.5,10\n",
    "empty": b"",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_TRACES))
def test_hostile_trace_files_end_in_one_line(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.csv"
    path.write_bytes(HOSTILE_TRACES[name])
    args = ["predict", "qwen3-0.6b", "--gpu", "h100", "--trace", str(path), "--json"]
    code, stdout, stderr = run_cli(args)
    check_cli_answer(args, code, stdout, stderr, allowed_tokens(HOSTILE_TRACES[name]))
    assert code == 2 and str(path) in stderr


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe", b"", b"id,value\n1,2\n"],
)
def test_hostile_measurement_files_end_in_one_line(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(raw)
    code, stdout, stderr = run_cli(["validate", str(path)])
    check_cli_answer(["validate", str(path)], code, stdout, stderr, set())
    assert code == 2 and str(path) in stderr
