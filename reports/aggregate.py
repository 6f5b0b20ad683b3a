"""GET /api/v1/stats/aggregate: the first, small reporting endpoint.

`?site=example.com&period=day|7d|30d|month|year|all` (default `day`), days in
UTC for now. Answers `{"results": {"pageviews": N, "visitors": N, "events": N}}`:
pageviews are events named `pageview`, visitors are distinct visitor ids
(hits without one, e.g. DNT under the anonymous policy, are counted as
pageviews and events but not as visitors), events are all stored events.
"""

from __future__ import annotations

import datetime as dt

from litestar import get
from litestar.exceptions import ValidationException

from reports.query.metrics import distinct_visitors

PERIODS = ("day", "7d", "30d", "month", "year", "all")


def period_bounds(period: str, today: dt.date) -> tuple[dt.date | None, dt.date]:
    """[start, end) as dates; start None means from the beginning."""
    end = today + dt.timedelta(days=1)
    if period == "day":
        return today, end
    if period == "7d":
        return today - dt.timedelta(days=6), end
    if period == "30d":
        return today - dt.timedelta(days=29), end
    if period == "month":
        return today.replace(day=1), end
    if period == "year":
        return today.replace(month=1, day=1), end
    return None, end


@get("/api/v1/stats/aggregate", sync_to_thread=True)
def aggregate(connect: object, site: str | None = None, period: str = "day") -> dict:
    if not site:
        raise ValidationException("site: is required, e.g. ?site=example.com")
    if period not in PERIODS:
        raise ValidationException(f"period: must be one of {', '.join(PERIODS)}")
    start, end = period_bounds(period, dt.datetime.now(dt.UTC).date())
    con = connect()
    try:
        row = con.execute(
            f"""
            WITH period AS (
                SELECT name, visitor_id FROM events
                WHERE site = $site AND "timestamp" >= coalesce($start::TIMESTAMPTZ, '-infinity'::TIMESTAMPTZ)
                  AND "timestamp" < $end::TIMESTAMPTZ)
            SELECT count(*) FILTER (WHERE name = 'pageview'),
                   {distinct_visitors('period')},
                   count(*)
            FROM period
            """,
            {"site": site.strip().lower(), "start": start and f"{start}T00:00:00+00:00",
             "end": f"{end}T00:00:00+00:00"},
        ).fetchone()
    finally:
        con.close()
    return {"results": {"pageviews": row[0], "visitors": row[1], "events": row[2]}}
