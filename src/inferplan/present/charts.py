"""Charts as standalone SVG: line/scatter charts with linear or log axes, and stacked
horizontal bars. No JavaScript and nothing fetched: the report embeds the SVG text and the
web UI inserts it as returned by the API.

Every chart carries its axis titles (with units), a legend and a caption; non-finite points
(a saturated queue's infinite latency) are dropped, never drawn at the edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

__all__ = ["Chart", "ChartText", "Ref", "Series", "line_chart", "stacked_bar_chart"]

WIDTH_PX, HEIGHT_PX = 680, 380
_LEFT, _RIGHT, _TOP, _BOTTOM = 78, 24, 36, 58
# Okabe-Ito: distinguishable with the common colour-vision deficiencies
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")


@dataclass(frozen=True, slots=True)
class Series:
    """One named set of points; ``mode`` is line, points or both."""

    name: str
    points: list[tuple[float, float]]
    mode: str = "line+points"
    dashed: bool = False
    color: str | None = None


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference line across the plot: ``axis`` x (vertical) or y (horizontal)."""

    axis: str
    value: float
    label: str


@dataclass(frozen=True, slots=True)
class ChartText:
    """A chart's words: its id, title, caption (what to read in it) and axis titles (with units)."""

    id: str
    title: str
    caption: str
    x_label: str
    y_label: str = ""


@dataclass(frozen=True, slots=True)
class Chart:
    id: str
    title: str
    caption: str
    svg: str
    x_label: str
    y_label: str
    num_marks: int
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Scale:
    lo: float
    hi: float
    px_lo: float
    px_hi: float
    log: bool

    def __call__(self, v: float) -> float:
        a, b, x = (math.log10(self.lo), math.log10(self.hi), math.log10(v)) if self.log else (self.lo, self.hi, v)
        return self.px_lo + (x - a) / (b - a) * (self.px_hi - self.px_lo)

    def ticks(self) -> list[float]:
        return log_ticks(self.lo, self.hi) if self.log else linear_ticks(self.lo, self.hi)


def nice_step(span: float, target_ticks: int = 6) -> float:
    """The 1-2-5 x 10^k step that splits ``span`` into about ``target_ticks`` intervals."""
    raw = span / max(target_ticks, 1)
    power = 10 ** math.floor(math.log10(raw))
    return float(next(m * power for m in (1, 2, 5, 10) if m * power >= raw))


def linear_ticks(lo: float, hi: float) -> list[float]:
    step = nice_step(hi - lo)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 12) for i in range(int((hi - first) / step + 1e-9) + 1)]


