"""End to end through the real server: derived fields are stored, bots are counted as drops, and neither the
visitors' IPs nor their user-agent strings end up anywhere in the DuckDB file."""

from __future__ import annotations

from pathlib import Path

from test_enhancer_put_geolocation import write_city_db

IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.5 Mobile/15E148 Safari/604.1")
WINDOWS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
           "Safari/537.36")
LINUX = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0"
BOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
CURL = "curl/8.5.0"
LONDON_IP, HAMBURG_IP, BOT_IP = "81.2.69.160", "2a02:8108:1234::5", "93.184.216.34"
SECRETS = [IPHONE, WINDOWS, LINUX, BOT, CURL, LONDON_IP, HAMBURG_IP, BOT_IP, "2a02:8108:1234:0:0:0:0:5"]


def test_people_bots_and_no_trace_of_ip_or_user_agent(make_server, tmp_path):
    mmdb = write_city_db(tmp_path / "city.mmdb")
    server = make_server(env={"STRANA_GEOIP__DATABASE": str(mmdb)})
    events = [
        # person 1: iPhone in London, from a Google search
        {"n": "pageview", "u": "https://example.com/", "d": "example.com", "r": "https://www.google.com/search?q=x",
         "ip": LONDON_IP, "user_agent": IPHONE},
        # person 2: Windows in Hamburg, from a newsletter
        {"n": "pageview", "u": "https://example.com/pricing?utm_source=newsletter&utm_medium=email",
         "d": "example.com", "ip": HAMBURG_IP, "user_agent": WINDOWS},
        # a scripted client
        {"n": "pageview", "u": "https://example.com/", "d": "example.com", "ip": BOT_IP, "user_agent": CURL},
    ]
    with server.client() as c:
        r = c.post("/api/v1/batch", json={"events": events})
        assert r.status_code == 202
        assert r.json() == {"accepted": 2, "ignored": [{"index": 2, "reason": "bot_ua"}]}
        # person 3: a browser on loopback (no location), from Hacker News
        r = c.post("/api/event", headers={"user-agent": LINUX},
                   json={"n": "pageview", "u": "https://example.com/blog", "r": "https://news.ycombinator.com/item?id=1"})
        assert r.status_code == 202 and "x-strana-ignored" not in r.headers
        # a crawler on /api/event
        r = c.post("/api/event", headers={"user-agent": BOT}, json={"n": "pageview", "u": "https://example.com/"})
        assert r.status_code == 202 and r.headers["x-strana-ignored"] == "bot_ua"
    server.stop()

    with server.db() as db:
        rows = db.execute("""
            SELECT pathname, browser, os, device, country, region, city, source, channel, referrer,
                   visitor_id IS NOT NULL
            FROM events ORDER BY pathname""").fetchall()
        assert rows == [
            ("/", "Safari", "iOS", "mobile", "GB", "GB-ENG", "London", "Google", "Organic Search",
             "https://www.google.com/search", True),
            ("/blog", "Firefox", "Ubuntu", "desktop", None, None, None, "Hacker News", "Organic Social",
             "https://news.ycombinator.com/item", True),
            ("/pricing", "Chrome", "Windows", "desktop", "DE", "DE-HH", "Hamburg", "newsletter", "Email", None, True),
        ]
        assert db.execute("SELECT reason, sum(n) FROM drops GROUP BY reason").fetchall() == [("bot_ua", 2)]
        leaks = _scan_every_value(db)
    assert leaks == []
    for path in Path(server.data_dir).glob("*"):
        if path.suffix in (".duckdb", ".wal"):
            raw = path.read_bytes()
            for secret in [*SECRETS, "127.0.0.1"]:
                assert secret.encode() not in raw, f"{secret!r} found in the bytes of {path.name}"


def _scan_every_value(db) -> list[tuple[str, str, str]]:
    """Every column of every table, cast to text, searched for every IP and UA (names and values)."""
    leaks = []
    tables = db.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()
    assert {"events", "drops"} <= {name for _, name in tables}
    for schema, table in tables:
        columns = [row[0] for row in db.execute(
            "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?",
            [schema, table]).fetchall()]
        for column in columns:
            for secret in SECRETS + ["127.0.0.1"]:
                if secret.lower() in column.lower():
                    leaks.append((table, column, "column name"))
            found = db.execute(
                f'SELECT count(*) FROM "{schema}"."{table}" WHERE '
                + " OR ".join(f'contains(CAST("{column}" AS VARCHAR), ?)' for _ in SECRETS + ["127.0.0.1"]),
                SECRETS + ["127.0.0.1"]).fetchone()[0]
            if found:
                leaks.append((table, column, f"{found} value(s)"))
    return leaks
