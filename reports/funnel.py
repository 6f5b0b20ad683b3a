"""POST /api/v1/funnel: ordered steps within one visit, with conversion and drop-off per step.

A visit reaches step k when it has events matching steps 1..k in that order
(each strictly later than the one before; the earliest match of each step is
taken, which is optimal for an ordered match). Counts are distinct visitors
whose visits reached the step, out of all visitors of the period.
"""

from __future__ import annotations

import datetime as dt

import msgspec
from litestar import post

from reports.errors import HANDLERS, bad_request
from reports.query import dates
from reports.query import filters as flt
from reports.query.errors import QueryError
from reports.query.metrics import distinct_visitors
from reports.query.parse import Goal, parse_goals
from reports.query.run import first_seen
from reports.query.sql import Builder, Scope
from reports.schemas import FunnelRequest, FunnelResponse, FunnelStep
from reports.stats import site_settings

MAX_STEPS = 8


def _steps(raw: list, configured: list[Goal]) -> list[Goal]:
    if not 2 <= len(raw) <= MAX_STEPS:
        raise QueryError("steps", f"a funnel has 2 to {MAX_STEPS} steps")
    by_name = {g.name: g for g in configured}
    out = []
    for step in raw:
        if isinstance(step, str):
            if step not in by_name:
                raise QueryError("steps", f"the goal {step!r} is not configured for this site")
            out.append(by_name[step])
        else:
            out.extend(parse_goals([step], "steps"))
    return out


def _pct(part: int, whole: int) -> float:
    return round(part / whole * 100, 2) if whole else 0.0


def funnel(con, body: dict, settings) -> dict:
    site = str(body.get("site_id") or "").strip().lower()
    if not site:
        raise QueryError("site_id", "is required")
    per_site = site_settings(settings, site)
    tz_name = per_site.get("timezone") or "UTC"
    tz = dates.zone(tz_name)
    today = dates.parse_day(body["date"], "date") if body.get("date") else dt.datetime.now(tz).date()
    seen = first_seen(con, site, tz_name) if body["date_range"] == "all" else None
    period = dates.resolve(body["date_range"], today, tz, seen)
    steps = _steps(body["steps"], parse_goals(per_site.get("goals"), "goals (site settings)"))
    trees = [flt.parse(f) for f in body.get("filters") or []]
    for tree in trees:
        if not all(d.startswith("visit:") for d in flt.dimensions_in(tree)):
            raise QueryError("filters", "funnels take visit filters only")
    scope = Scope(site, period.start.astimezone(dt.UTC), period.end.astimezone(dt.UTC), tz_name, [],
                  period.first_day.isoformat())
    b = Builder(scope, "events", [], trees)
    where = b.where_events()
    ctes = []
    for i, goal in enumerate(steps):
        cond = b.goal_condition(goal)
        if i == 0:
            ctes.append(f"f0 AS (SELECT e.session_id, any_value(e.visitor_id) AS visitor_id, min(e.\"timestamp\") AS t "
                        f"FROM ev e WHERE {cond} GROUP BY e.session_id)")
        else:
            ctes.append(f"f{i} AS (SELECT e.session_id, any_value(e.visitor_id) AS visitor_id, "
                        f"min(e.\"timestamp\") AS t FROM ev e JOIN f{i - 1} p ON e.session_id = p.session_id "
                        f"AND e.\"timestamp\" > p.t WHERE {cond} GROUP BY e.session_id)")
    counts = ", ".join(distinct_visitors(f"f{i}") for i in range(len(steps)))
    base = b.with_clause()
    if where:  # visit filters: keep the events of matching visits only
        joins = " JOIN ses s USING (session_id)"
        base = base.replace("ev AS (", "ev0 AS (", 1) + (f",\nev AS (SELECT e.* FROM ev0 e{joins} "
                                                          f"WHERE {' AND '.join(where)})")
        base = base.replace("FROM ev GROUP BY session_id", "FROM ev0 GROUP BY session_id")
    text = f"{base},\n{', '.join(ctes)}\nSELECT {distinct_visitors('ev')}, {counts}"
    row = con.execute(text, b.p).fetchone()
    total, reached = row[0], list(row[1:])
    out, previous = [], total
    for goal, visitors in zip(steps, reached, strict=True):
        out.append(FunnelStep(label=goal.name, visitors=visitors, conversion_rate=_pct(visitors, total),
                              conversion_rate_step=_pct(visitors, previous), dropoff=previous - visitors,
                              dropoff_percentage=_pct(previous - visitors, previous)))
        previous = visitors
    return msgspec.to_builtins(FunnelResponse(
        steps=out, all_visitors=total, entering_visitors=reached[0], never_entering_visitors=total - reached[0],
        conversion_rate=_pct(reached[-1], total), date_range=period.echo()))


@post("/api/v1/funnel", sync_to_thread=True, exception_handlers=HANDLERS, status_code=200,
      summary="Funnel: ordered steps within a visit")
def funnel_route(data: FunnelRequest, connect: object, settings: object) -> FunnelResponse:
    con = connect()
    try:
        return funnel(con, msgspec.to_builtins(data), settings)
    except QueryError as exc:
        return bad_request(str(exc))
    finally:
        con.close()
