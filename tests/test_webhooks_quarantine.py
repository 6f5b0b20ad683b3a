"""An unmappable delivery: 422 naming the path, kept whole in quarantine (once, however often it is resent),
replayed after the mapping is fixed — by the CLI with the server stopped, by the admin endpoint on a running
server, or by the sender's own retry — and stored exactly once, even when a replay dies midway."""

from __future__ import annotations

import json

from webhook_support import ADMIN, raw, strana

BROKEN = f"""
[admin]
token = "{ADMIN}"

[webhooks.pay]
site = "example.com"
verify = "bearer"
secret = "pay-secret"
id = "delivery"
[webhooks.pay.map]
each = "payments"
name = "'Payment'"
id = "ref"
revenue = {{ amount = "amount_cents", currency = "$.currency", divisor = 100 }}   # the payload says `cents`
props = {{ method = "method" }}
"""
FIXED = BROKEN.replace('amount = "amount_cents"', 'amount = "cents"')
AUTH = {"Authorization": "Bearer pay-secret"}
ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN}"}


def delivery(n: int) -> dict:
    return {"delivery": f"dlv-{n}", "currency": "EUR", "customer_ip": "203.0.113.50",
            "payments": [{"ref": f"p{n}a", "cents": 1000 * n, "method": "card"},
                         {"ref": f"p{n}b", "cents": 50, "method": "sepa"}]}


def test_quarantine_then_replay_exactly_once(make_server, tmp_path):
    config = tmp_path / "strana.toml"
    config.write_text(BROKEN)
    data = tmp_path / "data"
    server = make_server(config=config, data_dir=data)
    with server.client() as c:
        ids = set()
        for n in (1, 2, 3, 1, 1):  # delivery 1 is resent twice, as a sender does after a 4xx
            r = c.post("/hooks/pay", content=raw(delivery(n)), headers=AUTH)
            assert r.status_code == 422
            err = r.json()
            assert err["field"] == "webhooks.pay.map[0].revenue.amount" and err["reason"] == "mapping"
            assert "`amount_cents` found nothing" in err["error"]
            ids.add(err["quarantined"])
        assert len(ids) == 3
        # a body that is not JSON: 400, not quarantined (no mapping could read it)
        assert c.post("/hooks/pay", content=b"cents=5", headers=AUTH).status_code == 400

        # the admin API: off without the token, an export with it
        assert c.get("/api/v1/quarantine").status_code == 401
        assert c.get("/api/v1/quarantine", headers={"Authorization": "Bearer wrong"}).status_code == 401
        listed = c.get("/api/v1/quarantine", params={"full": 1}, headers=ADMIN_AUTH).json()
        assert {i["id"] for i in listed["items"]} == ids
        assert listed["counts"][0]["reason"] == "mapping" and listed["counts"][0]["items"] == 3
        refs = {i["payload"]["payments"][0]["ref"] for i in listed["items"]}
        assert "p1a" in refs  # the raw payload is kept, whatever the listing order
        item = next(i for i in listed["items"] if i["payload"]["payments"][0]["ref"] == "p1a")
        assert item["source"] == "hook:pay" and item["site"] == "example.com"
        assert "customer_ip" not in item["payload"]  # anything that looks like an address is dropped
        # replay while the mapping is still broken: nothing stored, items stay
        r = c.post("/api/v1/quarantine/replay", json={}, headers=ADMIN_AUTH).json()
        assert r["stored"] == 0 and r["still_failing"] == 3

        # the CLI cannot open the file while the server holds it, and says what to do instead
        out = strana("quarantine", "list", config=config, data_dir=data)
        assert out.returncode == 1
        assert "strana serve" in out.stderr and "/api/v1/quarantine/replay" in out.stderr
    server.stop()

    # fixed mapping, server stopped: the CLI lists, then replays and dies after the first item
    config.write_text(FIXED)
    out = strana("quarantine", "list", config=config, data_dir=data)
    assert out.returncode == 0 and out.stdout.count("hook:pay") == 3, out.stderr
    out = strana("quarantine", "replay", config=config, data_dir=data, env={"STRANA_TEST_REPLAY_CRASH_AFTER": "1"})
    assert out.returncode == 70, out.stderr
    assert json.loads(out.stdout.splitlines()[0])["result"] == "stored"

    # the server with the fixed mapping: the admin endpoint replays the rest, then finds nothing left
    server = make_server(config=config, data_dir=data)
    with server.client() as c:
        r = c.post("/api/v1/quarantine/replay", json={}, headers=ADMIN_AUTH).json()
        assert r["stored"] == 2 and r["still_failing"] == 0 and len(r["results"]) == 2
        assert c.post("/api/v1/quarantine/replay", json={}, headers=ADMIN_AUTH).json()["results"] == []
        # the sender's own retry of delivery 1 now maps; its events were already stored by the replay
        r = c.post("/hooks/pay", content=raw(delivery(1)), headers=AUTH)
        assert r.status_code == 202 and r.json()["accepted"] == 2
        # a new delivery after the fix is stored at once
        assert c.post("/hooks/pay", content=raw(delivery(4)), headers=AUTH).json()["accepted"] == 2
    server.stop()
    out = strana("quarantine", "replay", config=config, data_dir=data)
    assert out.returncode == 0 and "replayed 0 item(s)" in out.stderr

    with server.db() as db:
        rows = db.execute("SELECT props['method'], revenue_amount, count(*) FROM events GROUP BY ALL "
                          "ORDER BY 2").fetchall()
        waiting = db.execute("SELECT count(*) FROM quarantine WHERE replayed_at IS NULL").fetchone()[0]
        kept = db.execute("SELECT count(*) FROM quarantine").fetchone()[0]
        dupes = db.execute("SELECT count(*) - count(DISTINCT event_id) FROM events").fetchone()[0]
    assert rows == [("sepa", 0.5, 4), ("card", 10.0, 1), ("card", 20.0, 1), ("card", 30.0, 1), ("card", 40.0, 1)]
    assert dupes == 0 and waiting == 0 and kept == 3
