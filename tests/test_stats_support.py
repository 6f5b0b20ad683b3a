"""Shared by the stats tests: a seeded dataset, its store, a server on it, and Polars answers computed independently.

Nothing here reuses reports/: the reference answers are written with Polars
from the same rows that are inserted into DuckDB.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import uuid
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from collector import migrate
from collector.enhancers.put_session import PutSession
from collector.events import FIELDS, SCHEMA, Hit

TODAY = dt.date(2026, 11, 20)
START = dt.datetime(2026, 10, 10, tzinfo=dt.UTC)
DAYS = 41
SITES = {"shop.example": "UTC", "blog.example": "Europe/Berlin"}
GOALS = {"shop.example": [{"event": "signup"}, {"event": "purchase"}, {"page": "/blog/**"}, {"page": "/docs/*"}]}
CONFIG = """
[sites."shop.example"]
goals = [{event = "signup"}, {event = "purchase"}, {page = "/blog/**"}, {page = "/docs/*"}]
[sites."blog.example"]
timezone = "Europe/Berlin"
[sites."tz.example"]
timezone = "Europe/Berlin"
"""
PAGES = ["/", "/pricing", "/blog", "/blog/a", "/blog/b", "/blog/c/deep", "/docs", "/docs/start", "/about", "/contact"]
PAGE_W = [1 / (i + 1) for i in range(len(PAGES))]  # zipf-like
SOURCES = [  # source, referrer, channel, utm (source, medium, campaign)
    (None, None, "Direct", None), ("Google", "https://www.google.com/", "Organic Search", None),
    ("Hacker News", "https://news.ycombinator.com/", "Social", None),
    ("Newsletter", None, "Email", ("newsletter", "email", "autumn")),
    ("Bing", "https://www.bing.com/", "Paid Search", ("bing", "cpc", "brand")),
    ("example.org", "https://example.org/links", "Referral", None),
]
SOURCE_W = [30, 30, 10, 10, 8, 12]
PLACES = [("DE", "DE-BE", "Berlin"), ("US", "US-CA", "San Francisco"), ("FR", "FR-IDF", "Paris"),
          ("GB", "GB-ENG", "London"), ("JP", "JP-13", "Tokyo"), (None, None, None)]
PLACE_W = [25, 30, 12, 12, 8, 5]
DEVICES = [("desktop", "Chrome", "131", "Windows", "11"), ("mobile", "Safari", "17", "iOS", "17.4"),
           ("desktop", "Firefox", "128", "Linux", None), ("tablet", "Chrome", "130", "Android", "14")]
DEVICE_W = [45, 30, 15, 10]
PROP_KEYS = ("plan", "file")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
ROLLUPS = ("visit_seq", "interaction_seq", "duration_delta")  # the reference never reads these


def _event(site, name, ts, path, visitor, session, **extra) -> dict:
    row = {f: None for f, _, _ in FIELDS}
    host = f"docs.{site}" if path.startswith("/docs") else site
    row.update(event_id=uuid.UUID(int=random.getrandbits(128)).bytes, site=site, name=name, timestamp=ts,
               received_at=ts, via="event", hostname=host, pathname=path, visitor_id=visitor, session_id=session,
               interactive=name != "engagement")
    row.update(extra)
    return row


def generate(seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    random.seed(seed)
    rows: list[dict] = []
    for site in SITES:
        for _ in range(170):
            visitor = rng.getrandbits(63)
            country, region, city = rng.choices(PLACES, PLACE_W)[0]
            device, browser, bver, os_, osver = rng.choices(DEVICES, DEVICE_W)[0]
            fixed = dict(country=country, region=region, city=city, device=device, browser=browser,
                         browser_version=bver, os=os_, os_version=osver)
            for _ in range(rng.choice([1, 1, 1, 2, 3])):
                session = rng.getrandbits(63)
                ts = START + dt.timedelta(seconds=rng.randrange(DAYS * 86400), microseconds=rng.randrange(10**6))
                source, referrer, channel, utm = rng.choices(SOURCES, SOURCE_W)[0]
                first = dict(source=source, referrer=referrer, channel=channel, referrer_host=None)
                if utm:
                    first.update(utm_source=utm[0], utm_medium=utm[1], utm_campaign=utm[2])
                n_pages = 1 if rng.random() < 0.4 else rng.randint(2, 8)
                for i in range(n_pages):
                    path = rng.choices(PAGES, PAGE_W)[0]
                    rows.append(_event(site, "pageview", ts, path, visitor, session, **fixed,
                                       **(first if i == 0 else {"channel": "Direct"})))
                    ts += dt.timedelta(seconds=rng.randint(3, 200), microseconds=rng.randrange(10**6))
                    if rng.random() < 0.5:
                        rows.append(_event(site, "engagement", ts, path, visitor, session, **fixed,
                                           scroll_depth=rng.randint(0, 100), engagement_ms=rng.randint(500, 90000)))
                        ts += dt.timedelta(seconds=rng.randint(1, 30))
                    r = rng.random()
                    if r < 0.08:
                        rows.append(_event(site, "signup", ts, path, visitor, session, **fixed,
                                           props={"plan": rng.choice(["free", "pro"])}))
                    elif r < 0.13 and site == "shop.example":
                        rows.append(_event(site, "purchase", ts, path, visitor, session, **fixed,
                                           revenue_amount=round(rng.uniform(5, 200), 2), revenue_currency="EUR",
                                           props={"plan": "pro"}))
                    elif r < 0.18:
                        rows.append(_event(site, "download", ts, path, visitor, session, **fixed,
                                           props={"file": rng.choice(["a.pdf", "b.zip"])}))
                    ts += dt.timedelta(seconds=rng.randint(1, 120), microseconds=rng.randrange(10**6))
        for _ in range(25):  # anonymous hits (DNT under the anonymous policy): no visitor, no visit
            ts = START + dt.timedelta(seconds=rng.randrange(DAYS * 86400))
            rows.append(_event(site, "pageview", ts, rng.choice(PAGES), None, None, country="DE"))
    # Hand-made rows for the time zone test: 23:30 UTC is 00:30 the next day in Berlin.
    for hour, minute, visitor in ((23, 30, 1), (12, 0, 2), (22, 59, 3)):
        ts = dt.datetime(2026, 11, 10, hour, minute, tzinfo=dt.UTC)
        rows.append(_event("tz.example", "pageview", ts, "/", visitor, visitor + 100))
    return sessionize(rows)


def sessionize(rows: list[dict]) -> list[dict]:
    """Run the real consumer step over the rows in timestamp order, as the worker does, and keep what it
    sets: session_id (it may join visits of a visitor that ingest would join) and the visit rollups."""
    step = PutSession()
    for row in sorted(rows, key=lambda r: r["timestamp"]):
        us = (row["timestamp"] - EPOCH) // dt.timedelta(microseconds=1)
        hit = Hit(site=row["site"], name=row["name"], timestamp=us, visitor_id=row["visitor_id"],
                  interactive=row["interactive"])
        step(hit)
        for name in ("session_id", *ROLLUPS):
            row[name] = getattr(hit, name)
    return rows


def to_arrow(rows: list[dict]) -> pa.Table:
    cols = {}
    for name, typ, _ in FIELDS:
        values = [r[name] for r in rows]
        if name == "props":
            values = [list(v.items()) if v else None for v in values]
        cols[name] = pa.array(values, type=typ)
    return pa.table(cols, schema=SCHEMA)


def write_store(data_dir: Path, rows: list[dict], drops: list[tuple] = ()) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(data_dir / "strana.duckdb"))
    migrate.apply(con)
    con.register("seed", to_arrow(rows))
    con.execute("INSERT INTO events SELECT * FROM seed")
    if drops:
        con.executemany("INSERT INTO drops VALUES (?, ?, ?, ?)", list(drops))
    con.execute("CHECKPOINT")
    con.close()


def frame(rows: list[dict]) -> pl.DataFrame:
    data = {name: [r[name] for r in rows] for name, _, _ in FIELDS
            if name not in ("event_id", "props", *ROLLUPS)}
    for key in PROP_KEYS:
        data[f"event:props:{key}"] = [(r["props"] or {}).get(key, "(none)") for r in rows]
    return pl.DataFrame(data, schema_overrides={"visitor_id": pl.UInt64, "session_id": pl.UInt64,
                                                "scroll_depth": pl.Int64, "engagement_ms": pl.Int64})


def wildcard(pattern: str) -> str:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return f"^{out}$"
