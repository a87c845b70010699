"""bench gpu on this machine's CPU (labelled as such), stored, and usable by calibrate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from inferplan.bench.store import ResultsStore
from inferplan.cli import app

torch = pytest.importorskip("torch", reason="the gpu extra (torch==2.13.0) is installed by .ci/run")


def test_bench_gpu_quick_on_cpu(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    result = CliRunner().invoke(app, ["bench", "gpu", "--quick", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert d["device"]["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    names = {m["name"] for m in d["measurements"]}
    assert {"gemm_tflops", "memory_bandwidth_gb_s", "disk_read_gb_s", "allreduce_busbw_gb_s"} <= names
    assert all(m["value"] > 0 for m in d["measurements"])
    gemm = [m for m in d["measurements"] if m["name"] == "gemm_tflops"]
    assert {m["params"]["dtype"] for m in gemm} >= {"bf16", "fp32"}
    store = ResultsStore(db)
    assert store.run(d["run_id"]).kind == "gpu"
    assert len(store.measurements(d["run_id"])) == len(d["measurements"])
    store.close()


def test_bench_gpu_reads_a_given_file(tmp_path: Path) -> None:
    big = tmp_path / "weights.bin"
    big.write_bytes(b"\0" * (4 << 20))
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "gpu",
            "--quick",
            "--disk-file",
            str(big),
            "--world-size",
            "1",
            "--db",
            str(tmp_path / "r.db"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    disk = [m for m in json.loads(result.stdout)["measurements"] if m["name"] == "disk_read_gb_s"]
    assert disk[0]["params"]["bytes"] == 4 << 20
    missing = CliRunner().invoke(
        app, ["bench", "gpu", "--disk-file", str(tmp_path / "none"), "--db", str(tmp_path / "r.db")]
    )
    assert missing.exit_code == 2 and "is not a file" in missing.stderr
