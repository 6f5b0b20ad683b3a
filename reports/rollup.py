"""Answer unfiltered dashboard cards from the daily rollups (migration 007, built by collector/rollups.py).

For a range of whole local days [a, b], every quantity is a sum of per-day
rows, corrected at the day boundaries (columns in migrations/007_day_rollups.sql):

    visitors = Σ_a..b visitors − Σ_a+1..b carried + (cont_visitors − cont_overlap)[a]
    visits   = Σ_a..b visits − Σ_a+1..b visits_carried + cont_visits[a]
    engaged  = Σ_a..b engaged + Σ_a+1..b engaged_next + cont_engaged[a]      (likewise duration)

which is exact when a visitor id, and a visit, lives on at most two consecutive
local days: ids are keyed by a daily salt and a visit over midnight keeps
yesterday's id, so this holds; the builder counts exceptions (`far_ids`) and a
range that contains one after its first day is not answered here.

Days of the range not rolled up yet (today, a day the hourly job has not
reached) are computed on the fly from raw events by the builder's own SQL
(`collector.rollups.day_query`, the same text restricted to that day) and
summed with the rolled-up days by the same formula, in one statement; days
without events add nothing. Anything this module does not cover exactly
returns None, and the caller takes the raw path: filters, time or several
dimensions, metrics other than those below, ranges that are not whole days,
ranges with no rolled-up day or more than MAX_RAW_DAYS days to compute.
See reports/METRICS.md, "Daily rollups".
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import duckdb

from collector import rollups_today as today
from collector.rollups import ENTRY_DIMS, EVENT_DIMS, EXIT_DIMS, ROW_COLUMNS, VERSION, VISIT_DIMS, bounds, day_query
from reports.query import dimensions as dims
from reports.query import metrics as mets

TOTALS = {"visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration", "views_per_visit"}
EVENT = {"visitors", "visits", "pageviews", "events"}
VISIT = {"visitors", "visits"}
DAY = "time:day"  # one bucket per rolled-up day: that day's totals row (visits: begun that day or before)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# partial rollups are read when their window's events stored since are at most 1/PARTIAL_SHARE of theirs:
# each card then regroups the new events' visitors' whole day twice (bench/today_reads.py: 140k new events
# on 2.9M were 0.8x as fast as the raw path with this generator's returning visitors, on 8.9M 1.3x)
PARTIAL_SHARE = 25
MAX_RAW_DAYS = 2  # today, and yesterday until the job has rolled it up (its first hour); more: the raw path

_SUMS = """
SELECT {value} AS value,
  coalesce(sum(visitors), 0) - coalesce(sum(carried) FILTER (WHERE day > $a), 0)
    + coalesce(sum(cont_visitors - cont_overlap) FILTER (WHERE day = $a), 0) AS visitors,
  coalesce(sum(visits), 0) - coalesce(sum(visits_carried) FILTER (WHERE day > $a), 0)
    + coalesce(sum(cont_visits) FILTER (WHERE day = $a), 0) AS visits,
  coalesce(sum(pageviews), 0) AS pageviews, coalesce(sum(events), 0) AS events,
  coalesce(sum(engaged), 0) + coalesce(sum(engaged_next) FILTER (WHERE day > $a), 0)
    + coalesce(sum(cont_engaged) FILTER (WHERE day = $a), 0) AS engaged,
  coalesce(sum(duration_us), 0) + coalesce(sum(duration_next_us) FILTER (WHERE day > $a), 0)
    + coalesce(sum(cont_duration_us) FILTER (WHERE day = $a), 0) AS duration_us
FROM src{group}"""

# the same expressions (and so the same NULLs and rounding) as reports/query/fast.py's totals
_METRICS = {
    "visitors": "visitors", "visits": "visits", "pageviews": "pageviews", "events": "events",
    "bounce_rate": "round(100.0 * (visits - engaged) / visits)",
    "visit_duration": "CASE WHEN visits > 0 THEN round(duration_us / 1e6 / visits) END",
    "views_per_visit": "CASE WHEN visits > 0 THEN round(pageviews / visits, 2) END",
}


def covered(query, period) -> str | None:
    """The rollup dimension ('' for totals) if the query's shape is covered, else None."""
    if query.filters or not period.whole_days or len(query.dimensions) > 1:
        return None
    dim = query.dimensions[0] if query.dimensions else ""
    allowed = (TOTALS if not dim else EVENT if dim in EVENT_DIMS or dim == DAY
               else VISIT if dim in VISIT_DIMS or dim in EXIT_DIMS else set())
    return dim if query.metrics and set(query.metrics) <= allowed else None


def _flagged(dim: str, a: dt.date, statuses: list[tuple[dt.date, int, int]]) -> bool:
    """True when a day's checks forbid the algebra over a range starting on `a`: an id or visit of a day after
    the first also seen two days before it (it could then be on three days of [a - 1, b]), or, for entry pages,
    a visit begun the day before whose first pageview is on this day."""
    return any(day > a and (far or (split and dim in ENTRY_DIMS)) for day, far, split in statuses)


