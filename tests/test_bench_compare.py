"""Other clients' result files imported (vllm bench serve, GuideLLM, AIPerf), runs compared side
by side, and the report's sweep and comparison charts.

tests/data/clients/ holds real exports, trimmed: GuideLLM 0.8.1's benchmarks.json and AIPerf
0.13.0's profile_export_aiperf.json and profile_export.jsonl, both made against inferplan's local
server (20 ms to the first token, 5 ms between tokens, 32-word prompts, 16 tokens out, two
streams); one GuideLLM request was turned into an errored one."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from inferplan.bench.compare import parse_ref, run_figures
from inferplan.bench.import_formats import detect_format, import_result_file, read_result_file
from inferplan.bench.store import ResultsStore
from inferplan.cli import app
from inferplan.errors import ConfigError, InputError
from tests.conftest import store_simulated_run

CLIENTS = Path(__file__).parent / "data" / "clients"


def _guidellm_requests() -> list[dict[str, Any]]:
    data = json.loads((CLIENTS / "guidellm-benchmarks.json").read_text())
    return list(data["benchmarks"][0]["requests"]["successful"])


def test_guidellm_file_is_read_with_inferplans_definitions(tmp_path: Path) -> None:
    (run,) = read_result_file(CLIENTS / "guidellm-benchmarks.json")
    s = run.summary
    assert run.kind == "guidellm" and run.model == "local" and run.records == []
    assert (s["sent"], s["succeeded"], s["failed"], s["cancelled"]) == (4, 3, 1, 0)
    requests = _guidellm_requests()
    # TTFT: first token - request start; TPOT: (last - first) / (n - 1): each GuideLLM's own per-request figure
    assert s["ttft_s"]["mean"] == pytest.approx(sum(r["time_to_first_token_ms"] for r in requests) / 3e3, rel=1e-6)
    assert s["tpot_s"]["mean"] == pytest.approx(sum(r["inter_token_latency_ms"] for r in requests) / 3e3, rel=1e-6)
    assert s["itl_s"]["mean"] is None  # GuideLLM keeps no per-chunk times
    assert any("request_latency runs to the stream's end" in n for n in s["definitions"])
    assert run.machine["client"] == "guidellm" and run.machine["client_version"] == "0.8.1"
    assert run.config["strategy"]["streams"] == 2


def test_aiperf_records_are_read_from_the_per_request_export() -> None:
    (run,) = read_result_file(CLIENTS / "profile_export_aiperf.json")
    rows = [json.loads(line) for line in (CLIENTS / "profile_export.jsonl").read_text().splitlines()]
    assert run.kind == "aiperf" and len(run.records) == 3
    for rec, row in zip(run.records, rows, strict=True):
        m = row["metrics"]
        assert rec.ttft_s == pytest.approx(m["time_to_first_token"]["value"] / 1e3)
        assert rec.gaps_s() == pytest.approx([g / 1e3 for g in m["inter_chunk_latency"]["value"]])
        assert rec.tpot_s == pytest.approx(m["inter_token_latency"]["value"] / 1e3)  # AIPerf's ITL is TPOT
        assert rec.e2e_s == pytest.approx(m["request_latency"]["value"] / 1e3)
        assert rec.output_tokens == 16 and rec.tokens_source == "usage"  # it ran with --use-server-token-count
    (alone,) = read_result_file(CLIENTS / "profile_export.jsonl")  # the JSON lines on their own
    assert [r.ttft_s for r in alone.records] == [r.ttft_s for r in run.records]


def test_aiperf_aggregates_alone(tmp_path: Path) -> None:
    shutil.copy(CLIENTS / "profile_export_aiperf.json", tmp_path)
    (run,) = read_result_file(tmp_path / "profile_export_aiperf.json")
    data = json.loads((CLIENTS / "profile_export_aiperf.json").read_text())
    s = run.summary
    assert run.records == [] and s["sent"] == s["succeeded"] == 16
    assert s["ttft_s"]["p90"] == pytest.approx(data["time_to_first_token"]["p90"] / 1e3)
    assert s["tpot_s"]["mean"] == pytest.approx(data["inter_token_latency"]["avg"] / 1e3)
    assert s["itl_s"]["p99"] == pytest.approx(data["inter_chunk_latency"]["p99"] / 1e3)
    assert s["request_throughput_per_s"] == pytest.approx(data["request_throughput"]["avg"])


def test_vllm_summary_without_detailed_arrays(tmp_path: Path) -> None:
    path = tmp_path / "vllm.json"
    fields = {"backend": "vllm", "model_id": "m", "completed": 9, "failed": 1, "duration": 2.0}
    fields |= {"mean_ttft_ms": 50.0, "median_ttft_ms": 48.0, "p99_ttft_ms": 90.0, "mean_tpot_ms": 8.0}
    fields |= {"request_throughput": 4.5, "output_throughput": 144.0, "max_concurrency": 4}
    path.write_text(json.dumps(fields))
    (run,) = read_result_file(path)
    s = run.summary
    assert (s["sent"], s["failed"]) == (10, 1)
    assert s["ttft_s"] == {"mean": 0.05, "p50": 0.048, "p90": None, "p99": 0.09}
    assert s["tpot_s"]["mean"] == 0.008 and s["output_token_throughput_per_s"] == 144.0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{}", "not a result file"),
        ('{"benchmarks": []}', "not a result file"),
        ("[1, 2]", "not a result file"),
        ("not json at all", "neither JSON nor JSON lines"),
        ('{"metadata": {"guidellm_version": "0.8.1"}, "benchmarks": []}', "holds no benchmark runs"),
    ],
)
def test_files_that_are_not_results_are_refused(content: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text(content)
    store = ResultsStore(tmp_path / "r.db")
    with pytest.raises(ConfigError, match=message):
        import_result_file(store, path)
    assert store.runs() == []
    store.close()


def test_detection_by_keys() -> None:
    assert detect_format({"ttfts": [], "itls": []}) == "vllm-bench"
    assert detect_format({"benchmarks": [], "metadata": {"guidellm_version": "0.8.1"}}) == "guidellm"
    assert detect_format({"aiperf_version": "0.13.0"}) == "aiperf"
    assert detect_format([{"metadata": {}, "metrics": {}}]) == "aiperf"
    assert detect_format({"schema": "inferplan.run/1"}) is None


def test_references() -> None:
    assert parse_ref("12") == ("run", 12)
    assert parse_ref("s3") == parse_ref("sweep:3") == parse_ref("SWEEP3") == ("sweep", 3)
    with pytest.raises(InputError, match="give a run id"):
        parse_ref("last")


def test_labels_say_what_ran(tmp_path: Path) -> None:
    from inferplan.bench.compare import run_label

    store = ResultsStore(tmp_path / "r.db")
    machine = {"server": {"engine": "vllm", "version": "0.32.0", "gpu": "l4"}}
    arrivals = {"kind": "concurrency", "concurrency": 8}
    fixed = store.start_run("serve", {"arrivals": arrivals, "isl": 64, "osl": 32}, machine, None, "tiny")
    data = {"arrivals": arrivals, "isl": 512, "osl": 32, "dataset": "/tmp/x/prompts.jsonl"}
    from_file = store.start_run("serve", data, machine, None, "tiny")
    assert run_label(store.run(fixed)) == "vllm 0.32.0, tiny, l4, 64/32 tokens, concurrency 8, serve"
    assert run_label(store.run(from_file)) == "vllm 0.32.0, tiny, l4, prompts from prompts.jsonl, concurrency 8, serve"
    store.close()


def _simulated(store: ResultsStore, rate: float) -> int:
    from inferplan.perf.replica import build_replica
    from inferplan.perf.simulator import simulate
    from inferplan.perf.workload import Arrivals, LengthDist, Workload, make_requests
    from inferplan.specs.deployment import Deployment
    from inferplan.specs.hardware import get_gpu
    from inferplan.specs.model_catalog import load_model
    from inferplan.specs.precision import get_kv_dtype, get_precision

    reqs = make_requests(Workload(LengthDist(512), LengthDist(128), Arrivals("poisson", rate_per_s=rate), 200, 1))
    dep = Deployment(load_model("llama-3.1-8b"), get_gpu("h100-sxm"), get_precision("bf16"), get_kv_dtype("bf16"))
    run_id = store_simulated_run(store, reqs, simulate(build_replica(dep), reqs))
    arrivals = {"kind": "poisson", "rate_per_s": rate, "cv": 1.0, "concurrency": 0}
    config = json.dumps({"arrivals": arrivals, "isl": 512, "osl": 128})
    machine = json.dumps({"server": {"engine": "vllm"}})
    store.db.execute("UPDATE runs SET config = ?, machine = ? WHERE id = ?", (config, machine, run_id))
    store.db.commit()
    store.finish_run(run_id, "complete", run_figures(store, store.run(run_id)))  # as bench serve stores it
    return run_id


def test_compare_cli_and_report_with_a_sweep(tmp_path: Path) -> None:
    """A sweep of runs a simulated H100 serving Llama 3.1 8B would give, compared and drawn with
    the predicted curve of that deployment."""
    db = tmp_path / "r.db"
    store = ResultsStore(db)
    sweep_id = store.start_sweep({"mode": "rates", "isl": 512, "osl": 128, "targets": {}}, None, "llama")
    runs = [_simulated(store, rate) for rate in (2.0, 8.0, 16.0)]
    for run_id in runs:
        store.add_to_sweep(run_id, sweep_id)
    imported = import_result_file(store, CLIENTS / "guidellm-benchmarks.json")[0]
    store.close()
    refs = [str(runs[0]), str(runs[2]), str(imported)]
    result = CliRunner().invoke(app, ["runs", "compare", *refs, "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    columns, rows = payload["columns"], {r["metric"]: r for r in payload["rows"]}
    assert [c["engine"] for c in columns] == ["vllm", "vllm", None] and columns[2]["kind"] == "guidellm"
    tput = rows["request_throughput_per_s"]
    assert tput["relative_to_first"][1] == pytest.approx(tput["values"][1] / tput["values"][0] - 1)
    assert rows["itl_p50_s"]["values"][2] is None  # GuideLLM stores no chunk times
    text = CliRunner().invoke(app, ["runs", "compare", str(runs[0]), f"s{sweep_id}", "--db", str(db)])
    assert text.exit_code == 0 and re.search(r"\([+-]\d+\.\d%\)", text.stdout)
    assert f"sweep {sweep_id} knee" in text.stdout
    bad = CliRunner().invoke(app, ["runs", "compare", "x1", "--db", str(db)])
    assert bad.exit_code == 2 and "give a run id" in bad.output
    out = tmp_path / "report.html"
    args = ["report", "llama-3.1-8b", "--gpus", "h100-sxm", "--rate", "2", "-o", str(out), "--db", str(db)]
    args += ["--sweep", str(sweep_id), "--runs-on", "gpu=h100-sxm,tp=1,dtype=bf16"]
    args += ["--compare", f"{runs[0]},s{sweep_id}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    for chart in ("sweep_ttft", "sweep_tpot", "sweep_goodput", "compare_ttft", "compare_tpot", "compare_itl"):
        assert f'data-chart="{chart}"' in html
    assert "predicted: h100-sxm TP1" in html and f"Sweep {sweep_id}</h2>" in html and "Runs compared</h2>" in html


def test_the_predicted_curve_runs_through_simulated_points(tmp_path: Path) -> None:
    """Points a simulated deployment produced lie near the steady-state curve of that deployment."""
    from inferplan.bench.sweep import load_sweep
    from inferplan.plan.question import Demand
    from inferplan.plan.search import steady_state_curve
    from inferplan.specs.deployment import Deployment
    from inferplan.specs.hardware import get_gpu
    from inferplan.specs.model_catalog import load_model
    from inferplan.specs.precision import get_kv_dtype, get_precision

    store = ResultsStore(tmp_path / "r.db")
    sweep_id = store.start_sweep({"isl": 512, "osl": 128, "targets": {}}, None, "llama")
    run_id = _simulated(store, 4.0)
    store.add_to_sweep(run_id, sweep_id)
    view = load_sweep(store, sweep_id)
    store.close()
    (point,) = view.points
    dep = Deployment(load_model("llama-3.1-8b"), get_gpu("h100-sxm"), get_precision("bf16"), get_kv_dtype("bf16"))
    (op,) = steady_state_curve(dep, Demand(512, 128, rate_per_s=4.0), [point.achieved_per_s])
    tpot = point.figures["tpot_p90_s"]
    assert tpot is not None and math.isfinite(op.tpot_p90_s)
    assert tpot == pytest.approx(op.tpot_p90_s, rel=0.3)
