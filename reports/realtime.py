"""Realtime: visitors in the last five minutes, by page and by source (Plausible's current visitors)."""

from __future__ import annotations

from litestar import get

from reports.errors import HANDLERS, bad_request
from reports.query.metrics import distinct_visitors
from reports.schemas import Count, RealtimeResponse

WINDOW = "INTERVAL 5 MINUTE"


def _site(site: str | None, site_id: str | None) -> str | None:
    value = (site or site_id or "").strip().lower()
    return value or None


def current_visitors(con, site: str) -> int:
    recent = f'(SELECT visitor_id FROM events WHERE site = $site AND "timestamp" >= now() - {WINDOW})'
    return con.execute(f"SELECT {distinct_visitors(recent)}", {"site": site}).fetchone()[0]


def _top(con, site: str, column: str, fallback: str) -> list[Count]:
    rows = con.execute(
        f'SELECT coalesce({column}, $fallback) AS k, count(DISTINCT visitor_id) AS v FROM events WHERE site = $site '
        f'AND "timestamp" >= now() - {WINDOW} AND visitor_id IS NOT NULL GROUP BY k ORDER BY v DESC, k LIMIT 10',
        {"site": site, "fallback": fallback}).fetchall()
    return [Count(name=k, visitors=v) for k, v in rows]


@get("/api/v1/realtime", sync_to_thread=True, exception_handlers=HANDLERS, summary="Visitors in the last 5 minutes")
def realtime(connect: object, site: str | None = None, site_id: str | None = None) -> RealtimeResponse:
    name = _site(site, site_id)
    if not name:
        return bad_request("site: is required, e.g. ?site=example.com")
    con = connect()
    try:
        return RealtimeResponse(visitors=current_visitors(con, name), pages=_top(con, name, "pathname", "/"),
                                sources=_top(con, name, "source", "Direct / None"))
    finally:
        con.close()


@get("/api/v1/stats/realtime/visitors", sync_to_thread=True, exception_handlers=HANDLERS,
     summary="Current visitors as a bare number (Plausible Stats API v1)")
def realtime_visitors(connect: object, site_id: str | None = None, site: str | None = None) -> int:
    name = _site(site, site_id)
    if not name:
        return bad_request("site_id: is required, e.g. ?site_id=example.com")
    con = connect()
    try:
        return current_visitors(con, name)
    finally:
        con.close()
