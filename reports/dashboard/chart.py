"""The top graph, drawn on the server: SVG paths for the period and its comparison, plus axis labels.

The SVG stretches to its box (`preserveAspectRatio="none"`, strokes that do
not scale), so it has no text in it; the axis labels are HTML laid out by CSS
at fixed fractions (the y ticks at 0, 1/4, ... of a rounded maximum; the x
labels at evenly spaced buckets). No inline styles: the page runs under a
strict Content-Security-Policy.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

WIDTH, HEIGHT = 1000, 300
TICKS = 4
X_LABELS = 6
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


@dataclass
class Chart:
    line: str
    area: str
    compare: str
    y_ticks: list[str]  # bottom to top
    x_labels: list[str]
    points: list[dict]  # for the hover tooltip: label, value, compare value
    summary: str


def nice_max(value: float) -> float:
    if value <= 0:
        return TICKS
    step = value / TICKS
    magnitude = 10 ** math.floor(math.log10(step))
    for m in (1, 2, 2.5, 5, 10):
        if step <= m * magnitude:
            nice = m * magnitude * TICKS
            return nice if nice >= TICKS else TICKS
    return value


def short(n: float) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}".rstrip("0").rstrip(".") + "M"
    if n >= 10_000:
        return f"{n / 1000:.1f}".rstrip("0").rstrip(".") + "k"
    return f"{n:,.0f}" if n == int(n) else f"{n:,.1f}"


def bucket_label(label: str, interval: str) -> str:
    try:
        when = dt.datetime.fromisoformat(label)
    except ValueError:
        return label
    if interval == "time:hour":
        return when.strftime("%H:%M")
    if interval == "time:month":
        return f"{MONTHS[when.month - 1]} {when.year}"
    return f"{when.day} {MONTHS[when.month - 1]}"


def _xs(n: int) -> list[float]:
    if n == 1:
        return [WIDTH / 2]
    return [i * WIDTH / (n - 1) for i in range(n)]


def _path(xs: list[float], values: list[float], top: float) -> str:
    pts = [f"{x:.1f},{HEIGHT - (v or 0) / top * HEIGHT:.1f}" for x, v in zip(xs, values, strict=False)]
    return "M" + " L".join(pts) if pts else ""


def draw(labels: list[str], values: list[float], compare: list[float] | None, interval: str,
         metric_label: str) -> Chart:
    xs = _xs(len(labels))
    top = nice_max(max([*values, *(compare or [])], default=0))
    line = _path(xs, values, top)
    area = f"{line} L{xs[-1]:.1f},{HEIGHT} L{xs[0]:.1f},{HEIGHT} Z" if line else ""
    cmp_path = _path(xs[:len(compare)], compare[:len(xs)], top) if compare else ""
    ticks = [short(top * i / TICKS) for i in range(TICKS + 1)]
    n = len(labels)
    if n <= X_LABELS:
        picks = list(range(n))
    else:
        picks = sorted({round(i * (n - 1) / (X_LABELS - 1)) for i in range(X_LABELS)})
    x_labels = [bucket_label(labels[i], interval) for i in picks]
    points = [{"label": bucket_label(label, interval), "value": v,
               "compare": compare[i] if compare and i < len(compare) else None}
              for i, (label, v) in enumerate(zip(labels, values, strict=False))]
    total = sum(v or 0 for v in values)
    peak = max(points, key=lambda p: p["value"] or 0) if points else None
    summary = f"{metric_label} over {n} intervals, {short(total)} in total"
    if peak:
        summary += f"; highest {short(peak['value'] or 0)} at {peak['label']}"
    return Chart(line=line, area=area, compare=cmp_path, y_ticks=ticks, x_labels=x_labels, points=points,
                 summary=summary)
