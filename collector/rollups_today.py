"""Rollups of the days not finished yet, kept a few seconds behind the store, so a card for today reads the
events stored since then instead of the whole day (migration 009).

The finished-day rollups (collector/rollups.py) exist once a day is over; until then every card of a range
that ends today computed today from all of today's events, so reads grew with the day's volume (their time
and DuckDB's memory). Every term of a day's rows counts distinct pairs that hold one visitor id, or visits
(each of one id), so a day's rows are a sum over ids, and storing events changes them only by the ids of
those events. With B a row id of `events` (DuckDB numbers rows in the order they are committed) and V the
ids of the events stored from B on:

    rows(all stored) = rows(stored below B) + f(V, all stored) - f(V, stored below B)

where f is the builder's own SQL with the day's ids restricted to V (`prep(only=...)`), and the second f is
derived from the first's events by their row ids (`prior`), so the window is scanned once. The
`today_rollups` job keeps `rollup_partial_days` / `rollup_partial_status` at a recent B by that same step
(from scratch only on a day's first run or when the check fails); the reader adds the step from B to what
is stored when it runs, in the card's own statement (reports/rollup.py), so answers stay exact and a read
still sees every event accepted before it.

The check: row ids move only when DuckDB vacuums deleted rows at a checkpoint (after retention). The status
keeps the number of the window's events below B; a reader or a run that counts another number does not use
the rows (the reader computes the day from raw events as before, the job builds it again). See
reports/METRICS.md, "Today so far".
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from zoneinfo import ZoneInfo

from collector.rollups import ALL_DIMS, ENTRY_DIMS, ROW_COLUMNS, STATUS_COLUMNS, VERSION, bounds, dim_rows, prep, status

log = logging.getLogger("strana.rollups")

_COUNTS = ROW_COLUMNS.split(", ")[4:]  # visitors .. cont_duration_us
_WINDOW = ('site = $site AND session_id IS NOT NULL AND "timestamp" >= $yy AND "timestamp" < $e')
# the events a day's rows read (the day, and the two before it for its ids), stored below $old: the check
CHECK = f"SELECT count(*) FROM events WHERE rowid < $old AND {_WINDOW}"
# the window's events stored from $old on: how far behind the store the partial rows are
STORED_SINCE = f"SELECT count(*) FROM events WHERE rowid >= $old AND {_WINDOW}"
# the most of the window's events one transaction of the job moves the rows over (see `refresh`)
STEP_EVENTS = 50_000


def _since(upper: str | None) -> str:
    """The ids of the window's events stored from row id $old on (and below $upper)."""
    return (f"SELECT DISTINCT visitor_id AS vid FROM events WHERE rowid >= $old "
            f"{f'AND rowid < ${upper} ' if upper else ''}AND {_WINDOW}")


def _prior_of(text: str) -> str:
    return re.sub(r"\brl_(ids|ev|old|sd|vis|yown)\b", r"rl_\1_m", text)


def prior(dim: str | None) -> dict[str, str]:
    """The tables of `prep` as they were for the events stored below $old, from those flagged `old`."""
    later = prep(dim)
    return {
        "rl_ids_m": "SELECT DISTINCT vid FROM rl_ev WHERE today AND old",
        "rl_ev_m": "SELECT * FROM rl_ev WHERE old AND (today OR vid IN (SELECT vid FROM rl_ids_m))",
        "rl_old_m": "SELECT session_id, vid FROM rl_old WHERE old AND vid IN (SELECT vid FROM rl_ids_m)",
        **{f"{name}_m": _prior_of(later[name]) for name in ("rl_sd", "rl_vis", "rl_yown")},
    }


def _negated(source: str) -> str:
    return f"SELECT site, day, dim, value, {', '.join(f'-{c}' for c in _COUNTS)} FROM {source}"


