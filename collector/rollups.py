"""Build the daily rollups (migration 007) that answer unfiltered dashboard cards without scanning events.

One site-day at a time, in the site's time zone, from the events of that day
and the day before (plus the ids and visits of the day before that, for the
checks). Each build is DELETE + INSERT of the site-day in one transaction, so
it is idempotent, and `build_pending` resumes where it stopped: it builds the
finished days not built yet (or built under another zone) and always rebuilds
the last `rebuild` finished days, which absorbs late events. The algebra that
turns these rows into exact answers for a range of days is in reports/rollup.py
and reports/METRICS.md, "Daily rollups".
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from zoneinfo import ZoneInfo

log = logging.getLogger("strana.rollups")

EVENT_DIMS = {"event:page": "pathname", "event:name": "name", "event:hostname": "hostname"}
VISIT_DIMS = {  # visit dimension -> column of the per-visit-day row (first value of the visit's day)
    "visit:source": "source", "visit:referrer": "referrer", "visit:channel": "channel",
    "visit:utm_source": "utm_source", "visit:utm_medium": "utm_medium", "visit:utm_campaign": "utm_campaign",
    "visit:utm_term": "utm_term", "visit:utm_content": "utm_content", "visit:country": "country",
    "visit:region": "region", "visit:city": "city", "visit:device": "device", "visit:browser": "browser",
    "visit:browser_version": "browser_version", "visit:os": "os", "visit:os_version": "os_version",
    "visit:entry_page": "entry_page", "visit:entry_page_hostname": "entry_host",
}
_FIRST = [c for c in VISIT_DIMS.values() if c not in ("entry_page", "entry_host")]
_PV = "name = 'pageview'"

_EV = ("CREATE OR REPLACE TEMP TABLE rl_ev AS SELECT session_id, visitor_id AS vid, \"timestamp\" AS ts, name, "
       "pathname, hostname, interactive AND name <> 'engagement' AS counted, \"timestamp\" >= $d AS today, "
       + ", ".join(_FIRST) +
       " FROM events WHERE site = $site AND \"timestamp\" >= $y AND \"timestamp\" < $e AND session_id IS NOT NULL")
_OLD = ("CREATE OR REPLACE TEMP TABLE rl_old AS SELECT DISTINCT session_id, visitor_id AS vid FROM events "
        "WHERE site = $site AND \"timestamp\" >= $yy AND \"timestamp\" < $y AND session_id IS NOT NULL")
_SD = ("CREATE OR REPLACE TEMP TABLE rl_sd AS SELECT session_id, today, any_value(vid) AS vid, "
       "epoch_us(min(ts)) AS t0, epoch_us(max(ts)) AS t1, count(*) FILTER (WHERE counted) AS k, "
       f"bool_or({_PV}) AS has_pv, "
       + ", ".join(f"arg_min_null({c}, ts) AS {c}" for c in _FIRST) +
       f", arg_min_null(pathname, ts) FILTER (WHERE {_PV}) AS entry_page, "
       f"arg_min_null(hostname, ts) FILTER (WHERE {_PV}) AS entry_host FROM rl_ev GROUP BY session_id, today")
_VIS = ("CREATE OR REPLACE TEMP TABLE rl_vis AS SELECT t.*, y.session_id IS NOT NULL AS cont, y.k AS yk, "
        "y.t1 AS yt1, y.has_pv AS y_pv FROM rl_sd t LEFT JOIN rl_sd y ON y.session_id = t.session_id "
        "AND NOT y.today WHERE t.today")
_YOWN = ("CREATE OR REPLACE TEMP TABLE rl_yown AS SELECT * FROM rl_sd WHERE NOT today "
         "AND session_id NOT IN (SELECT session_id FROM rl_old)")

_TOTALS = f"""
SELECT $site, $day, '', NULL,
  (SELECT count(DISTINCT vid) FROM rl_vis),
  (SELECT count(*) FROM (SELECT vid FROM rl_vis INTERSECT SELECT vid FROM rl_sd WHERE NOT today)),
  0, 0,
  count(*) FILTER (WHERE NOT cont), 0, count(*) FILTER (WHERE cont),
  (SELECT count(*) FILTER (WHERE {_PV}) FROM rl_ev WHERE today),
  (SELECT count(*) FILTER (WHERE name <> 'engagement') FROM rl_ev WHERE today),
  count(*) FILTER (WHERE NOT cont AND k >= 2),
  count(*) FILTER (WHERE cont AND yk <= 1 AND yk + k >= 2),
  count(*) FILTER (WHERE cont AND k >= 2),
  coalesce(sum(t1 - t0) FILTER (WHERE NOT cont), 0),
  coalesce(sum(t1 - yt1) FILTER (WHERE cont), 0),
  coalesce(sum(t1 - t0) FILTER (WHERE cont), 0)
