"""DNT / Sec-GPC through the real server: counted without an id by default, dropped when the site says so."""

from __future__ import annotations

import pytest

UA = {"user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"}
EVENT = {"n": "pageview", "u": "https://example.com/private", "d": "example.com"}


@pytest.mark.parametrize("header", [{"dnt": "1"}, {"sec-gpc": "1"}])
def test_anonymous_by_default(make_server, header):
    server = make_server()
    with server.client() as c:
        r = c.post("/api/event", json=EVENT, headers={**UA, **header})
        assert r.status_code == 202 and "x-strana-ignored" not in r.headers
        c.post("/api/event", json=EVENT, headers=UA)
        stats = c.get("/api/v1/stats/aggregate", params={"site": "example.com"}).json()["results"]
    assert stats == {"pageviews": 2, "visitors": 1, "events": 2}
    server.stop()
    with server.db() as db:
        rows = db.execute("SELECT visitor_id IS NULL, session_id IS NULL FROM events ORDER BY visitor_id NULLS FIRST")
        assert rows.fetchall() == [(True, True), (False, False)]


def test_drop_policy(make_server):
    server = make_server(env={"STRANA_PRIVACY__DNT_POLICY": "drop"})
    with server.client() as c:
        r = c.post("/api/event", json=EVENT, headers={**UA, "dnt": "1"})
        assert r.status_code == 202 and r.headers["x-strana-ignored"] == "dnt"
        r = c.get("/p.gif", params={"d": "example.com", "u": EVENT["u"]}, headers={**UA, "sec-gpc": "1"})
        assert r.status_code == 200 and r.headers["x-strana-ignored"] == "dnt"
    server.stop()
    with server.db() as db:
        assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 0
        assert db.execute("SELECT site, reason, sum(n)::INT FROM drops GROUP BY ALL").fetchall() == [
            ("example.com", "dnt", 2)]


def test_batch_events_carry_the_visitors_privacy_signal(make_server):
    server = make_server()
    ua = UA["user-agent"]
    with server.client() as c:
        r = c.post("/api/v1/batch", json={"events": [
            {**EVENT, "ip": "203.0.113.5", "user_agent": ua, "dnt": True},
            {**EVENT, "ip": "203.0.113.6", "user_agent": ua, "dnt": False}]})
        assert r.status_code == 202 and r.json()["accepted"] == 2
        assert c.post("/api/v1/batch", json={"events": [{**EVENT, "dnt": "yes"}]}).status_code == 422
    server.stop()
    with server.db() as db:
        assert sorted(r[0] for r in db.execute("SELECT visitor_id IS NULL FROM events").fetchall()) == [False, True]
