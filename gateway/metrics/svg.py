"""Small inline-SVG bar charts for the HTML report (no plotting dependency, no external files).

One chart shape covers every plot in the report: categories on the x axis, one or more series drawn
as grouped bars (counts over time, histogram bins, rates per agent, latency percentiles).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

PALETTE = ("#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6")


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp:
            return step * exp
    return 10 * exp


def bar_chart(
    title: str,
    categories: Sequence[str],
    series: dict[str, Sequence[float]],
    *,
    y_label: str = "",
    width: int = 720,
    height: int = 300,
    value_format: str = "{:g}",
) -> str:
    """An SVG element: grouped bars, a y axis with 5 ticks, a legend when there are several series."""
    left, right, top, bottom = 56, 12, 28, 64
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = _nice_max(max((v for values in series.values() for v in values), default=0.0))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}" font-family="sans-serif" font-size="11">',
        f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">'
        f"{escape(title)}</text>",
    ]
    for i in range(6):
        value = top_value * i / 5
        y = top + plot_h - plot_h * i / 5
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{value:g}</text>')
    if y_label:
        parts.append(
            f'<text transform="translate(12 {top + plot_h / 2}) rotate(-90)" text-anchor="middle">'
            f"{escape(y_label)}</text>"
        )
    n_cat, n_ser = max(1, len(categories)), max(1, len(series))
    slot = plot_w / n_cat
    bar_w = max(1.0, slot * 0.8 / n_ser)
    label_every = max(1, math.ceil(n_cat / 24))
    for c, category in enumerate(categories):
        x0 = left + c * slot + slot * 0.1
        for s, (name, values) in enumerate(series.items()):
            value = values[c] if c < len(values) else 0.0
            h = plot_h * value / top_value
            x = x0 + s * bar_w
            parts.append(
                f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[s % len(PALETTE)]}"><title>{escape(name)} {escape(category)}: '
                f"{escape(value_format.format(value))}</title></rect>"
            )
        if c % label_every == 0:
            cx = left + c * slot + slot / 2
            parts.append(
                f'<text transform="translate({cx:.1f} {top + plot_h + 12}) rotate(30)">'
                f"{escape(category)}</text>"
            )
    parts.append(
        f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#333"/>'
    )
    if len(series) > 1:
        for s, name in enumerate(series):
            x = left + s * 140
            parts.append(
                f'<rect x="{x}" y="{height - 14}" width="10" height="10" fill="{PALETTE[s % len(PALETTE)]}"/>'
            )
            parts.append(f'<text x="{x + 14}" y="{height - 5}">{escape(name)}</text>')
    if not categories:
        parts.append(f'<text x="{width / 2}" y="{top + plot_h / 2}" text-anchor="middle">no data</text>')
    parts.append("</svg>")
    return "\n".join(parts)


__all__ = ["bar_chart"]
