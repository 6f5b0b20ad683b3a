"""Daily rollups (collector/rollups.py, reports/rollup.py) answer exactly as the raw path and the Polars reference.

The seeded stats rows are re-keyed the way the collector keys visitors: one id
per visitor per UTC day (the day the visit began: a visit over midnight keeps
yesterday's id), so ids span two local days in Berlin, and hand-made visits
cross midnight in both zones (exit pages before and after midnight, the same id
on two days). Every answer must come from the rollups, equal the raw path's
(rollups off) and agree with tests/test_stats_reference.py — also for ranges
whose last days are not rolled up (today): those days are computed from raw
events and summed with the rolled-up ones.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import duckdb
import pytest
from test_stats_query import agree
from test_stats_reference import reference
from test_stats_support import START, _event, frame, generate, sessionize, write_store

from collector import rollups
from reports import rollup
from reports.stats import answer

ZONES = {"shop.example": "UTC", "blog.example": "Europe/Berlin"}
SETTINGS = SimpleNamespace(values={"sites": {"blog.example": {"timezone": "Europe/Berlin"}}})
NOW = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)  # days up to 2026-11-19 are finished (and rolled up)
TOTALS = ["visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration", "views_per_visit"]
DIMS = [("event:page", ["visitors", "visits", "pageviews", "events"]), ("event:name", ["visitors", "events"]),
        ("visit:source", ["visitors", "visits"]), ("visit:channel", ["visitors"]), ("visit:country", ["visitors"]),
        ("visit:device", ["visitors", "visits"]), ("visit:browser", ["visitors"]), ("visit:os", ["visitors"]),
        ("visit:entry_page", ["visitors", "visits"]), ("visit:utm_source", ["visitors", "visits"]),
        ("visit:exit_page", ["visitors", "visits"]), ("visit:exit_page_hostname", ["visitors", "visits"]),
        ("event:hostname", ["visitors", "visits", "pageviews"]),
        ("time:day", ["visitors", "visits", "pageviews", "events"])]
RANGES = [("2026-10-20", "2026-10-20"), ("2026-10-20", "2026-10-21"), ("2026-10-21", "2026-10-21"),
          ("2026-10-14", "2026-10-20"), ("2026-10-21", "2026-11-19"), ("2026-10-10", "2026-11-19")]


def crossing(site: str, utc_hours: tuple[int, ...], days=((10, 20), (10, 27), (11, 18))) -> list[dict]:
    """Visits that run over the site's midnight (23:50 → 00:10 local) on one id, after an earlier visit of that
    id on the same day and page; the first id comes back 2 hours after midnight (ids live on two days), the
    second's part after midnight has no pageview (its exit page is the one before midnight); and a next-day
    visit of another id."""
    rows = []
    for n, ((month, day), hour) in enumerate(zip(days, utc_hours, strict=True)):  # DST ends in between
        t0 = dt.datetime(2026, month, day, hour, 50, tzinfo=dt.UTC)
        vid, ses = 10**12 + 100 * sorted(ZONES).index(site) + n, 0  # ids (and so visits) per site
        quiet = n % 2 == 1
        steps = [(-180, "pageview", "/pricing"), (0, "pageview", "/"), (8, "pageview", "/pricing"),
                 (15, "signup", "/pricing"), (20, "signup" if quiet else "pageview", "/docs")]
        if not quiet:
            steps += [(140, "pageview", "/blog"), (150, "pageview", "/docs")]
        for i, (minutes, name, path) in enumerate(steps):
            rows.append(_event(site, name, t0 + dt.timedelta(minutes=minutes, seconds=i), path, vid, ses,
                               source="Google" if i == 0 else None, channel="Organic Search" if i == 0 else "Direct",
                               country="DE"))
        rows.append(_event(site, "pageview", t0 + dt.timedelta(hours=9), "/", vid + 7, ses, country="DE"))
    return rows


def daily_ids(rows: list[dict]) -> list[dict]:
    """visitor_id := (visitor, UTC day the visit began), as the daily salt and put_session's prev_visitor_id do."""
    began: dict[int, dt.datetime] = {}
    for r in rows:
        if r["session_id"] is not None:
            began[r["session_id"]] = min(began.get(r["session_id"], r["timestamp"]), r["timestamp"])
    for r in rows:
        if r["session_id"] is not None:
            day = (began[r["session_id"]].date() - START.date()).days
            r["visitor_id"] = (r["visitor_id"] * 97 + day + 1) % 2**62
    return rows


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    rows = daily_ids([r for r in generate() if r["site"] in ZONES])
    rows += sessionize(crossing("shop.example", (23, 23, 23)) + crossing("blog.example", (21, 22, 22)))
    path = tmp_path_factory.mktemp("dayroll") / "data"
    write_store(path, rows)
    con = duckdb.connect(str(path / "strana.duckdb"))
    built = rollups.build_pending(con, lambda s: ZONES.get(s, "UTC"), now=NOW)
    assert built == 2 * 41  # 2026-10-10 .. 2026-11-19 per site
    assert rollups.build_pending(con, lambda s: ZONES.get(s, "UTC"), now=NOW) == 4  # the last 2 days again
    yield con, frame(rows)
    con.close()


