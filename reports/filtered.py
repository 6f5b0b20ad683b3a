"""GET /api/v1/filtered: how many hits were dropped, per reason, over a period (the `drops` table).

Drops are counted per UTC day at ingest, so the period's days are taken as UTC
days here even for sites with another time zone.
"""

from __future__ import annotations

import datetime as dt

from litestar import get

from collector.events import DROP_REASONS
from reports.errors import HANDLERS, bad_request
from reports.query import dates
from reports.query.errors import QueryError
from reports.schemas import DropCount, FilteredResponse


@get("/api/v1/filtered", sync_to_thread=True, exception_handlers=HANDLERS,
     summary="Dropped hits per reason (bots, spam referrers, excluded paths, ...)")
def filtered(connect: object, site: str | None = None, date_range: str = "30d",
             date: str | None = None) -> FilteredResponse:
    if not site:
        return bad_request("site: is required, e.g. ?site=example.com")
    tz = dates.zone("UTC")
    try:
        today = dates.parse_day(date, "date") if date else dt.datetime.now(dt.UTC).date()
        value: object = date_range.split(",") if "," in date_range else date_range
        period = dates.resolve(value, today, tz, None if date_range != "all" else dt.date(1970, 1, 1))
    except QueryError as exc:
        return bad_request(str(exc))
    con = connect()
    try:
        rows = con.execute(
            "SELECT reason, sum(n)::BIGINT AS n FROM drops WHERE site = $site AND day BETWEEN $first AND $last "
            "GROUP BY reason ORDER BY n DESC, reason",
            {"site": site.strip().lower(), "first": period.first_day, "last": period.last_day}).fetchall()
    finally:
        con.close()
    results = [DropCount(reason=r, dropped=n, description=DROP_REASONS.get(r, "")) for r, n in rows]
    return FilteredResponse(results=results, total=sum(r.dropped for r in results), date_range=period.echo())