def step_query(dim: str, suffix: str) -> str:
    """What the events stored from row id $old on add to a site-day's rows of `dim` and to its status row,
    as one query of CTEs (columns as `rollups.day_query`: `status`, then ROW_COLUMNS; the status row carries
    far_ids and entry_split as visitors and carried), parameters renamed with `suffix` like day_query's."""
    ctes = {"rl_new": _since(None), **prep(dim, only="rl_new", old="old"), **prior(dim)}
    parts = [f"{name} AS MATERIALIZED ({text})" for name, text in ctes.items()]
    entry = dim in ENTRY_DIMS
    parts += [f"r({ROW_COLUMNS}) AS ({dim_rows(dim)})", f"rm({ROW_COLUMNS}) AS ({_prior_of(dim_rows(dim))})",
              f"s({STATUS_COLUMNS}) AS ({status(entry)})",
              f"sm({STATUS_COLUMNS}) AS ({_prior_of(status(entry))})"]
    zeros = ", ".join("0" for _ in _COUNTS[2:])
    text = (f"WITH {', '.join(parts)} SELECT false AS status, {ROW_COLUMNS} FROM r "
            f"UNION ALL SELECT false, * FROM ({_negated('rm')}) "
            f"UNION ALL SELECT true, site, day, $dim, NULL, far_ids, entry_split, {zeros} FROM s "
            f"UNION ALL SELECT true, site, day, $dim, NULL, -far_ids, -entry_split, {zeros} FROM sm")
    return re.sub(r"\$(yy|y|day|d|e|old)\b", lambda m: f"${m.group(1)}{suffix}", text)


def _used(text: str, params: dict) -> dict:
    return {k: v for k, v in params.items() if re.search(rf"\${k}\b", text)}


def _tables(con, tables: dict[str, str], params: dict) -> None:
    for name, text in tables.items():
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {text}", _used(text, params))


def _drop(con, names) -> None:
    for name in names:
        con.execute(f"DROP TABLE IF EXISTS {name}")


def _sums(select: str) -> str:
    return (f"SELECT site, day, dim, value, {', '.join(f'sum({c})::BIGINT AS {c}' for c in _COUNTS)} FROM ({select}) "
            f"GROUP BY site, day, dim, value HAVING {' OR '.join(f'sum({c}) <> 0' for c in _COUNTS)}")


# The step's sums into the rows, touching only the rows of values whose counts moved: not the day's rows
# rewritten (a copy of each in a temp table, and every one deleted and inserted again, held until the commit),
# which grew with the day's distinct values: 54 MB of a 97 MB step late in a flat-out day (65,000 rows).
MERGE = (f"MERGE INTO rollup_partial_days t USING rl_merged m ON t.site = m.site AND t.day = m.day AND t.dim = m.dim "
         f"AND t.value IS NOT DISTINCT FROM m.value "
         f"WHEN MATCHED AND {' AND '.join(f't.{c} + m.{c} = 0' for c in _COUNTS)} THEN DELETE "
         f"WHEN MATCHED THEN UPDATE SET {', '.join(f'{c} = t.{c} + m.{c}' for c in _COUNTS)} "
         f"WHEN NOT MATCHED THEN INSERT VALUES (m.site, m.day, m.dim, m.value, {', '.join(f'm.{c}' for c in _COUNTS)})")


def _build(con, params: dict) -> tuple[int, int, int]:
    """The site-day's rows from scratch, over the events stored below $top: (events, far_ids, entry_split)."""
    tables = prep(below="top")
    _tables(con, tables, params)
    key = {k: params[k] for k in ("site", "day")}
    quiet = con.execute("SELECT count(*) = 0 FROM rl_ids").fetchone()[0]
    con.execute("DELETE FROM rollup_partial_days WHERE site = $site AND day = $day", key)
    for dim in [""] if quiet else ALL_DIMS:
        con.execute(f"INSERT INTO rollup_partial_days {dim_rows(dim)}", {**key, "dim": dim} if dim else key)
    got = con.execute(f"SELECT events, far_ids, entry_split FROM ({status()}) s({STATUS_COLUMNS})",
                      {**key, "tz": params["tz"], "version": VERSION}).fetchone()
    _drop(con, tables)
    return got


