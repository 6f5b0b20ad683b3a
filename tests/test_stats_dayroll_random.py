"""The daily rollups' algebra on random visits built to stress it, for every range of a week, rolled up or not.

Few visitors, few pages and many visits near local midnight (so visits cross
it, exit pages differ before and after, an id has several visits on its two
days), ids keyed per UTC day of the visit's start as the daily salt does (some
daytime visits keep the day before's id, still on two days), in
UTC and in Europe/Berlin over the DST change. For every range [a, b] of the
week, totals and each covered dimension answered from the rollups must equal
the raw path; with the last days not rolled up (today), too. Exit pages are
also checked against the Polars reference (tests/test_stats_reference.py).
"""

from __future__ import annotations

import datetime as dt
import random
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import duckdb
import pytest
from test_stats_query import agree
from test_stats_reference import reference
from test_stats_support import _event, frame, sessionize, write_store

from collector import rollups
from reports import rollup
from reports.stats import answer

ZONES = {"utc.example": "UTC", "berlin.example": "Europe/Berlin"}
SETTINGS = SimpleNamespace(values={"sites": {s: {"timezone": tz} for s, tz in ZONES.items()}})
FIRST = dt.date(2026, 10, 22)  # Berlin leaves DST on 2026-10-25
DAYS = [FIRST + dt.timedelta(days=i) for i in range(7)]
PAGES = ["/", "/a", "/b", "/docs/x"]  # /docs is on another hostname (test_stats_support._event)
CASES = [("visit:exit_page", ["visitors", "visits"]), ("visit:exit_page_hostname", ["visitors", "visits"]),
         ("visit:entry_page", ["visitors", "visits"]), ("visit:source", ["visitors", "visits"]),
         ("event:page", ["visitors", "visits", "pageviews", "events"]),
         ("time:day", ["visitors", "visits", "pageviews", "events"]),
         (None, ["visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration"])]


def visits(site: str, seed: int) -> list[dict]:
    rng = random.Random(seed)
    zone = ZoneInfo(ZONES[site])
    rows = []
    for visitor in range(12):
        for day in DAYS:
            for _ in range(rng.choice([0, 1, 1, 2, 3])):
                local = dt.datetime.combine(day, dt.time(), tzinfo=zone)
                if rng.random() < 0.6:  # shortly before midnight
                    start = local + dt.timedelta(hours=23, minutes=rng.randrange(20, 59))
                else:
                    start = local + dt.timedelta(minutes=rng.randrange(0, 23 * 60))
                # the daily salt's id: per site, visitor and UTC day (sessionize keys visits by id alone); some
                # daytime visits keep the day before's id (an id then has visits begun on both its days)
                back = 2 <= start.hour < 22 and rng.random() < 0.4
                start = start.astimezone(dt.UTC)
                vid = list(ZONES).index(site) * 10**6 + visitor * 1000 + (start.date() - FIRST).days + 7 - back
                ts = start + dt.timedelta(seconds=rng.randrange(60), microseconds=rng.randrange(10**6))
                for i in range(rng.randint(1, 5)):
                    name = rng.choice(["pageview"] * 4 + ["signup", "engagement"]) if i else "pageview"
                    rows.append(_event(site, name, ts, rng.choice(PAGES), vid, 0, source=rng.choice(
                        ["Google", None]) if i == 0 else None, country="DE"))
                    ts += dt.timedelta(minutes=rng.randrange(1, 20), seconds=rng.randrange(60))
    return rows


@pytest.fixture(scope="module", params=[11, 12])
def store(request, tmp_path_factory):
    rows = sessionize([r for site in ZONES for r in visits(site, request.param)])
    path = tmp_path_factory.mktemp("dayroll-random") / "data"
    write_store(path, rows)
    con = duckdb.connect(str(path / "strana.duckdb"))
    now = dt.datetime.combine(DAYS[-1] + dt.timedelta(days=2), dt.time(12), tzinfo=dt.UTC)
    rollups.build_pending(con, lambda s: ZONES[s], now=now)
    yield con, frame(rows)
    con.close()


def both(con, body: dict, monkeypatch) -> tuple[dict, bool]:
    """(answer, whether the rollups gave it), after checking it equals the raw path's."""
    calls = []
    real = rollup.rows

    def spy(*args):
        got = real(*args)
        calls.append(got is not None)
        return got

    with monkeypatch.context() as m:
        m.setattr(rollup, "rows", spy)
        got = answer(con, body, SETTINGS)[1]
    with monkeypatch.context() as m:
        m.setattr(rollup, "rows", lambda *args: None)
        raw = answer(con, body, SETTINGS)[1]
    assert got == raw, body
    return got, all(calls)


def ranges(last: dt.date):
    for i, a in enumerate(DAYS):
        for b in DAYS[i:]:
            if b <= last:
                yield a, b


def sweep(con, site: str, monkeypatch, today: dt.date, rolled_to: dt.date, ending_today: bool = False) -> int:
    """Every range ending by (or on) `today` × every case: equal to the raw path; returns how many the rollups
    gave."""
    used = 0
    for a, b in ranges(today):
        if ending_today and b != today:
            continue
        for dim, metrics in CASES:
            body = {"site_id": site, "metrics": metrics, "dimensions": [dim] if dim else [],
                    "date_range": [a.isoformat(), b.isoformat()], "date": today.isoformat()}
            _, from_rollups = both(con, body, monkeypatch)
            raw_days = (b - max(a, rolled_to)).days
            if dim != "visit:entry_page" and a <= rolled_to and raw_days <= rollup.MAX_RAW_DAYS:
                assert from_rollups, body  # every day after the first is checked for ids on three days
            used += from_rollups
    return used


@pytest.mark.parametrize("site", list(ZONES))
def test_every_range_equals_the_raw_path(store, monkeypatch, site):
    con, _ = store
    assert sweep(con, site, monkeypatch, DAYS[-1], DAYS[-1])


@pytest.mark.parametrize("site", list(ZONES))
@pytest.mark.parametrize("unrolled", [1, 2])
def test_ranges_ending_today_with_days_not_rolled_up(store, monkeypatch, site, unrolled):
    con, _ = store
    since = DAYS[-unrolled]
    con.execute("BEGIN")
    try:
        for table in ("rollup_days", "rollup_status"):
            con.execute(f"DELETE FROM {table} WHERE site = $s AND day >= $d", {"s": site, "d": since})
        assert sweep(con, site, monkeypatch, DAYS[-1], since - dt.timedelta(days=1), ending_today=True)
    finally:
        con.execute("ROLLBACK")


@pytest.mark.parametrize("site", list(ZONES))
def test_exit_pages_agree_with_the_reference(store, monkeypatch, site):
    con, df = store
    zone = ZoneInfo(ZONES[site])
    for a, b in ranges(DAYS[-1]):
        start = dt.datetime.combine(a, dt.time(), tzinfo=zone).astimezone(dt.UTC)
        end = dt.datetime.combine(b + dt.timedelta(days=1), dt.time(), tzinfo=zone).astimezone(dt.UTC)
        for dim in ("visit:exit_page", "visit:exit_page_hostname"):
            body = {"site_id": site, "metrics": ["visitors", "visits"], "dimensions": [dim],
                    "date_range": [a.isoformat(), b.isoformat()], "date": DAYS[-1].isoformat()}
            got, from_rollups = both(con, body, monkeypatch)
            assert from_rollups, body
            agree(got, reference(df, site, start, end, ZONES[site], ["visitors", "visits"], [dim], []),
                  ["visitors", "visits"])
