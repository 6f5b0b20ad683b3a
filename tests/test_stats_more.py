"""Stats API beyond the metric table: time zones, date ranges, comparisons, goals, CSV, OpenAPI, funnels,
realtime and filtered traffic — over HTTP against the real server, answers checked with Polars."""

from __future__ import annotations

import csv
import datetime as dt
import io
import time

import polars as pl
import pytest
from conftest import StranaServer
from test_stats_reference import goal_expr, reference
from test_stats_support import CONFIG, TODAY, frame, generate, write_store

SHOP = "shop.example"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    rows = generate()
    base = tmp_path_factory.mktemp("stats_more")
    write_store(base / "data", rows, drops=[(SHOP, dt.date(2026, 11, 19), "bot_ua", 12),
                                            (SHOP, dt.date(2026, 11, 18), "spam_referrer", 3),
                                            (SHOP, dt.date(2026, 9, 1), "bot_ua", 99)])
    config = base / "strana.toml"
    config.write_text(CONFIG)
    server = StranaServer(base / "data", config=config).start()
    client = server.client()
    yield client, frame(rows)
    client.close()
    server.stop()


def ask(client, **body) -> dict:
    body.setdefault("site_id", SHOP)
    body.setdefault("date", TODAY.isoformat())
    r = client.post("/api/v1/query", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def utc(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def test_event_at_2330_utc_lands_on_the_next_day_in_berlin(seeded):
    client, _ = seeded
    r = ask(client, site_id="tz.example", metrics=["visitors"], dimensions=["time:day"],
            date_range=["2026-11-10", "2026-11-11"])
    assert [(row["dimensions"][0], row["metrics"][0]) for row in r["results"]] == [("2026-11-10", 2),
                                                                                  ("2026-11-11", 1)]
    assert r["query"]["date_range"] == ["2026-11-10T00:00:00+01:00", "2026-11-11T23:59:59+01:00"]
    hours = ask(client, site_id="tz.example", metrics=["visitors"], dimensions=["time:hour"], date_range="day",
                date="2026-11-11")
    assert [row["dimensions"] for row in hours["results"]] == [["2026-11-11 00:00:00"]]


@pytest.mark.parametrize("name,first,last", [
    ("day", "2026-11-20", "2026-11-20"), ("7d", "2026-11-13", "2026-11-19"), ("28d", "2026-10-23", "2026-11-19"),
    ("30d", "2026-10-21", "2026-11-19"), ("91d", "2026-08-21", "2026-11-19"), ("month", "2026-11-01", "2026-11-30"),
    ("6mo", "2026-06-01", "2026-11-30"), ("12mo", "2025-12-01", "2026-11-30"), ("year", "2026-01-01", "2026-12-31"),
    ("all", "2026-10-10", "2026-11-20"),
])
def test_named_date_ranges(seeded, name, first, last):
    client, df = seeded
    r = ask(client, metrics=["visitors", "pageviews"], date_range=name)
    assert r["query"]["date_range"] == [f"{first}T00:00:00+00:00", f"{last}T23:59:59+00:00"]
    start, end = utc(dt.date.fromisoformat(first)), utc(dt.date.fromisoformat(last) + dt.timedelta(days=1))
    expected = reference(df, SHOP, start, end, "UTC", ["visitors", "pageviews"], [], [])[()]
    assert r["results"][0]["metrics"] == [expected["visitors"], expected["pageviews"]]


def test_iso_datetime_range_and_berlin_offsets(seeded):
    client, df = seeded
    a, b = "2026-11-01T06:00:00+00:00", "2026-11-02T18:30:00+00:00"
    r = ask(client, metrics=["visitors", "events"], date_range=[a, b])
    start, end = dt.datetime.fromisoformat(a), dt.datetime.fromisoformat(b) + dt.timedelta(microseconds=1)
    expected = reference(df, SHOP, start, end, "UTC", ["visitors", "events"], [], [])[()]
    assert r["results"][0]["metrics"] == [expected["visitors"], expected["events"]]
    berlin = ask(client, site_id="blog.example", metrics=["visitors"], date_range="7d")
    assert berlin["query"]["date_range"] == ["2026-11-13T00:00:00+01:00", "2026-11-19T23:59:59+01:00"]


def test_previous_period_comparison_and_time_labels(seeded):
    client, df = seeded
    metrics = ["visitors", "bounce_rate"]
    r = ask(client, metrics=metrics, date_range="7d", include={"comparisons": {"mode": "previous_period"}})
    now = reference(df, SHOP, utc(dt.date(2026, 11, 13)), utc(dt.date(2026, 11, 20)), "UTC", metrics, [], [])[()]
    before = reference(df, SHOP, utc(dt.date(2026, 11, 6)), utc(dt.date(2026, 11, 13)), "UTC", metrics, [], [])[()]
    row = r["results"][0]
    assert row["metrics"][0] == now["visitors"] and row["comparison"]["metrics"][0] == before["visitors"]
    assert abs(row["comparison"]["metrics"][1] - before["bounce_rate"]) <= 0.51
    assert row["comparison"]["change"][0] == round((now["visitors"] - before["visitors"]) / before["visitors"] * 100)
    assert row["comparison"]["change"][1] == round(row["metrics"][1] - row["comparison"]["metrics"][1], 1)
    assert r["query"]["comparison_date_range"] == ["2026-11-06T00:00:00+00:00", "2026-11-12T23:59:59+00:00"]

    series = ask(client, metrics=["visitors"], date_range="7d", dimensions=["time:day"],
                 include={"time_labels": True, "comparisons": {"mode": "previous_period"}})
    assert series["meta"]["time_labels"] == [f"2026-11-{d}" for d in range(13, 20)]
    for row in series["results"]:  # the n-th day pairs with the n-th day of the previous period
        day = dt.date.fromisoformat(row["dimensions"][0])
        assert row["comparison"]["dimensions"] == [(day - dt.timedelta(days=7)).isoformat()]


def test_year_over_year_custom_and_match_day_of_week(seeded):
    client, _ = seeded
    r = ask(client, metrics=["visitors"], date_range="7d", include={"comparisons": {"mode": "year_over_year"}})
    assert r["query"]["comparison_date_range"] == ["2025-11-13T00:00:00+00:00", "2025-11-19T23:59:59+00:00"]
    assert r["results"][0]["comparison"]["metrics"] == [0] and r["results"][0]["comparison"]["change"] == [100]
    r = ask(client, metrics=["visitors"], date_range="7d",
            include={"comparisons": {"mode": "custom", "date_range": ["2026-10-13", "2026-10-19"]}})
    assert r["query"]["comparison_date_range"][0] == "2026-10-13T00:00:00+00:00"
    r = ask(client, metrics=["visitors"], date_range="month", date="2026-11-20",
            include={"comparisons": {"mode": "previous_period", "match_day_of_week": True}})
    first = dt.date.fromisoformat(r["query"]["comparison_date_range"][0][:10])
    assert first.weekday() == dt.date(2026, 11, 1).weekday() and first <= dt.date(2026, 10, 2)


def test_ad_hoc_goal_in_the_query(seeded):
    client, df = seeded
    r = ask(client, metrics=["visitors", "events"], date_range="30d", goals=[{"event": "download"}],
            filters=[["is", "event:goal", ["download"]]])
    ev = df.filter((pl.col("site") == SHOP) & (pl.col("timestamp") >= utc(dt.date(2026, 10, 21)))
                   & (pl.col("timestamp") < utc(TODAY)) & pl.col("session_id").is_not_null()
                   & goal_expr({"event": "download"}))
    assert r["results"][0]["metrics"] == [ev["visitor_id"].n_unique(), ev.height]


def test_csv_export(seeded):
    client, _ = seeded
    body = {"site_id": SHOP, "metrics": ["visitors", "pageviews"], "date_range": "30d", "date": TODAY.isoformat(),
            "dimensions": ["event:page"]}
    as_json = client.post("/api/v1/query", json=body).json()
    for r in (client.post("/api/v1/query", json=body, headers={"accept": "text/csv"}),
              client.post("/api/v1/query", json={**body, "format": "csv"})):
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(r.text)))
        assert rows[0] == ["event:page", "visitors", "pageviews"]
        assert rows[1:] == [[row["dimensions"][0], *map(str, row["metrics"])] for row in as_json["results"]]


