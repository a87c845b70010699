"""validate as a general tool: names through the resolver, the engine from its column, every
load condition, the KV policy, skips that name the column, --strict, and groupings."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from inferplan.cli import app
from inferplan.perf.measurement import Measurement, parse_load, parse_metric, setup_row
from inferplan.perf.validate import summarize, validate_rows

COLUMNS = [
    "id", "source_key", "engine", "engine_version", "model", "weight_precision", "kv_cache_precision", "gpu",
    "num_gpus", "tp", "pp", "isl", "osl", "batch_or_concurrency", "load_condition", "metric", "value", "unit",
    "scope", "notes",
]  # fmt: skip

BASE = {
    "id": "1",
    "source_key": "test",
    "engine": "vLLM",
    "engine_version": "0.11.0",
    "model": "meta-llama/Llama-3.1-8B-Instruct",
    "weight_precision": "BF16",
    "kv_cache_precision": "not stated",
    "gpu": "NVIDIA H100 80GB HBM3",
    "num_gpus": "1",
    "tp": "1",
    "pp": "1",
    "isl": "512",
    "osl": "64",
    "batch_or_concurrency": "",
    "load_condition": "offline, 200 requests",
    "metric": "output_token_throughput",
    "value": "5000",
    "unit": "tokens/s",
    "scope": "",
    "notes": "",
}


def row(**changes: str) -> Measurement:
    fields = BASE | changes
    return Measurement(fields["id"], fields)


def write_csv(path: Path, rows: list[Measurement]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow(r.fields)
    return path


@pytest.mark.parametrize(
    ("condition", "batch", "kind"),
    [
        ("offline max throughput, infinite request rate, 3000 requests", "max", "offline"),
        ("static batch, peak throughput", "64", "static"),
        ("online serving, request rate QPS=4, 500 requests", "", "poisson"),
        ("closed loop, concurrency 16, 200 requests", "", "concurrency"),
        ("max QPS with TTFT p90 < 500 ms", "", "max-rate"),
        ("batch size 1, single output token", "1", "batch1"),
        ('"under light load"', "", "batch1"),
    ],
)
def test_every_load_condition_is_read(condition: str, batch: str, kind: str) -> None:
    assert parse_load(condition, batch).kind == kind


def test_metrics_and_percentiles_are_read() -> None:
    assert parse_metric("ttft_p90", "ms").statistic == "p90"
    assert parse_metric("TTFT median", "s").statistic == "p50"
    assert parse_metric("itl_mean", "ms").kind == "itl"
    assert parse_metric("decode_tokens_per_s", "tokens/s").kind == "decode_speed"


def test_names_resolve_and_kv_policy_is_marked_assumed() -> None:
    setup = setup_row(row())
    d = setup.deployment
    assert (d.model.name, d.gpu.id, d.engine.name, d.kv_dtype.name) == ("llama-3.1-8b", "h100-sxm", "vllm", "bf16")
    assert any("KV precision not stated" in a for a in setup.assumptions)
    nvidia = setup_row(
        row(weight_precision="FP8 (nvidia/Llama-3.1-8B-Instruct-FP8)", engine="TensorRT-LLM", engine_version="1.0")
    )
    assert nvidia.deployment.kv_dtype.name == "fp8" and nvidia.deployment.engine.name == "trtllm-pytorch"
    assert any("ModelOpt" in a for a in nvidia.assumptions)


def test_engine_comes_from_the_engine_column() -> None:
    assert setup_row(row(engine="SGLang")).deployment.engine.name == "sglang"
    assert setup_row(row(engine="vLLM", engine_version="0.5.3")).deployment.engine.name == "vllm-v0"


def test_loads_are_predicted_and_skips_name_the_column() -> None:
    rows = [
        row(id="1"),
        row(id="2", load_condition="online serving, request rate QPS=2, 100 requests", metric="ttft_p90", unit="ms"),
        row(id="3", load_condition="closed loop, concurrency 8, 64 requests", metric="tpot_mean", unit="ms"),
        row(id="4", load_condition="max QPS with TTFT p90 < 2 s, 100 requests", metric="max qps", unit="req/s"),
        row(id="5", gpu="NVIDIA A10G"),
        row(id="6", engine=""),
        row(id="7", load_condition="a mystery load"),
    ]
    out = validate_rows(rows)
    predicted = {o.row.id: o.predicted for o in out}
    assert all(predicted[i] is not None and predicted[i] > 0 for i in "1234")
    reasons = {o.row.id: o.skipped for o in out}
    assert reasons["5"].startswith("column 'gpu'") and "A10G" in reasons["5"]
    assert reasons["6"].startswith("column 'engine'")
    assert reasons["7"].startswith("column 'load_condition'")
    by_engine = summarize(out, ("category", "engine_profile"))
    assert any(g.key == ("offline throughput", "vllm") for g in by_engine)


def test_strict_fails_on_skips_and_tables_split_by_gpu_and_engine(tmp_path: Path) -> None:
    runner = CliRunner()
    good = write_csv(tmp_path / "good.csv", [row()])
    result = runner.invoke(app, ["validate", str(good), "--strict", "--json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert d["by_gpu"][0]["group"] == ["offline throughput", "h100-sxm"]
    assert d["by_engine"][0]["group"] == ["offline throughput", "vllm"]
    bad = write_csv(tmp_path / "bad.csv", [row(), row(id="2", gpu="NVIDIA T4")])
    result = runner.invoke(app, ["validate", str(bad), "--strict"])
    assert result.exit_code == 1 and "skipped (--strict)" in result.stderr


def test_write_accuracy_table(tmp_path: Path) -> None:
    runner = CliRunner()
    good = write_csv(tmp_path / "good.csv", [row()])
    target = tmp_path / "acc.yaml"
    result = runner.invoke(app, ["validate", str(good), "--no-rows", "--write-accuracy", str(target)])
    assert result.exit_code == 0, result.output
    text = target.read_text()
    assert "categories:" in text and "offline throughput" in text and "bands:" in text
