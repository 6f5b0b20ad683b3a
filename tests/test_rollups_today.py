"""Partial rollups of the days not finished yet (collector/rollups_today.py) answer exactly.

The stats rows of tests/test_stats_dayroll.py are stored in shuffled chunks, so every chunk holds late
events of earlier days, ids that come back, visits over midnight; after each chunk but the last the job's
step moves the partial rollups of the last two days on. Then the partial rows must equal the finished-day
build over the same events, and every covered card must equal the raw path and the Polars reference while
being answered from them (the reader adding the last chunk itself). Rows renumbered under the partial rows
(a vacuum after retention) or replaced between plan and statement must never be used.
"""

from __future__ import annotations

import datetime as dt
import random

import duckdb
import pytest
from test_stats_dayroll import SETTINGS, TODAY, ZONES, ask, check, crossing, daily_ids
from test_stats_support import frame, generate, sessionize, to_arrow

from collector import migrate, rollups, rollups_today
from collector.rollups import ROW_COLUMNS
from reports import rollup

COUNTS = ROW_COLUMNS.split(", ")[4:]
CHUNKS = 6


def partial_days(site: str) -> list[dt.date]:
    return [TODAY[site] - dt.timedelta(days=1), TODAY[site]]


def store_in_chunks(con, rows: list[dict], chunks: int, refresh_after, last: int = 0) -> None:
    """Stores rows in chunks, the last of them `last` rows if given (the reader adds what came after the step)."""
    even = chunks - 1 if last else chunks
    cuts = [(len(rows) - last) * i // even for i in range(even + 1)] + ([len(rows)] if last else [])
    for i in range(chunks):
        con.register("seed", to_arrow(rows[cuts[i]:cuts[i + 1]]))
        con.execute("INSERT INTO events SELECT * FROM seed")
        con.unregister("seed")
        if i < chunks - 1:
            refresh_after(i)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    rows = daily_ids([r for r in generate() if r["site"] in ZONES])
    rows += sessionize(crossing("shop.example", (23, 23, 23)) + crossing("blog.example", (21, 22, 22)))
    random.Random(11).shuffle(rows)
    con = duckdb.connect(str(tmp_path_factory.mktemp("today") / "strana.duckdb"))
    migrate.apply(con)
    runs = []

    def refresh_after(_):
        for site, tz in ZONES.items():
            runs.extend(rollups_today.refresh(con, site, day, tz) for day in partial_days(site))

    store_in_chunks(con, rows, CHUNKS, refresh_after, last=len(rows) // (2 * rollup.PARTIAL_SHARE))
    assert runs[:4] == ["built"] * 4 and set(runs[4:]) == {"stepped"}, runs
    for site, tz in ZONES.items():  # the days before are finished and rolled up
        day = dt.date(2026, 10, 10)
        while day < partial_days(site)[0]:
            rollups.build_day(con, site, day, tz)
            day += dt.timedelta(days=1)
    con.execute("CHECKPOINT")
    yield con, frame(rows)
    con.close()


@pytest.fixture
def own_store(store, tmp_path):
    """A copy of the module's store, for a test that moves its partial rollups on (refresh commits)."""
    con, df = store
    path = tmp_path / "strana.duckdb"
    con.execute(f"ATTACH '{path}' AS copy")
    con.execute("COPY FROM DATABASE strana TO copy")
    con.execute("DETACH copy")
    own = duckdb.connect(str(path))
    yield own, df
    own.close()


def nonzero_rows(con, table: str, site: str, day: dt.date) -> list[tuple]:
    cols = ROW_COLUMNS.replace("site, day, ", "")
    nonzero = " OR ".join(f"{c} <> 0" for c in COUNTS)
    return con.execute(f"SELECT {cols} FROM {table} WHERE site = $s AND day = $d AND ({nonzero}) ORDER BY ALL",
                       {"s": site, "d": day}).fetchall()


def used_partials(monkeypatch) -> list[int]:
    calls = []
    real = rollups_today.step_query
    monkeypatch.setattr(rollups_today, "step_query", lambda *a: calls.append(1) or real(*a))
    return calls


@pytest.mark.parametrize("most", [None, 12], ids=["one step per run", "steps of 12 events"])
def test_stepped_partial_rows_equal_the_finished_day_build(tmp_path, monkeypatch, most):
    """Also when each run moves on in many bounded transactions (a job far behind the store)."""
    moves = []
    real = rollups_today._move
    monkeypatch.setattr(rollups_today, "_move", lambda *a: moves.append(real(*a)) or moves[-1])
    rows = daily_ids([r for r in generate() if r["site"] in ZONES])
    rows += sessionize(crossing("shop.example", (23, 23, 23)) + crossing("blog.example", (21, 22, 22)))
    random.Random(5).shuffle(rows)
    con = duckdb.connect(str(tmp_path / "strana.duckdb"))
    migrate.apply(con)
    days = {"shop.example": [dt.date(2026, 10, 20), dt.date(2026, 10, 21), dt.date(2026, 11, 19)],
            "blog.example": [dt.date(2026, 10, 21), dt.date(2026, 10, 25), dt.date(2026, 10, 26)]}  # DST ends

    def refresh_after(_):
        for site, tz in ZONES.items():
            for day in days[site]:
                rollups_today.refresh(con, site, day, tz, most)

    store_in_chunks(con, rows, 5, refresh_after=refresh_after)
    refresh_after(None)
    for site, tz in ZONES.items():
        for day in days[site]:
            rollups.build_day(con, site, day, tz)
            assert nonzero_rows(con, "rollup_partial_days", site, day) == nonzero_rows(con, "rollup_days", site, day)
            assert (con.execute("SELECT events, far_ids, entry_split FROM rollup_partial_status WHERE site = $s AND "
                                "day = $d", {"s": site, "d": day}).fetchall()
                    == con.execute("SELECT events, far_ids, entry_split FROM rollup_status WHERE site = $s AND "
                                   "day = $d", {"s": site, "d": day}).fetchall() != [])
    assert rollups_today.refresh(con, "shop.example", days["shop.example"][0], "UTC") == "current"
    behind = sum(1 for _, below, top in moves if below < top)  # transactions that left some for the next
    assert (behind > 20) if most else (behind == 0), (behind, len(moves))
    con.close()


@pytest.mark.parametrize("site", list(ZONES))
def test_ranges_ending_today_are_answered_from_partial_rollups(store, monkeypatch, site):
    con, df = store
    today = TODAY[site]
    calls = used_partials(monkeypatch)

    def ago(n: int) -> str:
        return (today - dt.timedelta(days=n)).isoformat()

    day = {"date": today.isoformat()}
    check(con, df, site, ago(0), ago(0), monkeypatch, date_range="day", **day)  # today alone: no raw path now
    for n in (1, 2, 9):
        check(con, df, site, ago(n), ago(0), monkeypatch, **day)
    check(con, df, site, ago(7), ago(1), monkeypatch, date_range="7d", **day)
    check(con, df, site, "2026-11-01", "2026-11-30", monkeypatch, date_range="month", **day)
    assert calls


def test_partial_rows_that_no_longer_match_their_check_are_not_used(own_store, monkeypatch):
    """Rows renumbered (or counted differently) under the partial rollups: the reader takes the raw days,
    and the next run builds them again."""
    con, df = own_store
    site = "blog.example"
    today = TODAY[site].isoformat()
    con.execute("UPDATE rollup_partial_status SET checked = checked + 1 WHERE site = $s", {"s": site})
    plans = []
    real = rollup._source
    monkeypatch.setattr(rollup, "_source", lambda q, p, d, raw, parts: plans.append(bool(parts))
                        or real(q, p, d, raw, parts))
    start = (TODAY[site] - dt.timedelta(days=2)).isoformat()
    check(con, df, site, start, today, monkeypatch, date=today)
    assert plans[:2] == [True, False]  # tried, found stale in the statement, computed from raw events
    check(con, df, site, today, today, monkeypatch, used=False, date_range="day", date=today)  # raw path
    assert rollups_today.refresh(con, site, TODAY[site], ZONES[site]) == "built"


FILLER = ("INSERT INTO events (event_id, site, name, \"timestamp\", received_at, via, interactive) "
          "SELECT uuid(), 'old.example', 'pageview', TIMESTAMPTZ '2026-09-01 00:00:00+00' + to_seconds(i), now(), "
          "'api', true FROM range(400000) r(i)")


def test_rows_renumbered_by_a_vacuum_are_caught_by_the_check(tmp_path, monkeypatch):
    """Deleting most rows of older row groups (retention) lets DuckDB's checkpoint merge them, which numbers
    every later row anew: the partial rows' row id then means other events, and must not be used."""
    rows = daily_ids([r for r in generate() if r["site"] in ZONES])
    con = duckdb.connect(str(tmp_path / "strana.duckdb"))
    migrate.apply(con)
    con.execute(FILLER)
    site, today = "shop.example", TODAY["shop.example"]
    store_in_chunks(con, sorted(rows, key=lambda r: r["timestamp"]), 2,
                    lambda _: rollups_today.refresh(con, site, today, "UTC"))
    before = con.execute("SELECT max(rowid) FROM events").fetchone()[0]
    con.execute("DELETE FROM events WHERE site = 'old.example' AND rowid % 10 <> 0")  # retention, without forget()
    con.execute("CHECKPOINT")
    assert con.execute("SELECT max(rowid) FROM events").fetchone()[0] < before  # renumbered
    df = frame(rows)
    day = today.isoformat()
    calls = used_partials(monkeypatch)
    check(con, df, site, day, day, monkeypatch, date_range="day", used=False, date=day)  # the raw path
    assert calls  # tried and refused in the statement
    assert rollups_today.refresh(con, site, today, "UTC") == "built"
    check(con, df, site, day, day, monkeypatch, date_range="day", date=day)
    con.close()


def test_the_job_keeps_today_and_yesterday_until_the_day_rollups_have_them(own_store):
    con, _ = own_store
    now = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)
    done = rollups_today.refresh_pending(con, lambda s: ZONES.get(s, "UTC"), now=now)
    assert done == {"stepped": 3, "built": 1}, done  # shop's 11-20 has no partial rows yet
    rollups.build_day(con, "shop.example", dt.date(2026, 11, 19), "UTC")
    rollups_today.refresh_pending(con, lambda s: ZONES.get(s, "UTC"), now=now)
    kept = con.execute("SELECT site, day FROM rollup_partial_status ORDER BY ALL").fetchall()
    assert kept == [("blog.example", dt.date(2026, 11, 19)), ("blog.example", dt.date(2026, 11, 20)),
                    ("shop.example", dt.date(2026, 11, 20))]


def test_a_query_in_another_zone_than_the_partial_rows_computes_from_raw_events(store, monkeypatch):
    con, df = store
    calls = used_partials(monkeypatch)
    monkeypatch.setitem(SETTINGS.values["sites"]["blog.example"], "timezone", "UTC")
    day = TODAY["blog.example"].isoformat()
    ask(con, "blog.example", day, day, ["visitors", "visits"], [], monkeypatch, used=False, date_range="day", date=day)
    assert not calls


def test_partial_rows_far_behind_the_store_are_left_for_the_raw_path(store, monkeypatch):
    """Many events stored since the last step (the job off or behind): regrouping their visitors' day twice
    costs more than the day itself, so the card reads the raw events, with the same answer."""
    con, df = store
    calls = used_partials(monkeypatch)
    monkeypatch.setattr(rollup, "PARTIAL_SHARE", 10**9)
    site = "shop.example"
    day = TODAY[site].isoformat()
    check(con, df, site, day, day, monkeypatch, used=False, date_range="day", date=day)
    assert not calls


def test_a_run_behind_a_store_that_keeps_growing_stops_at_what_was_stored_when_it_began(own_store, monkeypatch):
    """Events stored faster than the job steps (after each of its transactions, more of the day's events than
    it moves over) do not keep one run going: it ends at the row id the store had when it began."""
    con, _ = own_store
    site = "shop.example"
    b = rollups.bounds(TODAY[site], ZONES[site])
    more = ('INSERT INTO events SELECT * FROM events WHERE site = $s AND "timestamp" >= $d AND "timestamp" < $e '
            'LIMIT 20')
    con.execute(more, {"s": site, "d": b["d"], "e": b["e"]})  # stored since the last step
    top = con.execute("SELECT max(rowid) + 1 FROM events").fetchone()[0]
    before = con.execute("SELECT below FROM rollup_partial_status WHERE site = $s AND day = $d",
                         {"s": site, "d": TODAY[site]}).fetchone()[0]
    assert before < top  # the module's store leaves its last chunk for the reader
    real, moves = rollups_today._move, []

    def storing_more(*args):
        moves.append(real(*args))
        assert len(moves) < 1000, "the run chases the store"
        con.execute(more, {"s": site, "d": b["d"], "e": b["e"]})
        return moves[-1]

    monkeypatch.setattr(rollups_today, "_move", storing_more)
    since = con.execute(rollups_today.STORED_SINCE, {"site": site, "yy": b["yy"], "e": b["e"], "old": before})
    assert since.fetchone()[0] >= 20
    assert rollups_today.refresh(con, site, TODAY[site], ZONES[site], 4) == "stepped"
    assert len(moves) >= 5
    assert con.execute("SELECT below FROM rollup_partial_status WHERE site = $s AND day = $d",
                       {"s": site, "d": TODAY[site]}).fetchone()[0] == top
    assert con.execute("SELECT max(rowid) + 1 FROM events").fetchone()[0] == top + 20 * len(moves)