FROM rl_vis"""

_EVENT_DIM = f"""
WITH tv AS (SELECT DISTINCT {{col}} AS value, vid FROM rl_ev WHERE today),
     cv AS (SELECT value, count(*) AS n FROM (SELECT * FROM tv INTERSECT
            SELECT DISTINCT {{col}}, vid FROM rl_ev WHERE NOT today) GROUP BY value),
     ts AS (SELECT DISTINCT {{col}} AS value, session_id FROM rl_ev WHERE today),
     cs AS (SELECT value, count(*) AS n FROM (SELECT * FROM ts INTERSECT
            SELECT DISTINCT {{col}}, session_id FROM rl_ev WHERE NOT today) GROUP BY value),
     b AS (SELECT {{col}} AS value, count(DISTINCT vid) AS visitors, count(DISTINCT session_id) AS visits,
                  count(*) FILTER (WHERE {_PV}) AS pageviews, count(*) FILTER (WHERE name <> 'engagement') AS events
           FROM rl_ev WHERE today GROUP BY 1)
SELECT $site, $day, $dim, b.value, b.visitors, coalesce(cv.n, 0), 0, 0, b.visits, coalesce(cs.n, 0), 0,
       b.pageviews, b.events, 0, 0, 0, 0, 0, 0
FROM b LEFT JOIN cv ON cv.value IS NOT DISTINCT FROM b.value LEFT JOIN cs ON cs.value IS NOT DISTINCT FROM b.value"""

_VISIT_DIM = """
WITH own AS (SELECT {col} AS value, vid FROM rl_vis WHERE NOT cont),
     con AS (SELECT {col} AS value, vid FROM rl_vis WHERE cont),
     car AS (SELECT value, count(*) AS n FROM (SELECT DISTINCT * FROM own INTERSECT
             SELECT DISTINCT {col}, vid FROM rl_yown) GROUP BY value),
     ovl AS (SELECT value, count(*) AS n FROM (SELECT DISTINCT * FROM con INTERSECT SELECT DISTINCT * FROM own)
             GROUP BY value),
     o AS (SELECT value, count(DISTINCT vid) AS visitors, count(*) AS visits FROM own GROUP BY value),
     c AS (SELECT value, count(DISTINCT vid) AS visitors, count(*) AS visits FROM con GROUP BY value),
     v AS (SELECT value FROM o UNION SELECT value FROM c)
SELECT $site, $day, $dim, v.value, coalesce(o.visitors, 0), coalesce(car.n, 0), coalesce(c.visitors, 0),
       coalesce(ovl.n, 0), coalesce(o.visits, 0), 0, coalesce(c.visits, 0), 0, 0, 0, 0, 0, 0, 0, 0