def _plan(con, query, period, dim: str, partial: bool = True) -> tuple[list[dt.date], dict] | None:
    """The days of the period to compute from raw events and the days answered from partial rollups (day ->
    their status: row id, check count), or None when the rollups cannot answer."""
    a, b = period.first_day, period.last_day
    need = VERSION if dim in EXIT_DIMS else 1
    fetched = con.execute(
        "SELECT day, far_ids, entry_split FROM rollup_status WHERE site = $site AND day BETWEEN $a AND $b "
        "AND tz = $tz AND coalesce(version, 1) >= $need",
        {"site": query.site, "a": a, "b": b, "tz": query.tz_name, "need": need}).fetchall()
    if _flagged(dim, a, fetched):
        return None
    ready = {day for day, _, _ in fetched}
    missing = [a + dt.timedelta(days=i) for i in range((b - a).days + 1) if a + dt.timedelta(days=i) not in ready]
    with_events = _with_events(con, query, missing)
    parts = _partials(con, query, with_events) if partial and with_events else {}
    raw = [day for day in with_events if day not in parts]
    if not fetched and not parts:  # nothing rolled up: the raw path is as cheap
        return None
    return (raw, parts) if len(raw) <= MAX_RAW_DAYS else None


def _partials(con, query, days: list[dt.date]) -> dict[dt.date, tuple[int, int]]:
    """The days' partial rollups worth reading: the events of their window stored since are few beside theirs."""
    found = con.execute(
        "SELECT day, below, checked FROM rollup_partial_status WHERE site = $site AND tz = $tz "
        "AND version = $version AND list_contains($days::DATE[], day)",
        {"site": query.site, "tz": query.tz_name, "version": VERSION, "days": days}).fetchall()
    return {day: (below, checked) for day, below, checked in found
            if _stored_since(con, query, day, below) * PARTIAL_SHARE <= checked}


def _stored_since(con, query, day: dt.date, below: int) -> int:
    window = bounds(day, query.tz_name)
    return con.execute(today.STORED_SINCE,
                       {"site": query.site, "old": below, "yy": window["yy"], "e": window["e"]}).fetchone()[0]


def _with_events(con, query, missing: list[dt.date]) -> list[dt.date]:
    """Of the missing days, those that may hold events (a day without events has no rows): per run of
    consecutive days, the days between its first and last event."""
    out, runs = [], []
    for day in missing:
        if runs and day == runs[-1][-1] + dt.timedelta(days=1):
            runs[-1].append(day)
        else:
            runs.append([day])
    for run in runs:
        start, end = bounds(run[0], query.tz_name)["d"], bounds(run[-1], query.tz_name)["e"]
        lo, hi = con.execute('SELECT epoch_us(min("timestamp")), epoch_us(max("timestamp")) FROM events '
                             'WHERE site = $site AND "timestamp" >= $start AND "timestamp" < $end',
                             {"site": query.site, "start": start, "end": end}).fetchone()
        if lo is not None:
            first, last = ((EPOCH + dt.timedelta(microseconds=us)).astimezone(ZoneInfo(query.tz_name)).date()
                           for us in (lo, hi))
            out += [d for d in run if first <= d <= last]
    return out


def _source(query, period, dim: str, raw: list[dt.date], parts: dict) -> tuple[str, dict]:
    """`WITH src AS (the period's rows of dim), st AS (the raw days' status rows)` and its parameters."""
    row_dim = "" if dim == DAY else dim
    params = {"site": query.site, "dim": row_dim, "a": period.first_day, "b": period.last_day,
              "raw": raw + list(parts), "tz": query.tz_name, "version": VERSION}
    pieces = [f"SELECT false AS status, {ROW_COLUMNS} FROM rollup_days WHERE site = $site AND dim = $dim "
              "AND day BETWEEN $a AND $b AND NOT list_contains($raw::DATE[], day)"]
    for i, day in enumerate(raw):
        pieces.append(f"SELECT * FROM ({day_query(row_dim, f'_{i}')})")
        params.update({f"{k}_{i}": v for k, v in bounds(day, query.tz_name).items()})
        params[f"day_{i}"] = day
    for j, (day, (below, _)) in enumerate(parts.items(), start=len(raw)):
        pieces.append(_partial(row_dim, j))
        params.update({f"{k}_{j}": v for k, v in bounds(day, query.tz_name).items()})
        params.update({f"day_{j}": day, f"old_{j}": below})
    text = (f"WITH rows AS MATERIALIZED ({' UNION ALL '.join(pieces)}), "
            "src AS (SELECT * FROM rows WHERE NOT status), st AS (SELECT * FROM rows WHERE status)")
    return text, params