def _step(con, params: dict) -> tuple[int, int, int]:
    """The site-day's rows moved from the events stored below $old to those below $top: what the ids of the
    events stored in between add (and take), summed into the rows; returns the change of the status counts."""
    tables = {"rl_new": _since("top"), **prep(only="rl_new", below="top", old="old"), **prior(None)}
    _tables(con, tables, params)
    key = {k: params[k] for k in ("site", "day")}
    con.execute("CREATE OR REPLACE TEMP TABLE rl_delta AS SELECT * FROM rollup_partial_days WITH NO DATA")
    for dim in ALL_DIMS:  # a statement each: DuckDB runs the branches of one UNION at once, in one memory_limit
        rows = dim_rows(dim)
        named = {**key, "dim": dim} if dim else key
        con.execute(f"INSERT INTO rl_delta {rows}", named)
        con.execute(f"INSERT INTO rl_delta {_negated(f'({_prior_of(rows)}) r({ROW_COLUMNS})')}", named)
    con.execute(f"CREATE OR REPLACE TEMP TABLE rl_merged AS {_sums('SELECT * FROM rl_delta')}")
    con.execute(MERGE)
    status_of = f"SELECT events, far_ids, entry_split FROM ({status()}) s({STATUS_COLUMNS})"
    extra = {**key, "tz": params["tz"], "version": VERSION}
    plus = con.execute(status_of, extra).fetchone()
    minus = con.execute(_prior_of(status_of), extra).fetchone()
    _drop(con, [*tables, "rl_delta", "rl_merged"])
    return tuple(p - m for p, m in zip(plus, minus, strict=True))


def refresh(con, site: str, day: dt.date, tz_name: str, most: int | None = None) -> str:
    """Bring one site-day's partial rollups up to the events stored now: 'current', 'stepped' (from the stored
    row id on) or 'built' (from scratch: none yet, another zone or version, or the check failed; then stepped).

    In transactions of at most `most` (STEP_EVENTS) of the window's events each: a step's tables grow with
    its events, so one far behind (after an out-of-memory failure, a restart with a full spool, an import)
    moves on in bounded steps instead of one that never fits in memory_limit and so never catches up. It
    stops at the events stored when it began, so storing faster than it steps cannot keep it running."""
    most = most or STEP_EVENTS
    hows, end = set(), None
    while True:
        how, below, top = _move(con, site, day, tz_name, most, end)
        hows.add(how)
        end = top  # the first move's top; later moves aim for it too
        if below >= end:
            return "built" if "built" in hows else "stepped" if "stepped" in hows else "current"


def _target(con, params: dict, old: int, top: int, most: int) -> tuple[int, int]:
    """(the row id below which the window's events stored from `old` on are at most `most`, at most `top`;
    how many of them there are), in one scan.

    No ORDER BY: DuckDB keeps insertion order (preserve_insertion_order), which is row id order, so LIMIT takes
    the first; sorting them cost a step from scratch 73 MB (ORDER_BY) at 50,000. Were the order ever lost, a
    step would only cover more than `most`: the rows stay exact, as every row id below the target is moved."""
    n, last = con.execute(f"SELECT count(*), max(rowid) FROM (SELECT rowid FROM events WHERE rowid >= $old AND "
                          f"rowid < $top AND {_WINDOW} LIMIT $most + 1)",
                          {**_used(_WINDOW, params), "old": old, "top": top, "most": most}).fetchone()
    return (last, most) if n > most else (top, n)