def log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten; 1-2-5 multiples when the range spans fewer than three decades."""
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    mults = (1, 2, 5) if last - first < 3 else (1,)
    ticks = [m * 10.0**k for k in range(first, last + 1) for m in mults]
    return [t for t in ticks if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]


def format_number(v: float) -> str:
    """Short tick labels: 1.5k, 2M, 0.05, 120."""
    a = abs(v)
    if a >= 1e9:
        return f"{v / 1e9:g}G"
    if a >= 1e6:
        return f"{v / 1e6:g}M"
    if a >= 1e4:
        return f"{v / 1e3:g}k"
    return f"{v:.4g}"


def _bounds(values: list[float], log: bool, refs: list[float]) -> tuple[float, float]:
    vals = [v for v in values + refs if math.isfinite(v) and (v > 0 or not log)]
    if not vals:
        return (1.0, 10.0) if log else (0.0, 1.0)
    lo, hi = min(vals), max(vals)
    if log:
        if hi <= lo:
            lo, hi = lo / 2, hi * 2
        return lo / 1.15, hi * 1.15
    lo = min(lo, 0.0)
    if hi <= lo:
        hi = lo + 1.0
    step = nice_step(hi - lo)
    return math.floor(lo / step) * step, math.ceil(hi * 1.02 / step) * step


def _svg_open(chart_id: str, title: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH_PX} {HEIGHT_PX}" role="img" '
        f'class="chart" data-chart="{escape(chart_id)}" font-family="system-ui, sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{WIDTH_PX}" height="{HEIGHT_PX}" fill="#fff"/>',
    ]


def _axes(sx: _Scale, sy: _Scale, x_label: str, y_label: str, top: float) -> list[str]:
    left, right, bottom = _LEFT, WIDTH_PX - _RIGHT, HEIGHT_PX - _BOTTOM
    out = ['<g class="axes" stroke="#999" stroke-width="1">']
    out.append(f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}"/>')
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}"/>')
    out.append("</g>")
    out.append('<g class="ticks" fill="#333">')
    for t in sx.ticks():
        x = sx(t)
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#eee"/>')
        out.append(f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{format_number(t)}</text>')
    for t in sy.ticks():
        y = sy(t)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{format_number(t)}</text>')
    out.append("</g>")
    out.append(
        f'<text class="axis-label x" x="{(left + right) / 2}" y="{HEIGHT_PX - 14}" '
        f'text-anchor="middle" font-size="13">{escape(x_label)}</text>'
    )
    out.append(
        f'<text class="axis-label y" transform="translate(18,{(top + bottom) / 2}) rotate(-90)" '
        f'text-anchor="middle" font-size="13">{escape(y_label)}</text>'
    )
    return out


def _legend(names: list[tuple[str, str, bool]], left: float = _LEFT) -> tuple[list[str], float]:
    """Legend entries in rows above the plot; returns the elements and the plot's top edge."""
    out = ['<g class="legend">']
    x, y = left + 8, 16
    for name, color, dashed in names:
        if not name:
            continue
        width = 30 + 6.6 * len(name)
        if x + width > WIDTH_PX - _RIGHT and x > left + 8:
            x, y = left + 8, y + 15
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        out.append(f'<line x1="{x}" y1="{y - 4}" x2="{x + 18}" y2="{y - 4}" stroke="{color}" stroke-width="3"{dash}/>')
        out.append(f'<text x="{x + 22}" y="{y}">{escape(name)}</text>')
        x += width
    out.append("</g>")
    return out, max(float(_TOP), y + 14)


def _refs(refs: list[Ref], sx: _Scale, sy: _Scale, top: float) -> list[str]:
    out = ['<g class="refs" stroke="#555" stroke-dasharray="3 3">']
    for r in refs:
        scale = sx if r.axis == "x" else sy
        if not (math.isfinite(r.value) and (r.value > 0 or not scale.log)):
            continue
        p = scale(r.value)
        if r.axis == "x":
            out.append(f'<line x1="{p:.1f}" y1="{top}" x2="{p:.1f}" y2="{HEIGHT_PX - _BOTTOM}"/>')
            out.append(f'<text x="{p + 4:.1f}" y="{top + 12}" stroke="none" fill="#333">{escape(r.label)}</text>')
        else:
            out.append(f'<line x1="{_LEFT}" y1="{p:.1f}" x2="{WIDTH_PX - _RIGHT}" y2="{p:.1f}"/>')
            x_text = WIDTH_PX - _RIGHT - 4
            out.append(
                f'<text x="{x_text}" y="{p - 4:.1f}" text-anchor="end" stroke="none" fill="#333">'
                f"{escape(r.label)}</text>"
            )
    out.append("</g>")
    return out


def _clean(points: list[tuple[float, float]], log_x: bool, log_y: bool) -> list[tuple[float, float]]:
    return [
        (x, y)
        for x, y in points
        if math.isfinite(x) and math.isfinite(y) and (x > 0 or not log_x) and (y > 0 or not log_y)
    ]


