"""Build the daily rollups (migrations 007-008) that answer unfiltered dashboard cards without scanning events.

One site-day at a time, in the site's time zone, from the events of that day
and the day before (plus the ids and visits of the day before that, for the
checks). Each build is DELETE + INSERT of the site-day in one transaction, so
it is idempotent, and `build_pending` resumes where it stopped: it builds the
finished days not built yet (or built under another zone) and always rebuilds
the last `rebuild` finished days, which absorbs late events. The algebra that
turns these rows into exact answers for a range of days is in reports/rollup.py
and reports/METRICS.md, "Daily rollups".

The per-day SQL is kept as plain SELECTs (`prep`, `dim_rows`, `status`) because
the reader runs the very same text, as CTEs, for days not rolled up yet
(today, or a day the job has not reached): `day_query` is that form.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from zoneinfo import ZoneInfo

log = logging.getLogger("strana.rollups")

VERSION = 2  # what a build holds: 1 = migration 007's dimensions, 2 = also exit page and exit hostname

EVENT_DIMS = {"event:page": "pathname", "event:name": "name", "event:hostname": "hostname"}
VISIT_DIMS = {  # visit dimension -> column of the per-visit-day row (first value of the visit's day)
    "visit:source": "source", "visit:referrer": "referrer", "visit:channel": "channel",
    "visit:utm_source": "utm_source", "visit:utm_medium": "utm_medium", "visit:utm_campaign": "utm_campaign",
    "visit:utm_term": "utm_term", "visit:utm_content": "utm_content", "visit:country": "country",
    "visit:region": "region", "visit:city": "city", "visit:device": "device", "visit:browser": "browser",
    "visit:browser_version": "browser_version", "visit:os": "os", "visit:os_version": "os_version",
    "visit:entry_page": "entry_page", "visit:entry_page_hostname": "entry_host",
}
ENTRY_DIMS = ("visit:entry_page", "visit:entry_page_hostname")  # checked by entry_split
EXIT_DIMS = {"visit:exit_page": "exit_page", "visit:exit_page_hostname": "exit_host"}  # last pageview: since v2
_FIRST = [c for c in VISIT_DIMS.values() if c not in ("entry_page", "entry_host")]
_PV = "name = 'pageview'"

_PER_VISIT_DAY = {  # column of rl_sd -> its aggregate over a visit's events of one day
    **{c: f"arg_min_null({c}, ts)" for c in _FIRST},
    "entry_page": f"arg_min_null(pathname, ts) FILTER (WHERE {_PV})",
    "entry_host": f"arg_min_null(hostname, ts) FILTER (WHERE {_PV})",
    "exit_page": f"arg_max_null(pathname, ts) FILTER (WHERE {_PV})",
    "exit_host": f"arg_max_null(hostname, ts) FILTER (WHERE {_PV})",
}


def prep(dim: str | None = None, *, only: str | None = None, below: str | None = None,
         old: str | None = None) -> dict[str, str]:
    """The temp tables (builder) or CTEs (reader) a day's rows are computed from, with the per-visit values of
    every dimension (None) or of `dim` alone: rl_ids = the day's ids; rl_ev = events of the day and, of those
    ids only (every use of the day before meets the day's ids), of the day before; rl_old = visits and ids of
    the day before that; rl_sd = per (visit, day) values; rl_vis = the day's visits with their part of the day
    before; rl_yown = visits begun the day before.

    For the rollups of a day so far (collector/rollups_today.py): `only` names a relation of ids (`vid`) the
    day's ids are restricted to, `below` a parameter: only events stored below that row id, and `old` a
    parameter that flags (`old`) the events stored below it, from which `prior` derives the same tables as
    they were before those stored since."""
    column = {**VISIT_DIMS, **EXIT_DIMS}.get(dim or "")
    values = list(_PER_VISIT_DAY) if dim is None else [column] if column else []
    raw = [c for c in values if c in _FIRST]
    cols = ("session_id, visitor_id AS vid, \"timestamp\" AS ts, name, pathname, hostname, "
            "interactive AND name <> 'engagement' AS counted" + "".join(f", {c}" for c in raw)
            + (f", rowid < ${old} AS old" if old else ""))
    stored = f"rowid < ${below} AND " if below else ""
    where = f"FROM events WHERE {stored}site = $site AND session_id IS NOT NULL AND \"timestamp\" "
    exits = [c for c in values if c in EXIT_DIMS.values()]
    today = f"{where}>= $d AND \"timestamp\" < $e"
    if only:  # those of the ids with events today, off the id column alone; rl_ev then reads their events
        # Not a wide copy of their events that rl_ev would copy again: the builder's temp tables are uncompressed,
        # and that copy was the largest of a step's tables (the day's events of the ids, every column).
        ids = {"rl_ids": f"SELECT DISTINCT visitor_id AS vid {today} AND visitor_id IN (SELECT vid FROM {only})"}
        day_part = f"SELECT {cols}, true AS today {today} AND visitor_id IN (SELECT vid FROM rl_ids)"
    else:
        ids = {"rl_ids": f"SELECT DISTINCT visitor_id AS vid {today}"}
        day_part = f"SELECT {cols}, true AS today {today}"
    old_ids = (f"SELECT session_id, visitor_id AS vid, bool_or(rowid < ${old}) AS old" if old
               else "SELECT DISTINCT session_id, visitor_id AS vid")
    return {
        **ids,
        "rl_ev": (f"{day_part} UNION ALL SELECT {cols}, false {where}>= $y AND \"timestamp\" < $d "
                  "AND visitor_id IN (SELECT vid FROM rl_ids)"),
        "rl_old": (f"{old_ids} {where}>= $yy AND \"timestamp\" < $y AND visitor_id IN (SELECT vid FROM rl_ids)"
                   + (" GROUP BY session_id, visitor_id" if old else "")),
        "rl_sd": ("SELECT session_id, today, any_value(vid) AS vid, epoch_us(min(ts)) AS t0, epoch_us(max(ts)) AS t1, "
                  f"count(*) FILTER (WHERE counted) AS k, bool_or({_PV}) AS has_pv"
                  + "".join(f", {_PER_VISIT_DAY[c]} AS {c}" for c in values) +
                  " FROM rl_ev GROUP BY session_id, today"),
        "rl_vis": ("SELECT t.*, y.session_id IS NOT NULL AS cont, y.k AS yk, y.t1 AS yt1, y.has_pv AS y_pv"
                   + "".join(f", y.{c} AS y_{c}" for c in exits) +
                   " FROM rl_sd t LEFT JOIN rl_sd y ON y.session_id = t.session_id AND NOT y.today WHERE t.today"),
        "rl_yown": "SELECT * FROM rl_sd WHERE NOT today AND session_id NOT IN (SELECT session_id FROM rl_old)",
    }


_TOTALS = f"""
SELECT $site, $day, '', NULL,
  (SELECT count(vid) FROM (SELECT DISTINCT vid FROM rl_vis)),  -- not count(DISTINCT): reports/query/metrics.py
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

# Each dimension's rows are sums of 0/1 terms per distinct pair, grouped by value, so each set of pairs is
# formed once (columns: migrations/007_day_rollups.sql).
_EVENT_DIM = f"""
WITH t AS (SELECT {{col}} AS value, vid, session_id, name FROM rl_ev WHERE today),
     y AS (SELECT {{col}} AS value, vid, session_id FROM rl_ev WHERE NOT today),
     tv AS MATERIALIZED (SELECT DISTINCT value, vid FROM t),
     ts AS MATERIALIZED (SELECT DISTINCT value, session_id FROM t),
     terms(value, visitors, carried, visits, visits_carried, pageviews, events) AS (
       SELECT value, 1, 0, 0, 0, 0, 0 FROM tv
       UNION ALL SELECT value, 0, 1, 0, 0, 0, 0 FROM (SELECT * FROM tv INTERSECT SELECT DISTINCT value, vid FROM y)
       UNION ALL SELECT value, 0, 0, 1, 0, 0, 0 FROM ts
       UNION ALL SELECT value, 0, 0, 0, 1, 0, 0 FROM (SELECT * FROM ts INTERSECT
                                                     SELECT DISTINCT value, session_id FROM y)
       UNION ALL SELECT value, 0, 0, 0, 0, count(*) FILTER (WHERE {_PV}), count(*) FILTER (WHERE name <> 'engagement')
                 FROM t GROUP BY value)
SELECT $site, $day, $dim, value, sum(visitors), sum(carried), 0, 0, sum(visits), sum(visits_carried), 0,
       sum(pageviews), sum(events), 0, 0, 0, 0, 0, 0
FROM terms GROUP BY value"""

_VISIT_DIM = """
WITH own AS MATERIALIZED (SELECT DISTINCT {col} AS value, vid FROM rl_vis WHERE NOT cont),
     con AS MATERIALIZED (SELECT DISTINCT {col} AS value, vid FROM rl_vis WHERE cont),
     terms(value, visitors, carried, cont_visitors, cont_overlap, visits, cont_visits) AS (
       SELECT value, 1, 0, 0, 0, 0, 0 FROM own
       UNION ALL SELECT value, 0, 1, 0, 0, 0, 0 FROM (SELECT * FROM own INTERSECT
                                                     SELECT DISTINCT {col}, vid FROM rl_yown)
       UNION ALL SELECT value, 0, 0, 1, 0, 0, 0 FROM con
       UNION ALL SELECT value, 0, 0, 0, 1, 0, 0 FROM (SELECT * FROM con INTERSECT SELECT * FROM own)
       UNION ALL SELECT {col}, 0, 0, 0, 0, count(*) FILTER (WHERE NOT cont), count(*) FILTER (WHERE cont)
                 FROM rl_vis GROUP BY {col})
SELECT $site, $day, $dim, value, sum(visitors), sum(carried), sum(cont_visitors), sum(cont_overlap), sum(visits),
       0, sum(cont_visits), 0, 0, 0, 0, 0, 0, 0, 0
FROM terms GROUP BY value"""

# Exit page/hostname: a visit's last pageview depends on where the range ends, so a visit over midnight
# (begun yesterday, Y, going on today, T) counts on the day it began with the exit of that day alone, and
# today's row moves it to its exit over both days (the last pageview today, else yesterday's) when yesterday
# is in the range too. As pairs (value, id): D = visits begun today, by today's exit; CI / CF = visits begun
# yesterday, by today's exit / by the exit over both days; YO / YC = visits begun yesterday that ended
# yesterday / went on today, by yesterday's exit. Then, per value (reports/METRICS.md has the derivation):
#   visitors = |D|, carried = |(D ∪ CF) ∩ YO| − |CF \ D| + |YC \ YO|, cont_visitors = |CI|, cont_overlap = |CI ∩ D|
#   visits = #D, visits_carried = #YC − #CF, cont_visits = #CI
_EXIT_DIM = """
WITH vis AS (SELECT {col} AS value, CASE WHEN has_pv THEN {col} ELSE y_{col} END AS whole, vid, cont FROM rl_vis),
     yv AS (SELECT {col} AS value, vid, session_id IN (SELECT session_id FROM rl_vis WHERE cont) AS went_on
            FROM rl_yown),
     d AS MATERIALIZED (SELECT DISTINCT value, vid FROM vis WHERE NOT cont),
     ci AS (SELECT DISTINCT value, vid FROM vis WHERE cont),
     cf AS (SELECT DISTINCT whole AS value, vid FROM vis WHERE cont),
     yo AS (SELECT DISTINCT value, vid FROM yv WHERE NOT went_on),
     yc AS (SELECT DISTINCT value, vid FROM yv WHERE went_on),
     terms(value, visitors, carried, cont_visitors, cont_overlap, visits, visits_carried, cont_visits) AS (
       SELECT value, 1, 0, 0, 0, 0, 0, 0 FROM d
       UNION ALL SELECT value, 0, 1, 0, 0, 0, 0, 0 FROM ((SELECT * FROM d INTERSECT SELECT * FROM yo) UNION
                                                        (SELECT * FROM cf INTERSECT SELECT * FROM yo))
       UNION ALL SELECT value, 0, -1, 0, 0, 0, 0, 0 FROM (SELECT * FROM cf EXCEPT SELECT * FROM d)
       UNION ALL SELECT value, 0, 1, 0, 0, 0, 0, 0 FROM (SELECT * FROM yc EXCEPT SELECT * FROM yo)
       UNION ALL SELECT value, 0, 0, 1, 0, 0, 0, 0 FROM ci
       UNION ALL SELECT value, 0, 0, 0, 1, 0, 0, 0 FROM (SELECT * FROM ci INTERSECT SELECT * FROM d)
       UNION ALL SELECT value, 0, 0, 0, 0, 1, 0, 0 FROM vis WHERE NOT cont
       UNION ALL SELECT whole, 0, 0, 0, 0, 0, -1, 0 FROM vis WHERE cont
       UNION ALL SELECT value, 0, 0, 0, 0, 0, 1, 0 FROM yv WHERE went_on
       UNION ALL SELECT value, 0, 0, 0, 0, 0, 0, 1 FROM vis WHERE cont)
SELECT $site, $day, $dim, value, sum(visitors), sum(carried), sum(cont_visitors), sum(cont_overlap), sum(visits),
       sum(visits_carried), sum(cont_visits), 0, 0, 0, 0, 0, 0, 0, 0
FROM terms GROUP BY value"""

_STATUS = """
SELECT $site, $day, $tz, (SELECT count(*) FROM rl_ev WHERE today),
  (SELECT count(*) FROM (SELECT vid FROM rl_ev WHERE today INTERSECT SELECT vid FROM rl_old))
  + (SELECT count(DISTINCT session_id) FROM rl_ev WHERE today AND session_id IN (SELECT session_id FROM rl_old)),
  {entry_split}, now(), $version"""
_ENTRY_SPLIT = "(SELECT count(*) FROM rl_vis WHERE cont AND NOT y_pv AND has_pv)"


def status(entry_split: bool = True) -> str:
    """The SELECT of a site-day's status row; the reader leaves out entry_split (0) unless it reads entry pages,
    so that event dimensions need no per-visit rows."""
    return _STATUS.format(entry_split=_ENTRY_SPLIT if entry_split else "0")
STATUS_COLUMNS = "site, day, tz, events, far_ids, entry_split, built_at, version"
ROW_COLUMNS = ("site, day, dim, value, visitors, carried, cont_visitors, cont_overlap, visits, visits_carried, "
               "cont_visits, pageviews, events, engaged, engaged_next, cont_engaged, duration_us, duration_next_us, "
               "cont_duration_us")


def dim_rows(dim: str) -> str:
    """The SELECT of one site-day's rows of one dimension ('' = totals), over the tables of `prep`."""
    if not dim:
        return _TOTALS
    if dim in EVENT_DIMS:
        return _EVENT_DIM.format(col=EVENT_DIMS[dim])
    if dim in VISIT_DIMS:
        return _VISIT_DIM.format(col=VISIT_DIMS[dim])
    return _EXIT_DIM.format(col=EXIT_DIMS[dim])


ALL_DIMS = ["", *EVENT_DIMS, *VISIT_DIMS, *EXIT_DIMS]


def day_query(dim: str, suffix: str) -> str:
    """One site-day's rows of `dim` and its status row, as a query of CTEs: the builder's SQL, with the day's
    parameters renamed ($d -> $d{suffix}, ...) so several days fit in one statement. Columns: `status` (true on
    the one status row), then ROW_COLUMNS; the status row carries far_ids and entry_split as visitors and
    carried."""
    # the scans of events are cheaper read again by each consumer than materialized (measured on 10 M events)
    ctes = [f"{name} AS {'NOT ' if name in ('rl_ids', 'rl_ev', 'rl_old') else ''}MATERIALIZED ({text})"
            for name, text in prep(dim).items()]
    ctes.append(f"r({ROW_COLUMNS}) AS ({dim_rows(dim)})")
    ctes.append(f"s({STATUS_COLUMNS}) AS ({status(dim in ENTRY_DIMS)})")
    zeros = ", ".join("0" for _ in ROW_COLUMNS.split(", ")[6:])
    text = (f"WITH {', '.join(ctes)} SELECT false AS status, {ROW_COLUMNS} FROM r UNION ALL "
            f"SELECT true, site, day, $dim, NULL, far_ids, entry_split, {zeros} FROM s")
    return re.sub(r"\$(yy|y|day|d|e)\b", lambda m: f"${m.group(1)}{suffix}", text)


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
    params = {"site": site, **b}
    tables = prep()
    for name, text in tables.items():
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {text}",
                    {k: v for k, v in params.items() if re.search(rf"\${k}\b", text)})
    key = {"site": site, "day": day}
    # A day without events has no rows but the zero totals row: every dimension groups the day's ids (or
    # the day before's events of those ids), so its 17 statements are skipped (~0.25 s a day here; a quiet
    # site's gaps, and a first build that starts at a long-ago event, are mostly such days).
    quiet = con.execute("SELECT count(*) = 0 FROM rl_ids").fetchone()[0]
    con.execute("BEGIN")
    try:
        con.execute("DELETE FROM rollup_days WHERE site = $site AND day = $day", key)
        con.execute("DELETE FROM rollup_status WHERE site = $site AND day = $day", key)
        for dim in [""] if quiet else ALL_DIMS:
            con.execute(f"INSERT INTO rollup_days {dim_rows(dim)}", {**key, "dim": dim} if dim else key)
        con.execute(f"INSERT INTO rollup_status ({STATUS_COLUMNS}) {status()}",
                    {**key, "tz": tz_name, "version": VERSION})
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    for table in tables:
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
    """Build every finished site-day not built yet under the site's zone (or by an older VERSION), and the last
    `rebuild` ones again."""
    now = now or dt.datetime.now(dt.UTC)
    built = 0
    sites = [r[0] for r in con.execute("SELECT DISTINCT site FROM events ORDER BY 1").fetchall()]
    for site in sites:
        tz_name = zone_of(site) or "UTC"
        days = finished_days(con, site, tz_name, now, grace)
        done = {r[0] for r in con.execute("SELECT day FROM rollup_status WHERE site = $site AND tz = $tz "
                                          "AND version >= $version",
                                          {"site": site, "tz": tz_name, "version": VERSION}).fetchall()}
        redo = set(days[-rebuild:]) if rebuild else set()
        for day in days:
            if day not in done or day in redo:
                build_day(con, site, day, tz_name)
                built += 1
    log.info("daily rollups: %d site-day(s) built", built)
    return built