def test_openapi_describes_the_query_endpoint(seeded):
    client, _ = seeded
    schema = client.get("/schema/openapi.json").json()
    for path in ("/api/v1/query", "/api/v1/funnel", "/api/v1/realtime", "/api/v1/filtered"):
        assert path in schema["paths"], path
    body = schema["paths"]["/api/v1/query"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    name = body["$ref"].rsplit("/", 1)[1]
    props = schema["components"]["schemas"][name]["properties"]
    assert {"site_id", "metrics", "date_range", "dimensions", "filters", "order_by", "include"} <= set(props)


def funnel_reference(df: pl.DataFrame, steps: list[dict], start, end) -> list[int]:
    ev = df.filter((pl.col("site") == SHOP) & (pl.col("timestamp") >= start) & (pl.col("timestamp") < end)
                   & pl.col("session_id").is_not_null())
    ev = ev.with_columns([goal_expr(s).alias(f"s{i}") for i, s in enumerate(steps)]).sort("timestamp")
    reached: list[set] = [set() for _ in steps]
    for (_session,), group in ev.group_by(["session_id"]):
        k = 0
        for row in group.sort("timestamp").iter_rows(named=True):
            if k < len(steps) and row[f"s{k}"]:
                reached[k].add(row["visitor_id"])
                k += 1
    return [len(r) for r in reached]


def test_funnel_agrees_with_polars(seeded):
    client, df = seeded
    steps = [{"page": "/"}, {"page": "/pricing"}, {"event": "signup"}]
    r = client.post("/api/v1/funnel", json={"site_id": SHOP, "date_range": "30d", "date": TODAY.isoformat(),
                                            "steps": steps})
    assert r.status_code == 200, r.text
    got = r.json()
    expected = funnel_reference(df, steps, utc(dt.date(2026, 10, 21)), utc(TODAY))
    assert [s["visitors"] for s in got["steps"]] == expected
    assert got["steps"][1]["dropoff"] == expected[0] - expected[1]
    assert got["steps"][0]["label"] == "Visit /"
    named = client.post("/api/v1/funnel", json={"site_id": SHOP, "date_range": "30d", "date": TODAY.isoformat(),
                                                "steps": ["Visit /blog/**", "signup"]})
    assert named.status_code == 200, named.text
    bad = client.post("/api/v1/funnel", json={"site_id": SHOP, "date_range": "30d", "steps": ["nope", "signup"]})
    assert bad.status_code == 400 and bad.json()["error"].startswith("steps:")


def test_realtime_counts_the_last_five_minutes(seeded):
    client, _ = seeded
    for i in range(3):
        r = client.post("/api/event", json={"n": "pageview", "u": f"https://live.example/page{i % 2}",
                                            "d": "live.example", "r": "https://news.ycombinator.com/"},
                        headers={"user-agent": f"Mozilla/5.0 (X11; Linux x86_64; rv:12{i}.0) Gecko/20100101 "
                                               f"Firefox/12{i}.0", "x-forwarded-for": f"198.51.100.{i}"})
        assert r.status_code == 202
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        live = client.get("/api/v1/realtime", params={"site": "live.example"}).json()
        if live["visitors"] == 3:
            break
        time.sleep(0.1)
    assert live["visitors"] == 3
    assert {p["name"]: p["visitors"] for p in live["pages"]} == {"/page0": 2, "/page1": 1}
    assert live["sources"][0]["visitors"] == 3
    bare = client.get("/api/v1/stats/realtime/visitors", params={"site_id": "live.example"})
    assert bare.status_code == 200 and bare.json() == 3
    assert client.get("/api/v1/realtime").status_code == 400


def test_filtered_traffic_per_reason(seeded):
    client, _ = seeded
    r = client.get("/api/v1/filtered", params={"site": SHOP, "date_range": "7d", "date": "2026-11-20"}).json()
    assert [(x["reason"], x["dropped"]) for x in r["results"]] == [("bot_ua", 12), ("spam_referrer", 3)]
    assert r["total"] == 15 and r["results"][0]["description"]
    r = client.get("/api/v1/filtered", params={"site": SHOP, "date_range": "all", "date": "2026-11-20"}).json()
    assert r["total"] == 114
    bad = client.get("/api/v1/filtered", params={"site": SHOP, "date_range": "fortnight"})
    assert bad.status_code == 400 and bad.json()["error"].startswith("date_range")
