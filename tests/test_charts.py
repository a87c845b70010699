"""SVG charts: ticks, scales, dropped non-finite points, escaping, stacked bars."""

from __future__ import annotations

import itertools
import math
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inferplan.present.charts import (
    ChartText,
    Ref,
    Series,
    format_number,
    line_chart,
    linear_ticks,
    log_ticks,
    nice_step,
    stacked_bar_chart,
)

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


@pytest.mark.parametrize(
    ("span", "step"),
    [(10.0, 2.0), (1.0, 0.2), (95.0, 20.0), (0.003, 0.0005), (7e6, 2e6)],
)
def test_nice_step(span: float, step: float) -> None:
    assert nice_step(span) == pytest.approx(step)


@given(st.floats(-1e6, 1e6), st.floats(1e-3, 1e6))
def test_linear_ticks_lie_inside_and_are_even(lo: float, span: float) -> None:
    ticks = linear_ticks(lo, lo + span)
    assert ticks, "at least one tick"
    assert all(lo - 1e-6 * span <= t <= lo + span * (1 + 1e-6) for t in ticks)
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
    assert len(gaps) <= 1


def test_log_ticks() -> None:
    assert log_ticks(1.0, 1e4) == [1.0, 10.0, 100.0, 1000.0, 10000.0]
    assert log_ticks(3.0, 80.0) == [5.0, 10.0, 20.0, 50.0]


@pytest.mark.parametrize(("v", "text"), [(1500.0, "1500"), (25_000.0, "25k"), (3e6, "3M"), (0.05, "0.05")])
def test_format_number(v: float, text: str) -> None:
    assert format_number(v) == text


def test_line_chart_draws_each_series_and_drops_non_finite_points() -> None:
    chart = line_chart(
        ChartText("lat", "Latency", "what to read", "rate (req/s)", "TTFT (ms)"),
        [
            Series("a <b>", [(1.0, 10.0), (2.0, 20.0), (3.0, math.inf)]),
            Series("c", [(1.0, 5.0)], mode="points"),
        ],
        log_y=True,
        refs=[Ref("y", 15.0, "target 15 ms"), Ref("x", 2.5, "demand")],
    )
    root = parse(chart.svg)
    series = root.findall(f".//{SVG}g[@class='series']")
    assert [g.get("data-series") for g in series] == ["a <b>", "c"]
    assert len(series[0].findall(f"{SVG}path")) == 1
    assert len(series[0].findall(f"{SVG}circle")) == 2  # the infinite point is not drawn
    assert chart.num_marks == 1 + 2 + 1
    labels = [t.text for t in root.findall(f".//{SVG}text") if (t.get("class") or "").startswith("axis-label")]
    assert labels == ["rate (req/s)", "TTFT (ms)"]
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "target 15 ms" in texts and "demand" in texts
    assert "a &lt;b&gt;" in chart.svg


def test_points_stay_inside_the_plot_area() -> None:
    chart = line_chart(
        ChartText("x", "t", "c", "x (s)", "y (s)"), [Series("s", [(0.001, 5.0), (1000.0, 7e5)])], log_x=True
    )
    for c in parse(chart.svg).iter(f"{SVG}circle"):
        assert 0 <= float(c.get("cx", -1)) <= 680
        assert 0 <= float(c.get("cy", -1)) <= 380


def test_empty_chart_still_renders_axes() -> None:
    chart = line_chart(
        ChartText("e", "t", "c", "x (s)", "y (s)"), [Series("none", [(math.nan, 1.0)])], log_x=True, log_y=True
    )
    assert chart.num_marks == 0
    assert parse(chart.svg).find(f".//{SVG}g[@class='axes']") is not None


def test_stacked_bars_sum_to_the_totals() -> None:
    chart = stacked_bar_chart(
        ChartText("mem", "Memory", "read", "GiB"),
        ["one", "two"],
        [("weights", [10.0, 20.0]), ("kv", [50.0, 0.0])],
        limits=[80.0, 80.0],
        limit_label="visible",
    )
    bars = parse(chart.svg).findall(f".//{SVG}rect[@class='bar']")
    assert len(bars) == 3 == chart.num_marks  # a zero segment draws nothing
    widths = [float(b.get("width", 0)) for b in bars]
    assert widths[0] * 5 == pytest.approx(widths[1], rel=1e-2)
    assert widths[0] * 2 == pytest.approx(widths[2], rel=1e-2)
