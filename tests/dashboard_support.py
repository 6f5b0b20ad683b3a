"""Shared by the dashboard tests: the stats tests' seeded rows plus hostile ones, a config with goals and funnels,
a server on it, and a helper that asks the stats API what the dashboard should show."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from conftest import StranaServer
from test_stats_support import CONFIG, _event, generate, write_store

DATE = "2026-11-20"  # the dashboard's "today" in these tests (?date=), as the stats tests' TODAY
SITE = "shop.example"
XSS_PAGE = "/<script>window.__xss=1</script>"
XSS_EVENT = "<img src=x onerror=window.__xss=2>"
XSS_PROP = "<script>window.__xss=3</script>"
XSS_SOURCE = "<svg onload=window.__xss=4>"
DASH_CONFIG = CONFIG + """
[sites."shop.example".funnels]
"Blog to signup" = ["Visit /blog/**", "signup"]
[sites."live.example"]
timezone = "UTC"
"""
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36"


def hostile_rows() -> list[dict]:
    """Visitor-supplied text that would run as script if the page did not escape it."""
    ts = dt.datetime(2026, 11, 15, 12, 0, tzinfo=dt.UTC)
    common = dict(source=XSS_SOURCE, referrer="https://evil.example/\"><script>window.__xss=5</script>",
                  channel="Referral", country="DE")
    return [
        _event(SITE, "pageview", ts, XSS_PAGE, 9001, 9002, **common),
        _event(SITE, XSS_EVENT, ts + dt.timedelta(seconds=5), XSS_PAGE, 9001, 9002, props={"<b>k</b>": XSS_PROP}),
    ]


def start(base: Path) -> StranaServer:
    write_store(base / "data", generate() + hostile_rows(),
                drops=[(SITE, dt.date(2026, 11, 19), "bot_ua", 12), (SITE, dt.date(2026, 11, 18), "spam_referrer", 3)])
    config = base / "strana.toml"
    config.write_text(DASH_CONFIG)
    return StranaServer(base / "data", config=config).start()


def ask(client, body: dict) -> dict:
    r = client.post("/api/v1/query", json={"site_id": SITE, "date": DATE, **body})
    assert r.status_code == 200, r.text
    return r.json()


HEADLINE = ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration"]
