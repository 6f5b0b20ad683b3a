"""The stats API's fast paths (per-event visit rollups, reports/query/fast.py) answer exactly as the general path.

Two datasets: the seeded stats rows (sessions cut by the period's edges on
purpose) and events ingested through the real server (POST /api/v1/batch with
timestamps, IPs and browser user agents), read back from its store. For each,
the fast path must be the one taken, must give the very same answer as the
general `GROUP BY session_id` path, and must agree with the independent Polars
reference (tests/test_stats_reference.py), which never reads the rollups.
"""

from __future__ import annotations

import datetime as dt
import random
from types import SimpleNamespace

import duckdb
import polars as pl
import pytest
from test_stats_query import agree
from test_stats_reference import reference
from test_stats_support import EPOCH, frame, generate, write_store

from reports.query import fast
from reports.stats import answer

SETTINGS = SimpleNamespace(values={"sites": {"blog.example": {"timezone": "Europe/Berlin"}}})
VISIT_METRICS = ["visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration", "views_per_visit"]
BREAKDOWNS = [["visit:source"], ["visit:entry_page"], ["visit:entry_page_hostname"], ["visit:channel"],
              ["visit:utm_source"], ["visit:country"], ["visit:device", "visit:browser"], ["visit:os"],
              ["visit:browser_version", "visit:os_version"], ["visit:referrer", "visit:city"]]
VISIT_FILTERS = [[], [["is", "visit:country", ["DE", "FR"]]], [["contains_not", "visit:source", ["goo"],
                                                                 {"case_sensitive": False}]]]


class Spy:
    """Counts fast-path answers; `general()` turns the fast path off to get the general path's answer."""

    def __init__(self, monkeypatch):
        self.mp, self.used = monkeypatch, 0
        for name in ("totals_query", "with_rows"):
            real = getattr(fast, name)
            monkeypatch.setattr(fast, name, self._counting(real))

    def _counting(self, real):
        def wrapper(*args, **kwargs):
            self.used += 1
            return real(*args, **kwargs)
        return wrapper

    def general(self, con, body):
        with self.mp.context() as m:
            m.setattr(fast, "totals_ok", lambda *a: False)
            m.setattr(fast, "rows_ok", lambda *a: False)
            return answer(con, body, SETTINGS)[1]


def check(con, df, spy, site, start, end, tz, metrics, dims, filters):
    body = {"site_id": site, "metrics": metrics, "dimensions": dims, "filters": filters,
            "date_range": [start.isoformat(), (end - dt.timedelta(microseconds=1)).isoformat()]}
    before = spy.used
    got = answer(con, body, SETTINGS)[1]
    assert spy.used > before, f"the fast path did not answer {body}"
    assert got["results"] == spy.general(con, body)["results"], body
    agree(got, reference(df, site, start, end, tz, metrics, dims, filters), metrics)
    return got


def cut_windows(df: pl.DataFrame, site: str, n: int, seed: int) -> list[tuple[dt.datetime, dt.datetime]]:
    """Periods whose start falls inside a visit (between its 1st and 2nd events) and whose end inside another."""
    rng = random.Random(seed)
    ses = (df.filter((pl.col("site") == site) & pl.col("session_id").is_not_null()).sort("timestamp")
           .group_by("session_id").agg(pl.col("timestamp").alias("ts")).filter(pl.col("ts").list.len() >= 3))
    stamps = sorted(ses["ts"].to_list(), key=lambda ts: ts[0])
    out = []
    for _ in range(n):
        a, b = sorted(rng.sample(range(len(stamps)), 2))
        start = stamps[a][0] + (stamps[a][1] - stamps[a][0]) / 2
        end = stamps[b][1] + (stamps[b][2] - stamps[b][1]) / 2
        out.append((start.replace(microsecond=0), end.replace(microsecond=0)))
    return out


@pytest.fixture(scope="module")
def seeded_store(tmp_path_factory):
    rows = generate()
    path = tmp_path_factory.mktemp("rollups") / "data"
    write_store(path, rows)
    con = duckdb.connect(str(path / "strana.duckdb"), read_only=True)
    yield con, frame(rows)
    con.close()


@pytest.mark.parametrize("site,tz", [("shop.example", "UTC"), ("blog.example", "Europe/Berlin")])
def test_fast_path_is_exact_on_periods_that_cut_visits(seeded_store, monkeypatch, site, tz):
    con, df = seeded_store
    spy = Spy(monkeypatch)
    for start, end in cut_windows(df, site, 4, seed=len(site)):
        start, end = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
        check(con, df, spy, site, start, end, tz, VISIT_METRICS, [], [])
        for dims in BREAKDOWNS:
            for filters in VISIT_FILTERS:
                check(con, df, spy, site, start, end, tz, ["visitors", "visits"], dims, filters)


