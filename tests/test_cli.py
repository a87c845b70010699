"""The CLI through typer's runner: tables, JSON round-trips, one-line errors and exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from inferplan.cli import app


def test_fit_table(runner: CliRunner) -> None:
    result = runner.invoke(
        app,
        [
            "fit",
            "llama-3.1-70b",
            "--gpu",
            "h100-sxm",
            "--count",
            "4",
            "--context",
            "8192",
            "--concurrency",
            "32",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "FITS" in result.output and "KV cache" in result.output
    assert "Rule of thumb" in result.output and "eager" in result.output


def test_fit_json_round_trips(runner: CliRunner) -> None:
    result = runner.invoke(app, ["fit", "llama-3.1-8b", "--gpu", "h100", "--json"])
    assert result.exit_code == 0
    payload = json.loads(result.stdout)
    assert payload["schema"] == "inferplan.fit/1"
    assert json.loads(json.dumps(payload)) == payload
    g = payload["per_gpu"]
    parts = g["weights_bytes"] + g["activation_peak_bytes"] + g["logits_bytes"] + g["non_torch_bytes"]
    assert abs(parts + g["kv_cache_bytes"] - g["budget_bytes"]) <= 4
    assert payload["verdict"]["fits"] is True
    contexts = [row["context_tokens"] for row in payload["context_growth"]]
    assert contexts == sorted(contexts) and contexts[-1] == 131072


def test_fit_does_not_fit_exits_5_and_suggests(runner: CliRunner) -> None:
    result = runner.invoke(app, ["fit", "llama-3.1-70b", "--gpu", "h100-sxm", "--json"])
    assert result.exit_code == 5
    payload = json.loads(result.stdout)
    assert payload["verdict"]["fits"] is False
    assert payload["verdict"]["suggestion"]["num_gpus"] == 2


def test_fit_config_file(runner: CliRunner, tiny_config_file: Path) -> None:
    result = runner.invoke(app, ["fit", str(tiny_config_file), "--gpu", "l4", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["per_gpu"]["kv_bytes_per_token"] == 2 * 2 * 2 * 16 * 2


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["fit", "llama-3.1-7b", "--gpu", "h100"], 3, "Did you mean"),
        (["fit", "llama-3.1-8b", "--gpu", "h1000"], 3, "unknown GPU"),
        (["fit", "llama-3.1-8b", "--gpu", "h100", "--tp", "3"], 2, "does not divide"),
        (["fit", "llama-3.1-8b", "--gpu", "h100", "--dtype", "int3"], 2, "unknown precision"),
        (["fit", "llama-3.1-8b", "--gpu", "h100", "--kv-dtype", "fp6"], 2, "KV-cache dtype"),
        (
            ["fit", "llama-3.1-8b", "--gpu", "h100", "--count", "4", "--tp", "3", "--pp", "1"],
            2,
            "must equal",
        ),
        (["fit", "/no/such/config.json", "--gpu", "h100"], 2, "no such file"),
        (["fit", "llama-3.1-8b", "--gpu", "h100", "--non-torch", "lots"], 2, "cannot read size"),
    ],
)
def test_fit_errors_are_one_line(runner: CliRunner, args: list[str], code: int, message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["fit", "llama-3.1-8b", "--gpu", "h100", "--context", "0"],
        ["fit", "llama-3.1-8b", "--gpu", "h100", "--concurrency", "-3"],
        ["fit", "llama-3.1-8b", "--gpu", "h100", "--gpu-memory-utilization", "1.7"],
    ],
)
def test_out_of_range_numbers_are_refused(runner: CliRunner, args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_models_and_gpus(runner: CliRunner) -> None:
    result = runner.invoke(app, ["models", "--json"])
    rows = json.loads(result.stdout)["models"]
    assert len(rows) >= 20 and all(r["total_params"] > 0 for r in rows)
    moe = json.loads(runner.invoke(app, ["models", "--moe", "--json"]).stdout)["models"]
    assert moe and all(r["moe"] for r in moe)
    result = runner.invoke(app, ["gpus", "--min-memory", "100GB", "--json"])
    ids = {g["id"] for g in json.loads(result.stdout)["gpus"]}
    assert "h200-sxm" in ids and "h100-sxm" not in ids
    assert "llama-3.1-8b" in runner.invoke(app, ["models", "llama"]).output
    assert "mi300x" in runner.invoke(app, ["gpus"]).output


@pytest.mark.parametrize(
    ("search", "ids"),
    [
        ("H100 SXM", {"h100-sxm"}),  # as people write it, not only the id's substring
        ("NVIDIA H100 80GB HBM3", {"h100-sxm"}),  # nvidia-smi's name, through the resolver
        ("Xeon Platinum 8480+", {"xeon-8480plus"}),  # a CPU socket by its name
    ],
)
def test_gpus_finds_devices_by_the_names_people_write(runner: CliRunner, search: str, ids: set[str]) -> None:
    result = runner.invoke(app, ["gpus", search, "--json"])
    assert result.exit_code == 0, result.output
    assert {g["id"] for g in json.loads(result.stdout)["gpus"]} == ids


def test_gpus_lists_cpu_sockets_on_request(runner: CliRunner) -> None:
    plain = json.loads(runner.invoke(app, ["gpus", "--json"]).stdout)["gpus"]
    assert plain and {g["device"] for g in plain} == {"gpu"}
    every = json.loads(runner.invoke(app, ["gpus", "--cpus", "--json"]).stdout)["gpus"]
    cpus = {g["id"] for g in every if g["device"] == "cpu"}
    assert {"xeon-8480plus", "epyc-9654"} <= cpus and len(every) == len(plain) + len(cpus)
    table = runner.invoke(app, ["gpus", "epyc"]).output
    assert "CPU sockets" in table and "epyc-9654" in table and "GPU catalog" not in table
    missing = runner.invoke(app, ["gpus", "no-such-device"])
    assert missing.exit_code != 0 and "no catalog device matches 'no-such-device'" in missing.output
    assert "Traceback" not in missing.output


ENTRY_POINT = Path(sys.executable).with_name("inferplan")


def _console_command() -> list[str]:
    """The installed console script when there is one, else the same main() through python -c."""
    if ENTRY_POINT.is_file():
        return [str(ENTRY_POINT)]
    return [sys.executable, "-c", "from inferplan.cli import main; main()"]


@pytest.mark.parametrize("args", [["models"], ["gpus", "--json"], ["fit", "llama-3.1-8b", "--gpu", "h100"]])
def test_a_closed_pipe_ends_quietly_with_exit_0(args: list[str]) -> None:
    """`inferplan ... | head`: the reader is gone before the first write; no message, exit 0."""
    proc = subprocess.Popen([*_console_command(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    with proc.stderr:
        stderr = proc.stderr.read()
    assert proc.wait(timeout=60) == 0 and stderr == b""


def test_the_console_script_prints_one_line_for_bad_options() -> None:
    """Typer's own parameter errors, range errors and unknown options: one line each, exit 2."""
    for args, words in (
        (["plan", "llama-3.1-8b", "--isl", "abc"], "Invalid value for '--isl'"),
        (["fit", "llama-3.1-8b", "--gpu", "h100", "--context", "0"], "--context must be between 1"),
        (["plan", "llama-3.1-8b", "--nope"], "No such option: --nope"),
        (["cost", "llama-3.1-8b", "--gpu", "l4", "--cost-set", "pue=inf"], "finite number"),
    ):
        done = subprocess.run([*_console_command(), *args], capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 2, done.stderr
        assert done.stdout == "" and len(done.stderr.splitlines()) == 1 and words in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["plan", "llama-3.1-8b", "--isl", "abc"], "Invalid value for '--isl'"),
        (["plan", "llama-3.1-8b", "--isl", "1.5"], "Invalid value for '--isl'"),
        (["calibrate", "1", "--name", "x", "--model", "m", "--gpu", "g", "--tp", "0"], "Invalid value for '--tp'"),
        (["fit"], "Missing argument"),
        (["runs", "nope"], "No such command 'nope'"),
        (["plan", "llama-3.1-8b", "--gpus", "l4", "--min-throughput", "nan"], "finite number"),
        (["plan", "llama-3.1-8b", "--gpus", "l4", "--min-throughput", "inf"], "finite number"),
        (["plan", "llama-3.1-8b", "--gpus", "l4", "--min-throughput", "-1"], "greater than 0"),
        (["plan", "llama-3.1-8b", "--gpus", "l4", "--ttft", "1e400"], "too long to be a number"),
        (["plan", "llama-3.1-8b", "--gpus", "l4", "--ttft", "nan"], "cannot read duration"),
        (["cost", "llama-3.1-8b", "--gpu", "l4", "--cost-set", "usd_per_kwh=nan"], "finite number"),
        (["cost", "llama-3.1-8b", "--gpu", "l4", "--cost-set", "pue=inf"], "finite number"),
        (["fit", "llama-3.1-8b", "--gpu", "h100", "--gpu-memory-utilization", "nan"], "finite number"),
        (["fit", "llama-3.1-8b", "--gpu", "h100", "--max-num-seqs", "0"], "--max-num-seqs must be between"),
        (["fit", "llama-3.1-8b", "--gpu", "h100", "--count", "9" * 400], "a number of 400 digits"),
        (["fit", "llama-3.1-8b", "--gpu", "h100", "--non-torch", "9" * 400], "too large to be a number"),
        (["predict", "llama-3.1-8b", "--gpu", "h100", "--rate", "1", "--length-cv", "nan"], "--length-cv"),
        (["predict", "llama-3.1-8b", "--gpu", "h100", "--rate", "1", "--seed", "-1"], "--seed must be between"),
        (["deploy", "llama-3.1-8b", "--gpu", "h100", "--port", "0"], "--port must be between 1 and 65535"),
        (["deploy", "llama-3.1-8b", "--gpu", "h100", "--wait", "1e400s"], "too long to be a number"),
        (["fit", "x" * 5000, "--gpu", "h100"], "unknown model"),
        (["predict", "qwen3-0.6b", "--gpu", "h100", "--rate", "1", "--calibration", "x" * 5000], "no calibration"),
        (["fit", "[red]llama[/red]", "--gpu", "h100"], "no such file or folder: [red]llama[/red]"),
        (["fit", "a\nb", "--gpu", "h100"], "unknown model 'a\\nb'"),
    ],
)
def test_every_bad_option_is_one_line_with_exit_2_or_3(runner: CliRunner, args: list[str], words: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code in (2, 3), result.output
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1 and words in result.stderr, result.stderr


def test_install_hints_keep_their_extras(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """rich would read '[web]' as markup and print pip install 'inferplan', which installs nothing."""
    monkeypatch.setitem(sys.modules, "inferplan.present.web", None)  # as if FastAPI were missing
    result = runner.invoke(app, ["ui", "--port", "8123"])
    assert result.exit_code == 2 and "pip install 'inferplan[web]'" in result.stderr, result.stderr


def test_a_bug_is_one_line_unless_tracebacks_are_asked_for(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("inferplan.cli.sizing.load_model", broken)
    result = runner.invoke(app, ["fit", "llama-3.1-8b", "--gpu", "h100"])
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1
    assert "internal error (RuntimeError: a bug); please report it" in result.stderr
    monkeypatch.setenv("INFERPLAN_TRACEBACK", "1")
    result = runner.invoke(app, ["fit", "llama-3.1-8b", "--gpu", "h100"])
    assert isinstance(result.exception, RuntimeError)


def test_a_missing_price_is_words_never_nan(runner: CliRunner) -> None:
    """Prices missing from the catalog for b200: the text says so in words, --json says null."""
    text = runner.invoke(app, ["plan", "mixtral-8x7b", "--gpus", "b200", "--verify", "0"])
    assert text.exit_code == 0, text.output
    assert not re.search(r"(?i)(?<![\w.])-?(nan|inf|infinity)(?!\w)", text.stdout)
    assert re.search(r"(?i)\bno\b[\w -]*\bprice", text.stdout), text.stdout
    result = runner.invoke(app, ["plan", "mixtral-8x7b", "--gpus", "b200", "--verify", "0", "--json"])
    payload = json.loads(result.stdout, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert None in _leaves(payload["cost"])


def _leaves(value: object) -> list[object]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def test_the_report_of_a_plan_with_missing_prices_has_no_nan(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", "mixtral-8x7b", "--gpus", "b200", "--verify", "0", "-o", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert "<svg" in page and not re.search(r"(?i)(?<![\w.])-?(nan|inf|infinity)(?!\w)", page)
