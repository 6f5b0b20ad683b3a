"""Answer unfiltered dashboard cards from the daily rollups (migration 007, built by collector/rollups.py).

For a range of whole local days [a, b], every quantity is a sum of per-day
rows, corrected at the day boundaries (columns in migrations/007_day_rollups.sql):

    visitors = Σ_a..b visitors − Σ_a+1..b carried + (cont_visitors − cont_overlap)[a]
    visits   = Σ_a..b visits − Σ_a+1..b visits_carried + cont_visits[a]
    engaged  = Σ_a..b engaged + Σ_a+1..b engaged_next + cont_engaged[a]      (likewise duration)

which is exact when a visitor id, and a visit, lives on at most two consecutive
local days: ids are keyed by a daily salt and a visit over midnight keeps
yesterday's id, so this holds; the builder counts exceptions (`far_ids`) and a
range that contains one is not answered here. Anything this module does not
cover exactly returns None, and the caller takes the raw path: filters, time
or several dimensions, metrics other than those below, ranges that are not
whole days, or any day of the range not rolled up under the site's current
zone (today, future days of `month`, a new zone). See reports/METRICS.md, "Daily rollups".
"""

from __future__ import annotations

import duckdb

from collector.rollups import EVENT_DIMS, VISIT_DIMS
from reports.query import dimensions as dims
from reports.query import metrics as mets

TOTALS = {"visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration", "views_per_visit"}
EVENT = {"visitors", "visits", "pageviews", "events"}
VISIT = {"visitors", "visits"}
DAY = "time:day"  # one bucket per rolled-up day: that day's totals row (visits: begun that day or before)

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
FROM rollup_days WHERE site = $site AND dim = $dim AND day BETWEEN $a AND $b{group}"""

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
    allowed = (TOTALS if not dim else EVENT if dim in EVENT_DIMS or dim == DAY else VISIT if dim in VISIT_DIMS
               else set())
    return dim if query.metrics and set(query.metrics) <= allowed else None


def _days_ready(con, query, period, dim: str) -> bool:
    a, b = period.first_day, period.last_day
    row = con.execute(
        "SELECT count(*) FILTER (WHERE tz = $tz), coalesce(max(far_ids) FILTER (WHERE day >= $a + 2), 0), "
        "coalesce(max(entry_split) FILTER (WHERE day > $a), 0) FROM rollup_status "
        "WHERE site = $site AND day BETWEEN $a AND $b", {"tz": query.tz_name, "a": a, "b": b, "site": query.site}
    ).fetchone()
    ready, far, split = row
    if ready != (b - a).days + 1 or far:
        return False
    return not (split and dim in ("visit:entry_page", "visit:entry_page_hostname"))


def rows(con, query, period) -> dict[tuple, dict] | None:
    """All rows of the query over the period from the rollups, or None when they cannot answer it exactly."""
    dim = covered(query, period)
    if dim is None:
        return None
    try:
        if not _days_ready(con, query, period, dim):
            return None
    except duckdb.CatalogException:  # a store without migration 007
        return None
    params = {"site": query.site, "dim": dim, "a": period.first_day, "b": period.last_day}
    if dim == DAY:
        return _days(con, query, params)
    if dim in VISIT_DIMS:
        value = dims.visit_expr(dim).replace(f"s.{dims.visit_column(dim)}", "value")
    else:
        value = "value"
    group = " GROUP BY 1" if dim else ""
    if dim in dims.SKIP_EMPTY:
        group += " HAVING value IS NOT NULL"
    select = ", ".join(f"{_METRICS[m]} AS m_{m}" for m in query.metrics)
    text = f"SELECT value, visits, {select} FROM ({_SUMS.format(value=value if dim else 'NULL', group=group)})"
    out: dict[tuple, dict] = {}
    for value, visits, *metrics in con.execute(text, params).fetchall():
        if dim and not visits:  # a value seen only on visits that began before the range
            continue
        out[(value,) if dim else ()] = {m: mets.tidy(m, v) for m, v in zip(query.metrics, metrics, strict=True)}
    return out


def _days(con, query, params: dict) -> dict[tuple, dict]:
    """time:day: each bucket is a one-day range, so its row is the day's totals with the day as first day."""
    exprs = {"visitors": "visitors", "visits": "visits + cont_visits", "pageviews": "pageviews", "events": "events"}
    select = ", ".join(exprs[m] for m in query.metrics)
    fetched = con.execute(f"SELECT strftime(day, '%Y-%m-%d'), {select} FROM rollup_days WHERE site = $site "
                          "AND dim = $dim AND day BETWEEN $a AND $b AND visitors > 0", {**params, "dim": ""}).fetchall()
    return {(label,): {m: mets.tidy(m, v) for m, v in zip(query.metrics, values, strict=True)}
            for label, *values in fetched}
