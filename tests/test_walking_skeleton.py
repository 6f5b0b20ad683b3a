"""End to end: each way in, read back through the stats endpoint and from the DuckDB file."""

from __future__ import annotations

import gzip
import json
import re

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def test_event_pixel_batch_round_trip(server):
    with server.client() as c:
        r = c.post("/api/event", json={"n": "pageview", "u": "https://example.com/a?utm_source=x&secret=1",
                                       "d": "example.com", "r": "https://news.ycombinator.com/"},
                   headers={"user-agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"})
        assert r.status_code == 202 and r.text == "ok"
        assert r.headers["access-control-allow-origin"] == "*"

        r = c.get("/p.gif", params={"d": "example.com", "u": "https://example.com/newsletter"},
                  headers={"user-agent": FIREFOX})
        assert r.status_code == 200 and r.headers["content-type"] == "image/gif"
        assert r.content.startswith(b"GIF89a") and "no-cache" in r.headers["cache-control"]

        body = {"events": [
            {"n": "signup", "u": "https://example.com/pricing", "d": "example.com", "event_id": "evt-1",
             "p": {"plan": "pro"}, "$": {"amount": "9.5", "currency": "eur"}, "ip": "203.0.113.9",
             "user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Safari/605.1.15"},
            {"name": "pageview", "url": "https://example.com/", "domain": "example.com"},
        ]}
        r = c.post("/api/v1/batch", content=gzip.compress(json.dumps(body).encode()),
                   headers={"content-encoding": "gzip", "content-type": "application/json"})
        assert r.status_code == 202, r.text
        assert r.json() == {"accepted": 2, "ignored": []}

        stats = c.get("/api/v1/stats/aggregate", params={"site": "example.com", "period": "day"}).json()
        assert stats["results"]["pageviews"] == 3
        assert stats["results"]["events"] == 4
        assert stats["results"]["visitors"] >= 2

    server.stop()
    with server.db() as db:
        rows = db.execute("SELECT name, via, hostname, pathname, query, utm_source, props, revenue_amount, "
                          "revenue_currency FROM events ORDER BY via, name").fetchall()
    assert ("pageview", "event", "example.com", "/a", None, "x", None, None, None) in rows
    assert ("signup", "batch", "example.com", "/pricing", None, None, {"plan": "pro"}, 9.5, "EUR") in rows
    assert any(r[1] == "pixel" and r[3] == "/newsletter" for r in rows)


def test_cors_preflight(server):
    with server.client() as c:
        for path in ("/api/event", "/api/v1/batch", "/p.gif"):
            r = c.options(path, headers={"origin": "https://other.example", "access-control-request-method": "POST",
                                         "access-control-request-headers": "content-type"})
            assert r.status_code == 204
            assert r.headers["access-control-allow-origin"] == "*"
            assert "POST" in r.headers["access-control-allow-methods"]


def test_health_and_metrics(server):
    with server.client() as c:
        assert c.get("/healthz").json()["status"] == "ok"
        c.post("/api/event", json={"n": "pageview", "u": "https://example.com/"}, headers={"user-agent": FIREFOX})
        c.post("/api/event", content=b"{not json")
        text = c.get("/metrics").text
    assert 'strana_events_accepted_total{via="event"} 1.0' in text
    assert 'strana_ingest_rejected_total{reason="bad_json",route="/api/event"} 1.0' in text
    assert "strana_events_stored_total 1.0" in text
    assert "strana_commit_seconds_bucket" in text
    assert 'strana_enhancer_seconds_total{step="put_url"}' in text
    # where a long-running server's memory goes: DuckDB's own count, and the visits put_session keeps open
    assert "strana_active_visitors 1.0" in text
    duckdb_bytes = float(text.split("\nstrana_duckdb_memory_bytes ")[1].split()[0])
    assert 0 < duckdb_bytes < 1 << 30
    # split by what DuckDB holds it for, and the parts add up to the total
    tagged = r'^strana_duckdb_memory_tag_bytes\{tag="([^"]+)"\} (\S+)$'
    by_tag = {t: float(v) for t, v in re.findall(tagged, text, re.M)}
    assert "BASE_TABLE" in by_tag and sum(by_tag.values()) == duckdb_bytes
    # and the heap: Python's blocks, glibc's bytes in use and held free (what tells a leak from fragmentation)
    assert float(text.split("\nstrana_python_allocated_blocks ")[1].split()[0]) > 10_000
    in_use = float(text.split('\nstrana_malloc_bytes{state="in_use"} ')[1].split()[0])
    free = float(text.split('\nstrana_malloc_bytes{state="free"} ')[1].split()[0])
    assert in_use > 1 << 20 and free >= 0


def test_batch_event_id_is_idempotent(server):
    event = {"n": "signup", "u": "https://example.com/", "event_id": "same-id"}
    with server.client() as c:
        for _ in range(3):
            assert c.post("/api/v1/batch", json={"events": [event]}).status_code == 202
    server.stop()
    with server.db() as db:
        assert db.execute("SELECT count(*) FROM events WHERE name = 'signup'").fetchone()[0] == 1
        assert db.execute("SELECT sum(n) FROM drops WHERE reason = 'duplicate'").fetchone()[0] == 2
