"""Schemas against the real server: /api/event answers 202 `X-Strana-Ignored: quarantined`, a batch lists the
event under `ignored` and stores the rest, a webhook answers 422; the quarantine keeps the body without URL, IP,
user agent or user key but with the anonymous fields the edge derived; a replay after the schema is fixed
stores each item once, as it would have been stored."""

from __future__ import annotations

import json

from webhook_support import FIREFOX, bearer, raw, sample, strana, string_values

SCHEMA = """
[webhooks.signup]
preset = "form"
secret = "form-bearer-token"
site = "example.com"

[sites."example.com".schemas.signup]
type = "object"
required = ["plan"]
properties.plan = { enum = ["free", "pro"] }
properties.seats = { type = "integer" }

[sites."example.com".schemas."Newsletter Signup"]
properties.form = { enum = ["newsletter"] }
"""
FIXED = SCHEMA.replace('enum = ["free", "pro"]', 'enum = ["free", "pro", "team"]').replace(
    'enum = ["newsletter"]', 'enum = ["newsletter", "webinar"]').replace('{ type = "integer" }',
                                                                     '{ type = ["integer", "string"] }')
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
          "Safari/537.36")
IP = "203.0.113.77"
URL = "https://example.com/pricing?utm_source=news&email=someone%40example.org"


def event(plan, **more):
    return {"n": "signup", "u": URL, "d": "example.com", "p": {"plan": plan, **more}}


def test_schema_failures_are_quarantined_and_replayed(make_server, tmp_path):
    config = tmp_path / "strana.toml"
    config.write_text(SCHEMA)
    data = tmp_path / "data"
    server = make_server(config=config, data_dir=data)
    with server.client() as c:
        ok = c.post("/api/event", json=event("pro", seats=3), headers={"user-agent": FIREFOX})
        assert ok.status_code == 202 and "x-strana-ignored" not in ok.headers
        bad = c.post("/api/event", json=event("team"), headers={"user-agent": FIREFOX})
        assert bad.status_code == 202 and bad.headers["x-strana-ignored"] == "quarantined" and bad.text == "ok"
        # a bot's bad event is dropped as a bot, not quarantined
        bot = c.post("/api/event", json=event("team"), headers={"user-agent": "python-httpx/0.28"})
        assert bot.headers["x-strana-ignored"] == "bot_ua"
        batch = {"events": [
            event("free"),
            {**event("pro", seats="three"), "event_id": "order-7", "ip": IP, "user_agent": CHROME,
             "visitor": "user-42"},
            {"n": "pageview", "u": "https://example.com/"},
        ]}
        r = c.post("/api/v1/batch", json=batch, headers={"user-agent": FIREFOX})
        assert r.status_code == 202
        assert r.json() == {"accepted": 2, "ignored": [{"index": 1, "reason": "quarantined"}]}
        # a webhook event failing its schema: 422 naming the prop, the delivery kept
        form = sample("form_signup.json")
        form["form"] = "webinar"
        r = c.post("/hooks/signup", content=raw(form), headers=bearer())
        assert r.status_code == 422 and r.json()["reason"] == "schema"
        assert r.json()["field"] == "Newsletter Signup.props" and "props.form must be one of" in r.json()["error"]
    server.stop()

    with server.db() as db:
        items = db.execute("SELECT source, reason, detail, payload, context FROM quarantine ORDER BY source"
                           ).fetchall()
        texts = string_values(db, "quarantine")
    assert [(s, r) for s, r, *_ in items] == [("api/event", "schema"), ("api/v1/batch", "schema"),
                                              ("hook:signup", "schema")]
    assert items[0][2] == "schema signup: props.plan must be one of ['free', 'pro']"
    assert items[1][2] == "schema signup: props.seats must be integer"
    assert json.loads(items[0][3]) == {"n": "signup", "d": "example.com", "p": {"plan": "team"}}
    assert json.loads(items[1][3]) == {"n": "signup", "d": "example.com", "p": {"plan": "pro", "seats": "three"},
                                       "event_id": "order-7"}
    context = json.loads(items[1][4])
    assert context["visitor_id"] and context["browser"] == "Chrome" and context["utm_source"] == "news"
    assert context["pathname"] == "/pricing" and context["query"] is None
    for secret in (IP, CHROME, FIREFOX, "user-42", "someone", "email="):
        assert not [t for t in texts if secret in t], secret

    # fix the schemas, replay with the server stopped: every item once, however often replay runs
    config.write_text(FIXED)
    first = strana("quarantine", "replay", config=config, data_dir=data)
    assert first.returncode == 0, first.stderr
    assert [json.loads(line)["result"] for line in first.stdout.splitlines()] == ["stored"] * 3
    again = strana("quarantine", "replay", config=config, data_dir=data)
    assert again.returncode == 0 and "replayed 0 item(s)" in again.stderr
    shown = strana("quarantine", "list", "--all", "--reason", "schema", config=config, data_dir=data)
    assert shown.stdout.count("(replayed ") == 3

    with server.db() as db:
        q = {s: (i, c) for s, i, c in db.execute("SELECT source, id, context FROM quarantine").fetchall()}
        rows = db.execute("SELECT event_id, name, via, props, browser, visitor_id, pathname, utm_source "
                          "FROM events WHERE name <> 'pageview' ORDER BY via, props['plan']").fetchall()
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("signup", "batch", {"plan": "free"}),
        ("signup", "batch", {"plan": "pro", "seats": "three"}),
        ("signup", "event", {"plan": "pro", "seats": "3"}),
        ("signup", "event", {"plan": "team"}),
        ("Newsletter Signup", "webhook", {"form": "webinar", "plan": "weekly", "source": "footer"}),
    ]
    # a replayed browser event is the event the edge made: its id is the item's, its visitor id the one derived
    replayed = rows[3]
    assert replayed[0] == q["api/event"][0] and replayed[4] == "Firefox" and replayed[6] == "/pricing"
    assert replayed[5] == json.loads(q["api/event"][1])["visitor_id"] and replayed[7] == "news"