def ask(con, site, a, b, metrics, dims, monkeypatch, used=True, **extra):  # noqa: PLR0913
    body = {"site_id": site, "metrics": metrics, "dimensions": dims, "date_range": [a, b], "date": "2026-11-20",
            **extra}
    calls = []
    real = rollup.rows

    def spy(*args):
        got = real(*args)
        calls.append(got is not None)
        return got

    with monkeypatch.context() as m:
        m.setattr(rollup, "rows", spy)
        got = answer(con, body, SETTINGS)[1]
    assert all(calls) == used and calls, (body, calls)
    with monkeypatch.context() as m:
        m.setattr(rollup, "rows", lambda *args: None)
        raw = answer(con, body, SETTINGS)[1]
    assert got == raw, body
    return got


def check(con, df, site, a, b, monkeypatch, used=True, **extra):
    """Totals and every covered dimension over [a, b]: from the rollups (or not: `used`), equal to the raw path
    and to the Polars reference."""
    tz = ZONES[site]
    zone = ZoneInfo(tz)
    start = dt.datetime.combine(dt.date.fromisoformat(a), dt.time(), tzinfo=zone).astimezone(dt.UTC)
    end = dt.datetime.combine(dt.date.fromisoformat(b) + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    end = end.astimezone(dt.UTC)
    got = ask(con, site, a, b, TOTALS, [], monkeypatch, used, **extra)
    agree(got, reference(df, site, start, end, tz, TOTALS, [], []), TOTALS)
    for dim, metrics in DIMS:
        got = ask(con, site, a, b, metrics, [dim], monkeypatch, used, **extra)
        agree(got, reference(df, site, start, end, tz, metrics, [dim], []), metrics)


@contextlib.contextmanager
def unrolled(con, since: str):
    """The rollups of the days from `since` on gone, as before the job has reached them (rolled back after)."""
    con.execute("BEGIN")
    try:
        for table in ("rollup_days", "rollup_status"):
            con.execute(f"DELETE FROM {table} WHERE day >= $d", {"d": dt.date.fromisoformat(since)})
        yield
    finally:
        con.execute("ROLLBACK")


@pytest.mark.parametrize("site", list(ZONES))
def test_rollups_equal_the_raw_path_and_the_reference(store, monkeypatch, site):
    con, df = store
    for a, b in RANGES:
        check(con, df, site, a, b, monkeypatch)


# the last local day with events, taken as today: 23:xx UTC on 2026-11-19 is 00:xx on 11-20 in Berlin
TODAY = {"shop.example": dt.date(2026, 11, 19), "blog.example": dt.date(2026, 11, 20)}


@pytest.mark.parametrize("site", list(ZONES))
def test_days_not_rolled_up_yet_are_computed_from_raw_events(store, monkeypatch, site):
    """Today and yesterday not rolled up: their rows come from the builder's SQL over raw events, summed with
    the rolled-up days; visits run from 11-18 into 11-19 on an id that comes back after midnight."""
    con, df = store
    today = TODAY[site]
    day = {"date": today.isoformat()}

    def ago(n: int) -> str:
        return (today - dt.timedelta(days=n)).isoformat()

    with unrolled(con, ago(1)):
        for n in (2, 9, 30):
            check(con, df, site, ago(n), ago(0), monkeypatch, **day)
        check(con, df, site, "2026-11-01", "2026-11-30", monkeypatch, date_range="month", **day)
        check(con, df, site, ago(7), ago(1), monkeypatch, date_range="7d", **day)
        check(con, df, site, ago(30), ago(1), monkeypatch, date_range="30d", **day)
        # nothing rolled up in the range: the raw path (cheaper than computing its days the builder's way)
        check(con, df, site, ago(0), ago(0), monkeypatch, used=False, date_range="day", **day)
    with unrolled(con, ago(0)):  # only today: visits over midnight start on a rolled-up day
        for n in (1, 14):
            check(con, df, site, ago(n), ago(0), monkeypatch, **day)
        check(con, df, site, "2026-11-01", "2026-11-30", monkeypatch, date_range="month", **day)
    with unrolled(con, ago(2)):  # more than MAX_RAW_DAYS days to compute: the raw path
        ask(con, site, "2026-11-01", ago(0), ["visitors"], ["visit:exit_page"], monkeypatch, used=False, **day)


def test_the_crossing_visitor_counts_once(store, monkeypatch):
    con, _ = store
    for site in ZONES:
        one = ask(con, site, "2026-10-20", "2026-10-20", ["visitors", "visits"], [], monkeypatch)
        two = ask(con, site, "2026-10-21", "2026-10-21", ["visitors", "visits"], [], monkeypatch)
        both = ask(con, site, "2026-10-20", "2026-10-21", ["visitors", "visits"], [], monkeypatch)
        row = con.execute("SELECT carried FROM rollup_days WHERE site = $s AND day = '2026-10-21' AND dim = ''",
                          {"s": site}).fetchone()
        assert row[0] >= 1  # at least the hand-made visitor
        v1, v2, v12 = (r["results"][0]["metrics"][0] for r in (one, two, both))
        assert v12 == v1 + v2 - row[0]


def test_comparisons_and_fallbacks(store, monkeypatch):
    con, _ = store
    ask(con, "shop.example", "2026-11-01", "2026-11-15", TOTALS, [], monkeypatch,
        include={"comparisons": {"mode": "previous_period"}})
    # today (not rolled up) and days before the data have no events: they add nothing
    ask(con, "shop.example", "2026-11-10", "2026-11-20", ["visitors"], ["visit:exit_page"], monkeypatch)
    ask(con, "blog.example", "2026-10-09", "2026-10-12", ["visitors"], [], monkeypatch)
    # filters and other metrics take the raw path
    ask(con, "shop.example", "2026-11-01", "2026-11-15", ["visitors", "bounce_rate"], ["visit:source"],
        monkeypatch, used=False)
    ask(con, "shop.example", "2026-11-01", "2026-11-15", ["visitors"], ["visit:source"], monkeypatch, used=False,
        filters=[["is", "visit:country", ["DE"]]])


def test_rebuild_is_idempotent_and_a_new_zone_is_not_used(store, monkeypatch):
    con, _ = store
    q = "SELECT * FROM rollup_days WHERE site = 'shop.example' AND day = '2026-11-02' ORDER BY dim, value"
    before = con.execute(q).fetchall()
    rollups.build_day(con, "shop.example", dt.date(2026, 11, 2), "UTC")
    assert con.execute(q).fetchall() == before and before
    with monkeypatch.context() as m:
        m.setattr(SETTINGS, "values", {"sites": {"shop.example": {"timezone": "Asia/Tokyo"}}})
        ask(con, "shop.example", "2026-11-01", "2026-11-03", ["visitors"], [], monkeypatch, used=False)


def test_the_job_is_in_the_table_and_builds_in_the_sites_zone(tmp_path):
    from collector import jobs

    write_store(tmp_path, sessionize(crossing("blog.example", (21, 22, 22))))
    con = duckdb.connect(str(tmp_path / "strana.duckdb"))
    runtime = SimpleNamespace(settings=SETTINGS, sink=SimpleNamespace(reader=con.cursor), salts=None)
    assert "rollups" in [name for name, *_ in jobs.job_table(runtime)]
    # an ingest-only process has no store: no job of the store's runs there (each would fail every hour)
    ingest = SimpleNamespace(settings=SETTINGS, sink=None, salts=None)
    assert [name for name, *_ in jobs.job_table(ingest)] == ["rotate_salts", "idle_release"]
    jobs.build_rollups(runtime)
    got = con.execute("SELECT DISTINCT tz FROM rollup_status WHERE site = 'blog.example'").fetchall()
    assert got == [("Europe/Berlin",)]
    assert jobs.build_rollups(runtime) is None  # resumable: nothing but the last 2 days again
    con.close()


def test_ids_on_three_days_turn_the_rollups_off(tmp_path, monkeypatch):
    """The seeded rows un-keyed (one id per visitor for 41 days): days with an id seen two days before are
    flagged, and a range that contains one is answered from raw events."""
    rows = [r for r in generate() if r["site"] == "shop.example"]
    write_store(tmp_path, rows)
    con = duckdb.connect(str(tmp_path / "strana.duckdb"))
    rollups.build_pending(con, lambda s: "UTC", now=NOW)
    flagged = con.execute("SELECT day FROM rollup_status WHERE far_ids > 0 ORDER BY day").fetchall()
    assert flagged
    day = flagged[-1][0]
    ask(con, "shop.example", str(day - dt.timedelta(days=2)), str(day), TOTALS, [], monkeypatch, used=False)
    ask(con, "shop.example", str(day), str(day), TOTALS, [], monkeypatch)  # alone, the day is exact
    con.close()


def test_an_id_on_the_day_before_the_range_and_its_second_day_turns_the_rollups_off(tmp_path, monkeypatch):
    """A visit over midnight into the range's first day and another visit of that id a day later: the id is on
    three days, which the daily salt never does; the rollups would count it twice, so they must decline."""
    t0 = dt.datetime(2026, 10, 20, 23, 50, tzinfo=dt.UTC)
    rows = [_event("shop.example", "pageview", t0 + dt.timedelta(minutes=m), "/", 42, 0, country="DE")
            for m in (0, 20)]
    rows.append(_event("shop.example", "pageview", t0 + dt.timedelta(days=1, hours=12), "/", 42, 0, country="DE"))
    write_store(tmp_path, sessionize(rows))
    con = duckdb.connect(str(tmp_path / "strana.duckdb"))
    rollups.build_pending(con, lambda s: "UTC", now=NOW)
    got = ask(con, "shop.example", "2026-10-21", "2026-10-22", ["visitors"], ["visit:country"], monkeypatch,
              used=False)
    assert got["results"] == [{"dimensions": ["DE"], "metrics": [1]}]
    ask(con, "shop.example", "2026-10-22", "2026-10-22", ["visitors"], ["visit:country"], monkeypatch)
    con.close()


def test_days_without_events_are_rolled_up_as_zeros(tmp_path, monkeypatch):
    """A quiet site: events on two days a week apart. The days between are built the short way (a zero totals
    row and a status row) and a range over the gap answers from the rollups as the raw path does."""
    t0 = dt.datetime(2026, 11, 2, 23, 50, tzinfo=dt.UTC)
    rows = [_event("shop.example", "pageview", t0 + dt.timedelta(minutes=m), p, 42, 0, country="DE")
            for m, p in ((0, "/"), (20, "/docs"))]  # a visit over midnight into 11-03
    rows += [_event("shop.example", "pageview", t0 + dt.timedelta(days=7, hours=h), "/", 43, 0, country="FR")
             for h in (1, 2)]
    write_store(tmp_path, sessionize(rows))
    con = duckdb.connect(str(tmp_path / "strana.duckdb"))
    assert rollups.build_pending(con, lambda s: "UTC", now=NOW) == 18  # 11-02 .. 11-19
    gap = con.execute("SELECT dim, value, visitors, visits, pageviews, events FROM rollup_days "
                      "WHERE site = 'shop.example' AND day = '2026-11-05'").fetchall()
    assert gap == [("", None, 0, 0, 0, 0)]
    assert con.execute("SELECT events, far_ids FROM rollup_status WHERE day = '2026-11-05'").fetchone() == (0, 0)
    for dim, metrics in [*DIMS, (None, TOTALS)]:
        ask(con, "shop.example", "2026-11-02", "2026-11-12", metrics, [dim] if dim else [], monkeypatch)
    got = ask(con, "shop.example", "2026-11-03", "2026-11-09", ["visitors", "pageviews"], [], monkeypatch)
    assert got["results"][0]["metrics"] == [1, 1]
    con.close()
