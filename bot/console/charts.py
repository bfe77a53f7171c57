"""Small server-side SVG charts: horizontal bars and a line over days.

Why our own: no JS chart library and no CDN (the CSP allows only this host's scripts, and a
hotline's console must not call third parties); a bar chart and a line are a few dozen lines.
Every label goes through :func:`markupsafe.escape`; colours come from classes in console.css
(``chart-*``) because the CSP refuses inline styles (presentation attributes are not styles).
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH = 560
BAR_HEIGHT = 26
BAR_GAP = 8
LABEL_WIDTH = 190
VALUE_WIDTH = 60


def _num(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def bar_chart(items: Sequence[tuple[str, float]], title: str, unit: str = "") -> Markup:
    """Horizontal bars, largest scale = largest value; each bar carries its value as text."""
    if not items:
        return Markup('<p class="muted">No data yet.</p>')
    top = max(v for _, v in items) or 1
    span = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    height = len(items) * (BAR_HEIGHT + BAR_GAP) + BAR_GAP
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" width="100%" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for i, (label, value) in enumerate(items):
        y = BAR_GAP + i * (BAR_HEIGHT + BAR_GAP)
        width = max(2.0, span * value / top) if value else 0.0
        shown = f"{_num(value)}{(' ' + unit) if unit else ''}"
        parts.append(
            f'<g class="bar"><title>{escape(label)}: {escape(shown)}</title>'
            f'<text class="chart-label" x="{LABEL_WIDTH - 8}" y="{y + BAR_HEIGHT * 0.68:.1f}" '
            f'text-anchor="end">{escape(label)}</text>'
            f'<rect class="chart-bar" x="{LABEL_WIDTH}" y="{y}" width="{width:.1f}" '
            f'height="{BAR_HEIGHT}" rx="3"></rect>'
            f'<text class="chart-value" x="{LABEL_WIDTH + width + 6:.1f}" '
            f'y="{y + BAR_HEIGHT * 0.68:.1f}">{escape(shown)}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(
    days: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]], title: str, unit: str
) -> Markup:
    """One line per series over ``days`` (None = no data that day: a gap, not a zero)."""
    values = [v for _, points in series for v in points if v is not None]
    if not days or not values:
        return Markup('<p class="muted">No replies in this period yet.</p>')
    height, left, right, top_pad, bottom = 240, 56, 16, 16, 46
    plot_w, plot_h = WIDTH - left - right, height - top_pad - bottom
    top = max(values) * 1.1 or 1
    step = plot_w / max(1, len(days) - 1)

    def x(i: int) -> float:
        return left + i * step

    def y(v: float) -> float:
        return top_pad + plot_h - plot_h * v / top

    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" width="100%" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for k in range(5):  # grid with values
        v = top * k / 4
        parts.append(
            f'<line class="chart-grid" x1="{left}" x2="{WIDTH - right}" '
            f'y1="{y(v):.1f}" y2="{y(v):.1f}"></line>'
            f'<text class="chart-axis" x="{left - 6}" y="{y(v) + 4:.1f}" '
            f'text-anchor="end">{escape(_num(v))}</text>'
        )
    for i, day in enumerate(days):
        if i % 2 == 0 or i == len(days) - 1:
            parts.append(
                f'<text class="chart-axis" x="{x(i):.1f}" y="{height - bottom + 16}" '
                f'text-anchor="middle">{escape(day[5:])}</text>'
            )
    for n, (name, points) in enumerate(series):
        runs: list[list[tuple[float, float]]] = [[]]
        for i, v in enumerate(points):
            if v is None:
                runs.append([])
                continue
            runs[-1].append((x(i), y(v)))
            parts.append(
                f'<circle class="chart-dot chart-s{n}" cx="{x(i):.1f}" cy="{y(v):.1f}" r="3">'
                f"<title>{escape(name)} {escape(days[i])}: {escape(_num(v))} {escape(unit)}"
                "</title></circle>"
            )
        for run in runs:
            if len(run) > 1:
                coords = " ".join(f"{a:.1f},{b:.1f}" for a, b in run)
                parts.append(
                    f'<polyline class="chart-line chart-s{n}" points="{coords}"></polyline>'
                )
        lx = left + n * 150
        parts.append(
            f'<rect class="chart-key chart-s{n}" x="{lx}" y="{height - 18}" width="12" height="12">'
            f'</rect><text class="chart-axis" x="{lx + 18}" y="{height - 8}">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