def test_fast_path_on_an_empty_period(seeded_store, monkeypatch):
    con, df = seeded_store
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    got = check(con, df, Spy(monkeypatch), "shop.example", start, start + dt.timedelta(days=1), "UTC",
                VISIT_METRICS, [], [])
    assert got["results"][0]["metrics"] == [0, 0, 0, 0, None, 0, 0.0]


# ---- through the real server ----

UAS = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
    "Safari/605.1.15",
]
REFERRERS = ["", "https://www.google.com/search?q=x", "https://news.ycombinator.com/item?id=1", "https://example.org/a"]
PATHS = ["/", "/pricing", "/blog/a", "/blog/b", "/docs/start", "/about"]
SITE = "ingest.example"


def browser_events(now: dt.datetime, seed: int = 3) -> list[dict]:
    """Visitors (IP + UA) with visits of pageviews and custom events, some starting with a custom event,
    some non-interactive events, gaps over 30 minutes between visits; timestamps over the last 2 days."""
    rng = random.Random(seed)
    out = []
    for v in range(60):
        ip, ua = f"10.1.{v // 200}.{v % 200 + 1}", UAS[v % len(UAS)]
        t = now - dt.timedelta(hours=47) + dt.timedelta(seconds=rng.randrange(40 * 3600))
        for _ in range(rng.choice([1, 1, 2, 3])):
            ref = rng.choice(REFERRERS)
            campaign = "?utm_source=news&utm_medium=email" if rng.random() < 0.2 else ""
            for i in range(rng.choice([1, 1, 2, 3, 5])):
                first = i == 0
                name = "signup" if (first and rng.random() < 0.1) else "pageview"
                event = {"n": name, "u": f"https://{SITE}{rng.choice(PATHS)}{campaign if first else ''}",
                         "d": SITE, "r": ref if first else "", "ip": ip, "user_agent": ua,
                         "timestamp": t.isoformat()}
                out.append(event)
                if rng.random() < 0.2:
                    out.append({**event, "n": "download", "i": rng.random() < 0.5, "r": "",
                                "timestamp": (t + dt.timedelta(seconds=3)).isoformat()})
                t += dt.timedelta(seconds=rng.randint(5, 900))
            t += dt.timedelta(minutes=rng.randint(31, 300))
    return [e for e in out if dt.datetime.fromisoformat(e["timestamp"]) < now - dt.timedelta(minutes=5)]


def test_ingested_through_http_fast_path_agrees_with_polars(make_server, monkeypatch):
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    events = sorted(browser_events(now), key=lambda e: e["timestamp"])
    server = make_server()
    rng = random.Random(1)
    with server.client() as c:
        for i in range(0, len(events), 97):  # in time order, shuffled within each request
            chunk = events[i:i + 97]
            rng.shuffle(chunk)
            r = c.post("/api/v1/batch", json={"events": chunk})
            assert r.status_code == 202, r.text
            assert r.json()["accepted"] == len(chunk), r.text
    server.stop()
    with server.db() as db:
        cur = db.execute('SELECT * REPLACE (epoch_us("timestamp") AS "timestamp", '
                         'epoch_us(received_at) AS received_at) FROM events ORDER BY "timestamp"')
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        assert len(rows) == len(events)
        for r in rows:
            for key in ("timestamp", "received_at"):
                r[key] = EPOCH + dt.timedelta(microseconds=r[key])
        _check_stamps(rows)
        df = frame(rows)
        spy = Spy(monkeypatch)
        windows = [(now - dt.timedelta(hours=48), now)] + cut_windows(df, SITE, 3, seed=5)
        for start, end in windows:
            check(db, df, spy, SITE, start, end, "UTC", VISIT_METRICS, [], [])
            for dims in [["visit:source"], ["visit:entry_page"], ["visit:browser"], ["visit:utm_source"]]:
                check(db, df, spy, SITE, start, end, "UTC", ["visitors", "visits"], dims, [])


def _check_stamps(rows: list[dict]) -> None:
    """What put_session stored: positions in time order, the 2nd interaction, durations that add up."""
    sessions: dict[int, list[dict]] = {}
    for r in rows:
        sessions.setdefault(r["session_id"], []).append(r)
    assert len(sessions) > 60
    for events in sessions.values():
        events.sort(key=lambda r: r["visit_seq"])
        assert [r["timestamp"] for r in events] == sorted(r["timestamp"] for r in events)
        assert [r["visit_seq"] for r in events] == list(range(1, len(events) + 1))
        counted = [r for r in events if r["interactive"] and r["name"] != "engagement"]
        assert [r["interaction_seq"] for r in counted] == list(range(1, len(counted) + 1))
        span = (events[-1]["timestamp"] - events[0]["timestamp"]) // dt.timedelta(microseconds=1)
        assert sum(r["duration_delta"] for r in events) == span