def line_chart(
    text: ChartText,
    series: list[Series],
    *,
    log_x: bool = False,
    log_y: bool = False,
    refs: list[Ref] | None = None,
) -> Chart:
    """Lines and/or points on shared axes, with reference lines (targets, demand)."""
    chart_id, title, caption, x_label, y_label = text.id, text.title, text.caption, text.x_label, text.y_label
    refs = refs or []
    cleaned = [(s, _clean(s.points, log_x, log_y)) for s in series]
    xs = [x for _, pts in cleaned for x, _ in pts]
    ys = [y for _, pts in cleaned for _, y in pts]
    x_lo, x_hi = _bounds(xs, log_x, [r.value for r in refs if r.axis == "x"])
    y_lo, y_hi = _bounds(ys, log_y, [r.value for r in refs if r.axis == "y"])
    colors = [s.color or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]
    legend, top = _legend([(s.name, c, s.dashed) for s, c in zip(series, colors, strict=True)])
    sx = _Scale(x_lo, x_hi, _LEFT, WIDTH_PX - _RIGHT, log_x)
    sy = _Scale(y_lo, y_hi, HEIGHT_PX - _BOTTOM, top, log_y)
    out = _svg_open(chart_id, title) + _axes(sx, sy, x_label, y_label, top) + _refs(refs, sx, sy, top)
    marks = 0
    for (s, pts), color in zip(cleaned, colors, strict=True):
        out.append(f'<g class="series" data-series="{escape(s.name)}">')
        if "line" in s.mode and len(pts) > 1:
            d = " ".join(f"{'M' if j == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for j, (x, y) in enumerate(pts))
            dash = ' stroke-dasharray="6 4"' if s.dashed else ""
            out.append(f'<path d="{d}" fill="none" stroke="{color}" stroke-width="2.2"{dash}/>')
            marks += 1
        if "points" in s.mode or len(pts) == 1:
            for x, y in pts:
                out.append(
                    f'<circle class="mark" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" fill="{color}">'
                    f"<title>{escape(s.name)}: {format_number(x)}, {format_number(y)}</title></circle>"
                )
                marks += 1
        out.append("</g>")
    out += legend
    out.append("</svg>")
    return Chart(chart_id, title, caption, "\n".join(out), x_label, y_label, marks)


def stacked_bar_chart(
    text: ChartText,
    categories: list[str],
    segments: list[tuple[str, list[float]]],
    *,
    limits: list[float] | None = None,
    limit_label: str = "",
) -> Chart:
    """Horizontal bars, one per category, stacked from ``segments`` (name, value per
    category); ``limits`` draws a tick per bar (e.g. the GPU's memory)."""
    chart_id, title, caption, x_label = text.id, text.title, text.caption, text.x_label
    totals = [sum(max(v[i], 0.0) for _, v in segments) for i in range(len(categories))]
    left = 200
    sx = _Scale(*_bounds([*totals, *(limits or [])], False, []), left, WIDTH_PX - _RIGHT, False)
    colors = [PALETTE[j % len(PALETTE)] for j in range(len(segments))]
    entries = [(name, colors[j], False) for j, (name, _) in enumerate(segments)]
    legend, top = _legend([*entries, (limit_label, "#000", False)] if limits else entries, left=0)
    band = (HEIGHT_PX - _BOTTOM - top - 10) / max(len(categories), 1)
    bar_h = min(band * 0.6, 36.0)
    out = _svg_open(chart_id, title)
    out.append('<g class="ticks" fill="#333">')
    for t in sx.ticks():
        x = sx(t)
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{HEIGHT_PX - _BOTTOM}" stroke="#eee"/>')
        out.append(f'<text x="{x:.1f}" y="{HEIGHT_PX - _BOTTOM + 16}" text-anchor="middle">{format_number(t)}</text>')
    out.append("</g>")
    marks = 0
    for i, cat in enumerate(categories):
        y = top + 10 + i * band + (band - bar_h) / 2
        out.append(
            f'<text x="{left - 6}" y="{y + bar_h / 2 + 4:.1f}" text-anchor="end" font-size="11">{escape(cat)}</text>'
        )
        x0 = 0.0
        for j, (name, values) in enumerate(segments):
            v = max(values[i], 0.0)
            if v <= 0:
                continue
            out.append(
                f'<rect class="bar" x="{sx(x0):.1f}" y="{y:.1f}" width="{sx(x0 + v) - sx(x0):.1f}" '
                f'height="{bar_h:.1f}" fill="{colors[j]}"><title>{escape(cat)}: {escape(name)} '
                f"{v:,.2f}</title></rect>"
            )
            marks += 1
            x0 += v
        if limits:
            lx = sx(limits[i])
            out.append(
                f'<line x1="{lx:.1f}" y1="{y - 4:.1f}" x2="{lx:.1f}" y2="{y + bar_h + 4:.1f}" stroke="#000" '
                f'stroke-width="2"><title>{escape(limit_label)} {limits[i]:,.2f}</title></line>'
            )
    out.append(
        f'<text class="axis-label x" x="{(left + WIDTH_PX - _RIGHT) / 2}" y="{HEIGHT_PX - 14}" '
        f'text-anchor="middle" font-size="13">{escape(x_label)}</text>'
    )
    out += legend
    out.append("</svg>")
    return Chart(chart_id, title, caption, "\n".join(out), x_label, "configuration", marks)