def _partial(dim: str, j: int) -> str:
    """A day so far: its partial rollups (collector/rollups_today.py) plus what was stored since, one row per
    value (and one status row) as day_query gives them."""
    counts = ROW_COLUMNS.split(", ")[4:]
    zeros = ", ".join("0" for _ in counts[2:])
    return (f"SELECT status, site, day, dim, value, {', '.join(f'sum({c})::BIGINT AS {c}' for c in counts)} FROM ("
            f"SELECT false AS status, {ROW_COLUMNS} FROM rollup_partial_days WHERE site = $site "
            f"AND day = $day_{j} AND dim = $dim "
            f"UNION ALL SELECT true, site, day, $dim, NULL, far_ids, entry_split, {zeros} FROM rollup_partial_status "
            f"WHERE site = $site AND day = $day_{j} AND below = $old_{j} "
            f"UNION ALL SELECT * FROM ({today.step_query(dim, f'_{j}')})) GROUP BY status, site, day, dim, value")


def _stale(raw: list[dt.date], parts: dict) -> str:
    """True when a partial day's rows are not those of its status: replaced meanwhile, or rows renumbered (the
    count of the events they read differs); checked in the card's own statement, so on one snapshot."""
    checks = ["false"]
    for j, (_, (_, checked)) in enumerate(parts.items(), start=len(raw)):
        count = today.CHECK.replace("$old", f"$old_{j}").replace("$yy", f"$yy_{j}").replace("$e", f"$e_{j}")
        checks.append(f"({count}) <> {int(checked)} OR NOT EXISTS (SELECT 1 FROM rollup_partial_status "
                      f"WHERE site = $site AND day = $day_{j} AND below = $old_{j})")
    return f"({' OR '.join(checks)}) AS stale"


def _used(text: str, params: dict) -> dict:
    """DuckDB refuses parameters a statement does not name."""
    return {k: v for k, v in params.items() if re.search(rf"\${k}\b", text)}


def rows(con, query, period) -> dict[tuple, dict] | None:
    """All rows of the query over the period from the rollups, or None when they cannot answer it exactly."""
    got = _rows(con, query, period, partial=True)
    if got == "stale":  # the job moved the partial rollups on between the plan and the statement
        got = _rows(con, query, period, partial=False)
    return got


def _rows(con, query, period, partial: bool):
    dim = covered(query, period)
    if dim is None:
        return None
    try:
        plan = _plan(con, query, period, dim, partial)
    except (duckdb.CatalogException, duckdb.BinderException):  # a store without migrations 007-009
        return None
    if plan is None:
        return None
    raw, parts = plan
    with_src, params = _source(query, period, dim, raw, parts)
    # the raw days' checks, as _flagged reads them (status rows: far_ids in `visitors`, entry_split in `carried`)
    check = (f"(SELECT count(*) FROM st WHERE day > $a AND (visitors > 0 OR (carried > 0 AND "
             f"{'true' if dim in ENTRY_DIMS else 'false'}))) AS flagged, {_stale(raw, parts)}")
    select = _days(query) if dim == DAY else _values(query, dim)
    # the checks on a row of their own, so that they are read even when the period has no rows
    text = f"{with_src}, c AS (SELECT {check}) SELECT * FROM c LEFT JOIN ({select}) ON true"
    fetched = con.execute(text, _used(text, params)).fetchall()
    if fetched[0][1]:
        return "stale"
    if fetched[0][0]:
        return None
    out: dict[tuple, dict] = {}
    for _, _, key, visits, *metrics in fetched:
        if key is None if dim == DAY else (dim and not visits):  # no rows; a value seen only on visits that
            continue                                              # began before the range
        out[(key,) if dim else ()] = {m: mets.tidy(m, v) for m, v in zip(query.metrics, metrics, strict=True)}
    return out


def _values(query, dim: str) -> str:
    if dim in VISIT_DIMS or dim in EXIT_DIMS:
        value = dims.visit_expr(dim).replace(f"s.{dims.visit_column(dim)}", "value")
    else:
        value = "value"
    group = " GROUP BY 1" if dim else ""
    if dim in dims.SKIP_EMPTY:
        group += " HAVING value IS NOT NULL"
    select = ", ".join(f"{_METRICS[m]} AS m_{m}" for m in query.metrics)
    return f"SELECT value, visits, {select} FROM ({_SUMS.format(value=value if dim else 'NULL', group=group)})"


def _days(query) -> str:
    """time:day: each bucket is a one-day range, so its row is the day's totals with the day as first day."""
    exprs = {"visitors": "visitors", "visits": "visits + cont_visits", "pageviews": "pageviews", "events": "events"}
    select = ", ".join(f"{exprs[m]} AS m_{m}" for m in query.metrics)
    return f"SELECT strftime(day, '%Y-%m-%d') AS label, visits, {select} FROM src WHERE visitors > 0"
