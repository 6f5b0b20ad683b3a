"""Today's cards on a real server answer exactly while the today_rollups job moves on under them.

The job runs every second here; events are sent before its first run, between runs (returning visitors and
new ones) and right before the read, which must still count them (read-your-writes): the reader adds what
was stored since the job's last run to the partial rollups.
"""

from __future__ import annotations

import re
import time

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0 n/{}"
SITE = "today.example"


def send(client, visitor: int, path: str) -> None:
    answer = client.post("/api/event", json={"n": "pageview", "u": f"https://{SITE}{path}", "d": SITE},
                         headers={"user-agent": UA.format(visitor)})
    assert answer.status_code == 202, answer.text


def runs(client, how: str) -> float:
    found = re.search(rf'^strana_today_rollups_total\{{how="{how}"\}} ([\d.e+]+)$', client.get("/metrics").text,
                      re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def wait_for_run(client, how: str, more_than: float = 0) -> float:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if (n := runs(client, how)) > more_than:
            return n
        time.sleep(0.1)
    raise AssertionError(f"no today_rollups run '{how}' within 30 s")


def test_today_is_exact_from_partial_rollups_and_the_events_stored_since(make_server):
    server = make_server(env={"STRANA_SINK__TODAY_ROLLUPS_SECONDS": "1"})
    with server.client() as client:
        for v in range(5):
            send(client, v, "/a")
        client.get("/api/v1/stats/aggregate", params={"site": SITE, "period": "day"})  # stored before the run
        built = wait_for_run(client, "built")
        for v in (0, 1, 2, 5, 6, 7):  # three come back (the same visit), three are new
            send(client, v, "/b")
        client.get("/api/v1/stats/aggregate", params={"site": SITE, "period": "day"})
        wait_for_run(client, "stepped")
        send(client, 0, "/c")
        send(client, 9, "/c")
        metrics = ["visitors", "visits", "pageviews", "bounce_rate"]
        totals = client.post("/api/v1/query", json={"site_id": SITE, "date_range": "day", "metrics": metrics}).json()
        pages = client.post("/api/v1/query", json={"site_id": SITE, "date_range": "day", "dimensions": ["event:page"],
                                                   "metrics": ["visitors", "pageviews"]}).json()
        assert runs(client, "built") == built  # moved on by steps, not built again
    assert totals["results"] == [{"metrics": [9, 9, 13, 67], "dimensions": []}]  # 6 of 9 visits bounced
    assert sorted((r["dimensions"][0], *r["metrics"]) for r in pages["results"]) == [
        ("/a", 5, 5), ("/b", 6, 6), ("/c", 2, 2)]
    server.stop()
    with server.db() as db:  # the rows the job kept: all events, or all but the last two (no run since)
        kept = db.execute("SELECT events FROM rollup_partial_status WHERE site = $s AND day = current_date",
                          {"s": SITE}).fetchone()
    assert kept[0] in (11, 13)
