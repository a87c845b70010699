"""The HTML report: every chart present, labelled with units, captioned and drawn; nothing
fetched from elsewhere; measured runs set against their replay; the CLI's errors."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from functools import cache
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from inferplan.bench.runs import StoredRun, compare_runs, parse_runs_on, runs_deployment
from inferplan.bench.store import ResultsStore
from inferplan.cli import app
from inferplan.errors import ConfigError
from inferplan.perf.replica import build_replica
from inferplan.perf.sessions import TrafficShape
from inferplan.perf.simulator import simulate
from inferplan.perf.workload import Arrivals, LengthDist, Workload, make_requests
from inferplan.plan.planner import Plan
from inferplan.plan.question import PlanQuestion
from inferplan.plan.service import answer
from inferplan.present.payload import to_json_dict
from inferplan.present.payload_plan import plan_payload
from inferplan.present.report_charts import cost_chart, report_charts
from inferplan.present.report_html import render_report_html
from inferplan.specs.deployment import Deployment
from inferplan.specs.engines import get_engine
from inferplan.specs.hardware import get_gpu
from inferplan.specs.model_catalog import load_model
from inferplan.specs.precision import get_kv_dtype, get_precision
from tests.conftest import store_simulated_run

SVG = "{http://www.w3.org/2000/svg}"
PLAN_CHARTS = ["memory", "kv_capacity", "roofline", "ttft_vs_rate", "tpot_vs_rate", "pareto", "cost"]
UNITS = ("tokens", "sequences", "ms", "s", "GiB", "USD", "months", "FLOP/byte", "TFLOP/s", "requests/s", "tokens/s")
UNIT = re.compile(r"\(([^()]*)\)")


@cache
def small_plan() -> Plan:
    question = PlanQuestion(
        model="llama-3.1-8b",
        isl=1000,
        osl=200,
        rate_per_s=4.0,
        ttft_ms=500.0,
        tpot_ms=50.0,
        gpus=["h100-sxm", "a100-sxm-80gb", "l40s"],
    )
    return answer(question, files=False)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script" and dict(attrs) == {"type": "application/json", "id": "inferplan-plan"}:
            tag = "data"  # the plan's figures as inert JSON, no code and nothing fetched
        self.tags.append(tag)
        for name, value in attrs:
            if name != "xmlns" and value and re.match(r"\s*(https?:|//|file:)", value):
                self.external.append(f"{tag} {name}={value}")


def figures(html: str) -> dict[str, tuple[str, ET.Element, str]]:
    """chart id -> (title, parsed SVG, caption) for every <figure> of the page."""
    found = re.findall(
        r'<figure id="chart-(\w+)" data-chart="\1"><h3>(.*?)</h3>(<svg.*?</svg>)<figcaption>(.*?)</figcaption>',
        html,
        re.S,
    )
    return {cid: (title, ET.fromstring(svg), caption) for cid, title, svg, caption in found}


def check_chart(cid: str, svg: ET.Element, caption: str) -> None:
    assert svg.get("data-chart") == cid
    labels = [t.text or "" for t in svg.iter(f"{SVG}text") if (t.get("class") or "").startswith("axis-label")]
    assert labels, f"{cid}: no axis titles"
    for label in labels:
        if label != "configuration":
            inside = UNIT.search(label)
            words = re.split(r"[ ,]+", inside.group(1)) if inside else []
            assert any(u in words for u in UNITS), f"{cid}: axis title '{label}' gives no unit"
    marks = svg.findall(f".//{SVG}circle") + svg.findall(f".//{SVG}rect[@class='bar']")
    paths = svg.findall(f".//{SVG}g[@class='series']/{SVG}path")
    assert marks or paths, f"{cid}: nothing drawn"
    assert caption.startswith("Read:") and len(caption) > 80, f"{cid}: caption says too little"


def test_report_has_every_chart_labelled_and_nothing_external() -> None:
    plan = small_plan()
    payload = to_json_dict(plan_payload(plan, 10))
    html = render_report_html(payload, report_charts(plan))
    parser = _Tags()
    parser.feed(html)
    assert not parser.external, parser.external
    assert not {"script", "link", "img", "iframe", "object", "embed"} & set(parser.tags)
    figs = figures(html)
    assert list(figs) == PLAN_CHARTS
    for cid, (_, svg, caption) in figs.items():
        check_chart(cid, svg, caption)
    assert 'id="recommendation"' in html and payload["recommendation"]["label"] in html
    data = re.search(r'<script type="application/json" id="inferplan-plan">(.*?)</script>', html, re.S)
    assert data is not None and json.loads(data.group(1).replace("<\\/", "</")) == payload
    assert html.count("<h3>1. VRAM floor</h3>") == 1


def test_charts_follow_the_plan() -> None:
    plan = small_plan()
    charts = {c.id: c for c in report_charts(plan)}
    chosen = plan.chosen.label()
    assert charts["memory"].svg.count('class="bar"') >= 3 * 4  # weights, KV, activations, runtime per config
    assert chosen in charts["memory"].svg and chosen in charts["kv_capacity"].svg
    ttft = ET.fromstring(charts["ttft_vs_rate"].svg)
    assert "target 500 ms" in [t.text for t in ttft.iter(f"{SVG}text")]
    assert "demand 4 req/s" in [t.text for t in ttft.iter(f"{SVG}text")]
    # the roofline's points: the prefill GEMMs are compute-bound, far right of decode's
    roof = ET.fromstring(charts["roofline"].svg)
    groups = roof.findall(f".//{SVG}g[@class='series']")
    prefill_x = max(float(c.get("cx", 0)) for c in groups[0].iter(f"{SVG}circle"))
    decode_x = max(float(c.get("cx", 0)) for c in groups[1].iter(f"{SVG}circle"))
    assert prefill_x > decode_x


def test_cumulative_cost_lines_cross_where_the_chart_marks_them() -> None:
    cost = small_plan().cost
    assert cost is not None
    assert cost.totals_usd["36_months"] == cost.cumulative_usd(36)
    crossings = cost.crossings()
    assert crossings, "the small plan's purchase overtakes some rental within 36 months"
    for month, own, other in crossings:
        at = cost.cumulative_usd(month)
        assert at[own] == pytest.approx(at[other], rel=1e-6)
        before = cost.cumulative_usd(month * 0.5)
        assert before[own] > before[other]
    chart = cost_chart(small_plan())
    assert chart is not None and "lines cross" in chart.svg and "Lines cross (dots)" in chart.caption


def simulated_run(db: Path, step_overhead_s: float) -> int:
    """A stored run that a server with this step overhead would have produced."""
    engine = replace(get_engine("vllm"), step_overhead_s=step_overhead_s)
    reqs = make_requests(Workload(LengthDist(800), LengthDist(150), Arrivals("poisson", rate_per_s=3.0), 60, 3))
    dep = Deployment(
        load_model("llama-3.1-8b"), get_gpu("h100-sxm"), get_precision("bf16"), get_kv_dtype("bf16"), engine=engine
    )
    store = ResultsStore(db)
    try:
        return store_simulated_run(store, reqs, simulate(build_replica(dep), reqs))
    finally:
        store.close()


def test_measured_runs_are_replayed_on_their_deployment(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    same = simulated_run(db, get_engine("vllm").step_overhead_s)
    slower = simulated_run(db, 0.02)
    plan = small_plan()
    where = runs_deployment(parse_runs_on("gpu=h100-sxm,tp=1,dtype=bf16,kv_dtype=bf16"), plan)
    store = ResultsStore(db)
    runs = [StoredRun(str(i), store.records(i)) for i in (same, slower)]
    store.close()
    exact, off = compare_runs(runs, where)
    assert all(abs(e) < 0.05 for e in exact.errors().values()), exact.errors()
    assert exact.label == f"run {same} on h100-sxm TP1 bf16/bf16-kv"
    assert off.errors()["tpot_mean_s"] < -0.2  # the model, not knowing the 20 ms overhead, predicts faster
    html = render_report_html(to_json_dict(plan_payload(plan, 5)), report_charts(plan, [exact, off]), [exact, off])
    figs = figures(html)
    assert list(figs) == [*PLAN_CHARTS, "measured"]
    check_chart("measured", figs["measured"][1], figs["measured"][2])
    assert "Measured against predicted</h2>" in html


def test_a_multi_turn_run_is_replayed_as_sessions(tmp_path: Path) -> None:
    """Sessions of 4 turns over 2 shared system prompts, measured on a server that behaves as
    simulated: replayed as sessions (each turn released by the one before, its conversation in the
    prefix cache) the run is predicted within 5%; as independent requests, the replay recomputes
    every conversation and overstates TTFT."""
    shape = TrafficShape(turns=4, think_time_s=0.5, shared_prefixes=2, shared_prefix_tokens=1500)
    w = Workload(LengthDist(300), LengthDist(120), Arrivals("poisson", rate_per_s=6.0), 160, 5, shape=shape)
    reqs = make_requests(w)
    dep = Deployment(load_model("llama-3.1-8b"), get_gpu("h100-sxm"), get_precision("bf16"), get_kv_dtype("bf16"))
    sim = simulate(build_replica(dep), reqs)
    assert reqs.links is not None
    firsts = [segs[0][0] - 1 for i, segs in enumerate(reqs.links.segments) if i % shape.turns == 0]
    traffic = {
        "turns": shape.turns,
        "think_time_s": shape.think_time_s,
        "shared_prefixes": 2,
        "shared_prefix_tokens": 1500,
        "prefix_tokens_counted": [1500, 1500],
        "prefix_of_session": firsts,
        "adapters": [],
        "adapter_of_session": [],
        "isolate_cache": False,
    }
    store = ResultsStore(tmp_path / "r.db")
    run_id = store_simulated_run(store, reqs, sim, {"traffic": traffic})
    info = store.run(run_id)
    records = store.records(run_id)
    store.close()
    assert info.traffic == traffic
    sessions, independent = compare_runs(
        [StoredRun("s", records, info.traffic), StoredRun("i", records)], replace(dep, engine=get_engine("vllm"))
    )
    assert all(abs(e) < 0.05 for e in sessions.errors().values()), sessions.errors()
    assert independent.errors()["ttft_mean_s"] > 0.3  # no turn reuses its conversation's KV
    with pytest.raises(ConfigError, match=r"run b: .*turns"):
        compare_runs([StoredRun("b", records, {**traffic, "turns": "four"})], dep)


def test_report_cli_writes_the_page(tmp_path: Path, runner: CliRunner) -> None:
    db = tmp_path / "runs.db"
    run_id = simulated_run(db, 0.004)
    out = tmp_path / "report.html"
    args = ["report", "llama-3.1-8b", "--gpus", "h100-sxm,l40s", "--rate", "2", "--ttft", "500ms", "-o", str(out)]
    result = runner.invoke(app, [*args, "--runs", str(run_id), "--runs-on", "tp=1,dtype=bf16", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert f"Wrote the report to {out}" in result.output
    assert set(figures(out.read_text(encoding="utf-8"))) == {*PLAN_CHARTS, "measured"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-o", "."], "is a folder"),
        (["-o", "x.html", "--runs", "abc"], "whole numbers"),
        (["-o", "x.html", "--runs", "1", "--runs-on", "gpu"], "gpu=ID"),
        (["-o", "x.html", "--runs", "999"], "999"),
        (["-o", "/nonexistent-dir/r.html"], "does not exist"),
        (["-o", "x.html", "--runs", "1", "--runs-on", "tp=0"], "whole number"),
    ],
)
def test_report_cli_errors(tmp_path: Path, runner: CliRunner, extra: list[str], message: str) -> None:
    db = tmp_path / "empty.db"
    args = ["report", "llama-3.1-8b", "--gpus", "l40s", "--rate", "1", "--db", str(db), *extra]
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert "Recommendation" not in result.output  # refused before any planning


def test_report_requires_an_output(runner: CliRunner) -> None:
    result = runner.invoke(app, ["report", "llama-3.1-8b"])
    assert result.exit_code == 2
    assert "--output" in result.output
