"""Visit queries without `GROUP BY session_id`: the per-event rollups put_session stamps at ingest.

Why: grouping the period's events into visits costs ~1 s on 10 M events, and
most dashboard cards only need each visit's first values, or totals over all
visits. At ingest, put_session marks each event with `visit_seq` (1 = its
visit's first event), `interaction_seq` (a visit bounces unless one of its
events has 2) and `duration_delta` (µs the event added to its visit), so:

- a *regular* visit (its first event is a pageview inside the period) is the
  row with `visit_seq = 1`, whose own columns are the visit's values;
- its bounce, duration, pageviews and events are sums over its events.

The answers stay exactly those of the general path (sql.py), which clips each
visit to the period. Visits the per-event columns cannot answer alone are
*irregular* and are grouped the general way, which is cheap because they are
few: visits that began before the period (their events in the period have
`visit_seq > 1`, and because a visit never pauses for more than the session
timeout, such a visit has an event in the period's first TIMEOUT), visits
whose first event is not a pageview (no entry page on the first row) and rows
stored without rollups (`visit_seq` null). Exit pages, visit metrics broken
down or filtered by visit values, and event filters still take the general
path. See reports/METRICS.md, "Fast paths".
"""

from __future__ import annotations

import datetime as dt

from collector.enhancers.put_session import TIMEOUT_US
from reports.query import dimensions as dims
from reports.query import filters as flt
from reports.query.metrics import distinct_visitors

ROW_METRICS = {"visitors", "visits"}  # answered by the visit rows' first values alone
TOTAL_METRICS = {"visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration", "views_per_visit"}
NOT_ON_FIRST_ROW = {"visit:exit_page", "visit:exit_page_hostname"}  # a visit's last pageview: general path
FIRST_ROW = {"entry_page": "pathname", "entry_host": "hostname", "s_start": '"timestamp"'}
IRREGULAR_STATS = {
    "visitor_id": "any_value(visitor_id)",
    "s_start": 'min("timestamp")',
    "s_end": 'max("timestamp")',
    "pageviews": "count(*) FILTER (WHERE name = 'pageview')",
    "events": "count(*) FILTER (WHERE name <> 'engagement')",
    "interactions": "count(*) FILTER (WHERE interactive AND name <> 'engagement')",
}


def rows_ok(metrics: list[str], dimensions: list[str], trees: list[tuple]) -> bool:
    """Visit rows without grouping: first values only (counts of visits and visitors per visit value)."""
    used = set(dimensions).union(*(flt.dimensions_in(t) for t in trees)) if trees else set(dimensions)
    return (set(metrics) <= ROW_METRICS
            and all(dims.is_visit(d) or dims.is_time(d) or d == "event:page" for d in dimensions)
            and all(dims.is_visit(d) for t in trees for d in flt.dimensions_in(t))
            and not used & NOT_ON_FIRST_ROW)


def totals_ok(metrics: list[str], dimensions: list[str], trees: list[tuple]) -> bool:
    """Totals over all visits of the period: no dimension, no filter."""
    return not dimensions and not trees and set(metrics) <= TOTAL_METRICS


def _base(b) -> str:
    s = b.scope
    return (f'site = {b.p(s.site)} AND "timestamp" >= {b.p(s.start)} AND "timestamp" < {b.p(s.end)} '
            "AND session_id IS NOT NULL")


def _irregular(b, base: str) -> str:
    edge = b.p(min(b.scope.end, b.scope.start + dt.timedelta(microseconds=TIMEOUT_US)))
    window = f'{base} AND "timestamp" < {edge}'
    return ("irr AS ("
            f"(SELECT session_id FROM events WHERE {window} AND visit_seq > 1 "
            f"EXCEPT SELECT session_id FROM events WHERE {window} AND visit_seq = 1) "
            f"UNION SELECT session_id FROM events WHERE {base} "
            "AND (visit_seq IS NULL OR (visit_seq = 1 AND name <> 'pageview')))")


def _regular_where(base: str) -> str:
    return f"{base} AND visit_seq = 1 AND name = 'pageview' AND session_id NOT IN (SELECT session_id FROM irr)"


def with_rows(b) -> str:
    """`WITH irr, ses`: one visit row per visit, the same columns as sql.py's `ses`, without GROUP BY."""
    base = _base(b)
    columns = dict(b.visit_columns)
    columns.setdefault("visitor_id", IRREGULAR_STATS["visitor_id"])
    names = list(columns)
    first = ", ".join(f"{FIRST_ROW.get(c, c)} AS {c}" for c in names)
    grouped = ", ".join(f"{columns[c]} AS {c}" for c in names)
    ses = (f"ses AS (SELECT session_id, {first} FROM events WHERE {_regular_where(base)} "
           f"UNION ALL SELECT session_id, {grouped} FROM events WHERE {base} "
           "AND session_id IN (SELECT session_id FROM irr) GROUP BY session_id)")
    return f"WITH {_irregular(b, base)},\n{ses}"


def totals_query(b, metrics: list[str]) -> str:
    """One row: each metric over all visits of the period, as sql.py's visit query would answer it."""
    base = _base(b)
    stats = ", ".join(f"{agg} AS {col}" for col, agg in IRREGULAR_STATS.items())
    parts = [
        _irregular(b, base),
        f"irs AS (SELECT session_id, {stats} FROM events WHERE {base} "
        "AND session_id IN (SELECT session_id FROM irr) GROUP BY session_id)",
        "reg AS (SELECT count(*) FILTER (WHERE visit_seq = 1) AS visits, "
        "count(*) FILTER (WHERE name = 'pageview') AS pageviews, "
        "count(*) FILTER (WHERE name <> 'engagement') AS events, "
        "count(*) FILTER (WHERE interaction_seq = 2) AS engaged, "
        "coalesce(sum(duration_delta), 0) AS duration_us "
        f"FROM events WHERE {base} AND session_id NOT IN (SELECT session_id FROM irr))",
        "tot AS (SELECT r.visits + i.visits AS visits, r.pageviews + i.pageviews AS pageviews, "
        "r.events + i.events AS events, r.engaged + i.engaged AS engaged, "
        "r.duration_us + i.duration_us AS duration_us FROM reg r, "
        "(SELECT count(*) AS visits, coalesce(sum(pageviews), 0) AS pageviews, coalesce(sum(events), 0) AS events, "
        "count(*) FILTER (WHERE interactions >= 2) AS engaged, "
        "coalesce(sum(epoch_us(s_end) - epoch_us(s_start)), 0) AS duration_us FROM irs) i)",
    ]
    sources = ["tot t"]
    if "visitors" in metrics:
        ids = f"(SELECT visitor_id FROM events WHERE {_regular_where(base)} UNION ALL SELECT visitor_id FROM irs)"
        parts.append(f"vis AS (SELECT {distinct_visitors(ids)} AS visitors)")
        sources.append("vis v")
    exprs = {  # NULL / NaN exactly where sql.py's aggregates give them on an empty period
        "visitors": "v.visitors",
        "visits": "t.visits",
        "pageviews": "t.pageviews",
        "events": "t.events",
        "bounce_rate": "round(100.0 * (t.visits - t.engaged) / t.visits)",
        "visit_duration": "CASE WHEN t.visits > 0 THEN round(t.duration_us / 1e6 / t.visits) END",
        "views_per_visit": "CASE WHEN t.visits > 0 THEN round(t.pageviews / t.visits, 2) END",
    }
    select = ", ".join(f"{exprs[m]} AS m_{m}" for m in metrics)
    return "WITH " + ",\n".join(parts) + f"\nSELECT {select} FROM {', '.join(sources)}"
