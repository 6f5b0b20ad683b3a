"""The dashboard over HTTP: security headers, escaping, hashed assets, CSV export, bad URLs; and its URL state."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import parse_qs

import pytest
from dashboard_support import DATE, SITE, XSS_EVENT, XSS_PAGE, start

from reports.dashboard.state import Filter, State


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    server = start(tmp_path_factory.mktemp("dash-pages"))
    with server.client() as c:
        yield c
    server.stop()


def test_pages_carry_a_strict_csp_and_no_inline_script(client):
    for path in ("/", f"/{SITE}?date={DATE}", f"/{SITE}?date={DATE}&events=props&period=all"):
        r = client.get(path)
        assert r.status_code == 200, r.text
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        html = r.text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script> found"
        assert not re.search(r"\son[a-z]+\s*=", html.replace("&lt;", "<").split("<body", 1)[0]), "handler in <head>"
        assert not re.search(r"<[^>]+\son[a-z]+=", html), "inline event handler attribute"
        assert not re.search(r"<[^>]+\sstyle=", html), "inline style attribute"


def test_visitor_text_is_escaped(client):
    html = client.get(f"/{SITE}", params={"date": DATE, "period": "all", "events": "events"}).text
    assert "<script>window.__xss" not in html and not re.search(r"<(img|svg)[^>]*\son\w+=", html)
    assert XSS_EVENT.replace("<", "&lt;").replace(">", "&gt;") in html
    r = client.get(f"/{SITE}", params={"date": DATE, "period": "all", "f": f"is,event:page,{XSS_PAGE}"})
    assert r.status_code == 200 and "<script>window" not in r.text
    assert r.text.count("&lt;script&gt;window.__xss=1&lt;/script&gt;") >= 2  # the chip and the pages row


def test_assets_are_fingerprinted_and_cached_forever(client):
    html = client.get("/").text
    names = re.findall(r'(?:href|src)="(/assets/[^"]+)"', html)
    assert {n.rsplit(".", 1)[1] for n in names} >= {"css", "js", "svg"}
    for name in names:
        r = client.get(name)
        assert r.status_code == 200
        assert "immutable" in r.headers["cache-control"] and "max-age=31536000" in r.headers["cache-control"]
        digest = name.rsplit(".", 2)[1]
        assert hashlib.sha256(r.content).hexdigest().startswith(digest)
    assert client.get("/assets/dashboard.0000000000.css").status_code == 404


def test_site_list_shows_sites_with_events_and_configured_ones(client):
    html = client.get("/", params={"date": DATE}).text
    for site in ("shop.example", "blog.example", "tz.example", "live.example"):
        assert f'href="/{site}"' in html
    assert client.get("/live.example").status_code == 200  # configured, no events yet
    assert client.get("/nowhere.example").status_code == 404
    assert client.get("/favicon.ico").status_code == 404


def test_csv_export_is_the_stats_api_csv(client):
    params = {"date": DATE, "period": "7d", "f": "is,visit:country,DE", "sources": "channels"}
    r = client.get(f"/{SITE}/export/sources", params=params)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    api = client.post("/api/v1/query", json={"site_id": SITE, "date": DATE, "date_range": "7d", "format": "csv",
                                             "metrics": ["visitors"], "dimensions": ["visit:channel"],
                                             "filters": [["is", "visit:country", ["DE"]]]})
    assert r.text == api.text and r.text.startswith("visit:channel,visitors")
    assert client.get(f"/{SITE}/export/nope").status_code == 404


def test_a_bad_filter_in_the_url_is_a_clear_400(client):
    r = client.get(f"/{SITE}", params={"f": "is,visit:country,Germany"})
    assert r.status_code == 400 and "2-letter country code" in r.text
    r = client.get(f"/{SITE}", params={"f": "is,visit:nonsense,x", "period": "bogus", "metric": "nope"})
    assert r.status_code == 400 and "invalid filter dimension" in r.text


@pytest.mark.parametrize("query", [
    "", "period=7d", "period=custom&from=2026-11-01&to=2026-11-10&compare=off", "period=all&metric=pageviews",
    "f=is,visit:source,Google&f=contains,event:page,/blog,with,commas&pages=entry&date=2026-11-20",
])
def test_state_survives_a_round_trip_through_the_url(query):
    state = State.from_query(SITE, parse_qs(query))
    again = State.from_query(SITE, parse_qs(state.href()[1:]))
    assert again == state


def test_state_reads_what_the_api_is_asked():
    s = State.from_query(SITE, parse_qs("period=yesterday&date=2026-03-01&f=is,visit:source,Google"))
    assert s.date_range("UTC") == ["2026-02-28", "2026-02-28"]
    assert s.but(period="lastmonth").date_range("UTC") == ["2026-02-01", "2026-02-28"]
    assert s.api_filters() == [["is", "visit:source", ["Google"]]]
    # clicking a row replaces the filter on the same dimension
    href = s.with_filter("visit:source", "Bing")
    assert State.from_query(SITE, parse_qs(href[1:])).filters == (Filter("is", "visit:source", "Bing"),)
    # a custom range without valid days falls back to the default
    assert State.from_query(SITE, parse_qs("period=custom&from=2026-11-10&to=2026-11-01")).period == "30d"