FROM v LEFT JOIN o ON o.value IS NOT DISTINCT FROM v.value LEFT JOIN c ON c.value IS NOT DISTINCT FROM v.value
LEFT JOIN car ON car.value IS NOT DISTINCT FROM v.value LEFT JOIN ovl ON ovl.value IS NOT DISTINCT FROM v.value"""

_STATUS = """
SELECT $site, $day, $tz, (SELECT count(*) FROM rl_ev WHERE today),
  (SELECT count(*) FROM (SELECT vid FROM rl_vis INTERSECT SELECT vid FROM rl_old))
  + (SELECT count(*) FROM rl_vis WHERE session_id IN (SELECT session_id FROM rl_old)),
  (SELECT count(*) FROM rl_vis WHERE cont AND NOT y_pv AND has_pv), now()"""


def bounds(day: dt.date, tz_name: str) -> dict[str, dt.datetime]:
    """UTC instants of the local midnights: two days before, the day before, the day, the day after."""
    tz = ZoneInfo(tz_name)

    def at(d: dt.date) -> dt.datetime:
        return dt.datetime.combine(d, dt.time(), tzinfo=tz).astimezone(dt.UTC)

    one = dt.timedelta(days=1)
    return {"yy": at(day - 2 * one), "y": at(day - one), "d": at(day), "e": at(day + one)}


def build_day(con, site: str, day: dt.date, tz_name: str) -> None:
    """(Re)build one site-day: DELETE + INSERT in one transaction."""
    b = bounds(day, tz_name)
    ev = {"site": site, "y": b["y"], "d": b["d"], "e": b["e"]}
    con.execute(_EV, ev)
    con.execute(_OLD, {"site": site, "yy": b["yy"], "y": b["y"]})
    for text in (_SD, _VIS, _YOWN):
        con.execute(text)
    key = {"site": site, "day": day}
    con.execute("BEGIN")
    try:
        con.execute("DELETE FROM rollup_days WHERE site = $site AND day = $day", key)
        con.execute("DELETE FROM rollup_status WHERE site = $site AND day = $day", key)
        con.execute(f"INSERT INTO rollup_days {_TOTALS}", key)
        for dim, col in EVENT_DIMS.items():
            con.execute(f"INSERT INTO rollup_days {_EVENT_DIM.format(col=col)}", {**key, "dim": dim})
        for dim, col in VISIT_DIMS.items():
            con.execute(f"INSERT INTO rollup_days {_VISIT_DIM.format(col=col)}", {**key, "dim": dim})
        con.execute(f"INSERT INTO rollup_status {_STATUS}", {**key, "tz": tz_name})
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    for table in ("rl_ev", "rl_old", "rl_sd", "rl_vis", "rl_yown"):
        con.execute(f"DROP TABLE IF EXISTS {table}")


def finished_days(con, site: str, tz_name: str, now: dt.datetime, grace: dt.timedelta) -> list[dt.date]:
    """The site's local days from its first event to the last one that ended at least `grace` ago."""
    row = con.execute('SELECT epoch_us(min("timestamp")) FROM events WHERE site = $site', {"site": site}).fetchone()
    if not row or row[0] is None:
        return []
    tz = ZoneInfo(tz_name)
    first = (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=row[0])).astimezone(tz).date()
    last = (now - grace).astimezone(tz).date() - dt.timedelta(days=1)
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def build_pending(con, zone_of: Callable[[str], str], now: dt.datetime | None = None,
                  grace: dt.timedelta = dt.timedelta(hours=1), rebuild: int = 2) -> int:
    """Build every finished site-day not built yet under the site's zone, and the last `rebuild` ones again."""
    now = now or dt.datetime.now(dt.UTC)
    built = 0
    sites = [r[0] for r in con.execute("SELECT DISTINCT site FROM events ORDER BY 1").fetchall()]
    for site in sites:
        tz_name = zone_of(site) or "UTC"
        days = finished_days(con, site, tz_name, now, grace)
        done = {r[0] for r in con.execute("SELECT day FROM rollup_status WHERE site = $site AND tz = $tz",
                                          {"site": site, "tz": tz_name}).fetchall()}
        redo = set(days[-rebuild:]) if rebuild else set()
        for day in days:
            if day not in done or day in redo:
                build_day(con, site, day, tz_name)
                built += 1
    log.info("daily rollups: %d site-day(s) built", built)
    return built