def _move(con, site: str, day: dt.date, tz_name: str, most: int, end: int | None) -> tuple[str, int, int]:
    """One transaction of `refresh`: (how, the row id the rows are now below, the top it aimed for)."""
    params = {"site": site, "day": day, "tz": tz_name, **bounds(day, tz_name)}
    con.execute("BEGIN")
    try:
        top = end if end is not None else con.execute("SELECT coalesce(max(rowid), -1) + 1 FROM events").fetchone()[0]
        had = con.execute("SELECT tz, below, checked, version, events, far_ids, entry_split "
                          "FROM rollup_partial_status WHERE site = $site AND day = $day",
                          {"site": site, "day": day}).fetchone()
        valid = (had is not None and had[0] == tz_name and had[3] == VERSION
                 and con.execute(CHECK, _used(CHECK, {**params, "old": had[1]})).fetchone()[0] == had[2])
        if valid and had[1] >= top:
            con.execute("COMMIT")
            return "current", had[1], top
        target, stored = _target(con, params, had[1] if valid else 0, top, most)
        params["top"] = target
        if valid and not stored:  # nothing of the window stored since: the same rows, below the new row id
            counts = had[4:]
            how = "current"
        elif valid:
            change = _step(con, {**params, "old": had[1]})
            counts = tuple(h + c for h, c in zip(had[4:], change, strict=True))
            how = "stepped"
        else:
            counts = _build(con, params)
            how = "built"
        checked = con.execute(CHECK, _used(CHECK, {**params, "old": target})).fetchone()[0]
        con.execute("DELETE FROM rollup_partial_status WHERE site = $site AND day = $day", {"site": site, "day": day})
        con.execute("INSERT INTO rollup_partial_status (site, day, tz, below, checked, events, far_ids, entry_split, "
                    "version) VALUES ($site, $day, $tz, $top, $checked, $events, $far, $split, $version)",
                    {"site": site, "day": day, "tz": tz_name, "top": target, "checked": checked, "events": counts[0],
                     "far": counts[1], "split": counts[2], "version": VERSION})
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return how, target, top


def refresh_pending(con, zone_of: Callable[[str], str], now: dt.datetime | None = None) -> dict[str, int]:
    """Every site with events in the last two days: its local today, and yesterday until the finished-day
    rollups have it; partial rows of days rolled up (or older) are deleted."""
    now = now or dt.datetime.now(dt.UTC)
    sites = [r[0] for r in con.execute('SELECT DISTINCT site FROM events WHERE "timestamp" >= $since ORDER BY 1',
                                       {"since": now - dt.timedelta(hours=50)}).fetchall()]
    done: dict[str, int] = {}
    for site in sites:
        tz_name = zone_of(site) or "UTC"
        today = now.astimezone(ZoneInfo(tz_name)).date()
        built = {r[0] for r in con.execute(
            "SELECT day FROM rollup_status WHERE site = $site AND day >= $y AND tz = $tz AND version >= $version",
            {"site": site, "y": today - dt.timedelta(days=1), "tz": tz_name, "version": VERSION}).fetchall()}
        for day in (today - dt.timedelta(days=1), today):
            if day not in built:
                how = refresh(con, site, day, tz_name)
                done[how] = done.get(how, 0) + 1
        con.execute("BEGIN")
        for table in ("rollup_partial_days", "rollup_partial_status"):  # finished: the day rollups answer
            con.execute(f"DELETE FROM {table} WHERE site = $site AND (day < $y OR list_contains($built::DATE[], day))",
                        {"site": site, "y": today - dt.timedelta(days=1), "built": sorted(built)})
        con.execute("COMMIT")
    for table in ("rollup_partial_days", "rollup_partial_status"):  # sites without events for two days
        con.execute(f"DELETE FROM {table} WHERE day < $old", {"old": now.date() - dt.timedelta(days=2)})
    return done


def forget(con, site: str | None = None) -> None:
    """Drop a site's (or every) partial rollups, so the next run builds them from scratch: after a DELETE of
    events, whose vacuum at a later checkpoint renumbers rows (the check would catch it; this is sooner)."""
    where, params = ("WHERE site = $site", {"site": site}) if site else ("", {})
    for table in ("rollup_partial_days", "rollup_partial_status"):
        con.execute(f"DELETE FROM {table} {where}", params)
