"""The whitelist of metrics: how each is computed on the event rows (`e`) and on the visit rows (`s`).

Definitions, in words, are in reports/METRICS.md. A metric with an event
expression is answered by the event query; one with only a visit expression by
the visit query; the counting metrics have both, so a breakdown by visit
dimensions alone can be answered from the visit rows in one pass.
"""

from __future__ import annotations

import math


def distinct_visitors(rows: str) -> str:
    """A scalar subquery counting the distinct non-null visitor ids of `rows` (a table, CTE or subquery).

    Over SELECT DISTINCT, not count(DISTINCT): DuckDB 2.0 runs the first as a hash group-by that fit 20M ids in
    a 256MB memory_limit, the second as one hash table that ran out of it from ~5M (bench/soak_max.py at 3,000
    events/s after 13 minutes). Per-group counts (the breakdowns below) did not fail and stay count(DISTINCT)."""
    return f"(SELECT count(visitor_id) FROM (SELECT DISTINCT visitor_id FROM {rows}))"

# name -> (expression over event rows, expression over visit rows)
SQL: dict[str, tuple[str | None, str | None]] = {
    "visitors": ("count(DISTINCT e.visitor_id)", "count(DISTINCT s.visitor_id)"),
    "visits": ("count(DISTINCT e.session_id)", "count(*)"),
    "pageviews": ("count(*) FILTER (WHERE e.name = 'pageview')", "sum(s.pageviews)"),
    "events": ("count(*) FILTER (WHERE e.name <> 'engagement')", "sum(s.events)"),
    "bounce_rate": (None, "round(100.0 * count(*) FILTER (WHERE s.interactions <= 1) / count(*))"),
    "visit_duration": (None, "round(avg(epoch(s.s_end) - epoch(s.s_start)))"),
    "views_per_visit": (None, "round(sum(s.pageviews) / count(*), 2)"),
    "total_revenue": ("round(sum(e.revenue_amount), 2)", None),
    "average_revenue": ("round(avg(e.revenue_amount), 2)", None),
    "time_on_page": ("round(sum(e.engagement_ms) FILTER (WHERE e.name = 'engagement') / 1000.0 / "
                     "nullif(count(DISTINCT e.visitor_id) FILTER (WHERE e.name = 'engagement'), 0))", None),
}
# Computed from other queries (see run.py): scroll depth needs a per-visitor maximum first; the rates
# divide by visitors of a query without goal/property filters (or without dimensions).
DERIVED = ("scroll_depth", "percentage", "conversion_rate", "group_conversion_rate")
ALL = (*SQL, *DERIVED)
SESSION_ONLY = tuple(m for m, (ev, _) in SQL.items() if ev is None)
REVENUE = ("total_revenue", "average_revenue")
COUNTS = ("visitors", "visits", "pageviews", "events")
INTEGER = ("visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration", "scroll_depth",
           "time_on_page")
# Metrics whose change in a comparison is the difference in points, not a percentage (as Plausible).
POINTS = ("bounce_rate", "conversion_rate", "group_conversion_rate", "percentage")

CURRENCY_COLUMNS = ("count(DISTINCT e.revenue_currency)", "any_value(e.revenue_currency)")


def tidy(metric: str, value):
    """One SQL value → the JSON value Plausible answers with (0 rather than null for empty counts)."""
    if value is None:
        return None if metric in (*REVENUE, "scroll_depth", "time_on_page", "percentage") else 0
    if isinstance(value, float) and math.isnan(value):
        return None
    if metric in INTEGER:
        return int(value)
    return float(value)


def revenue(value, currencies: int, currency: str | None):
    """Plausible's revenue object; null when the rows mix currencies."""
    if value is None or currencies > 1:
        return None
    value = round(float(value), 2)
    return {"value": value, "currency": currency, "short": _short(value, currency), "long": f"{value:,.2f} {currency}"}


def _short(value: float, currency: str | None) -> str:
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= size:
            return f"{value / size:.1f}{suffix} {currency}"
    return f"{value:.2f} {currency}"


def plain(value):
    """A metric value as a number (revenue objects → their value), for ordering and comparisons."""
    if isinstance(value, dict):
        return value.get("value")
    return value


def change(metric: str, old, new):
    old, new = plain(old), plain(new)
    if old is None or new is None:
        return None
    if metric in POINTS:
        return round(new - old, 1)
    if old == 0:
        return 100 if new > 0 else 0
    return round((new - old) / old * 100)
