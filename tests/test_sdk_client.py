"""The Python SDK's clients against a real collector: exactly once across retries, the bounded queue,
4xx handling, shutdown and exit flushing, and the asyncio client."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import subprocess
import sys
import textwrap

import pytest
import strana_sdk
from strana_sdk._core import Options, Reply, backoff_delay, to_event
from test_sdk_support import FIREFOX, FlakyProxy, wait_for

FAST = {"backoff": 0.01, "max_backoff": 0.05, "flush_interval": 0.05}


def stored(server, where: str = "TRUE") -> list[tuple]:
    server.stop()
    with server.db() as db:
        return db.execute(f"SELECT event_id::VARCHAR, name, props['i'], via FROM events WHERE {where} "
                          "ORDER BY name, props['i']").fetchall()


def test_retries_store_each_event_exactly_once(server):
    # every way an attempt can fail, including the two where the collector did store the batch
    script = ["503", "drop", "500-after", "429", "drop-after", "503"]
    with FlakyProxy(server.url, script) as proxy:
        client = strana_sdk.Client(proxy.url, site="example.com", batch_size=10, **FAST)
        for i in range(35):
            client.track("signup", props={"i": f"{i:02d}"}, ip="203.0.113.9", user_agent=FIREFOX)
        assert client.flush(timeout=60)
        assert client.shutdown(timeout=10)
        stats = client.stats
        attempts = list(proxy.attempts)

    assert (stats.sent, stats.failed, stats.rejected, stats.dropped) == (35, 0, 0, 0)
    # a connection dropped on a reused keep-alive connection is retried at once on a new one, uncounted
    assert stats.retries >= len([a for a in script if not a.startswith("drop")])
    assert [a for a, _ in attempts[: len(script)]] == script  # each fault was really hit
    # the batches the collector stored but whose answer was lost were sent again, with the same ids
    stored_then_lost = {e["event_id"] for action, events in attempts if action in ("500-after", "drop-after")
                        for e in events}
    resent = {e["event_id"] for action, events in attempts if action == "forward" for e in events}
    assert stored_then_lost and stored_then_lost <= resent

    rows = stored(server)
    assert len(rows) == 35
    assert sorted(r[2] for r in rows) == [f"{i:02d}" for i in range(35)]
    assert len({r[0] for r in rows}) == 35
    assert {r[0] for r in rows} == {e["event_id"] for _, events in attempts for e in events}
    assert {r[3] for r in rows} == {"batch"}


def test_event_fields_reach_the_store(server):
    client = strana_sdk.Client(server.url, site="example.com", **FAST)
    client.track("purchase", revenue=(9.5, "EUR"), props={"plan": "pro"}, visitor="user-1")
    client.track("refund", revenue={"amount": 3, "currency": "usd"}, url="https://example.com/account?x=1",
                 timestamp=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2), event_id="order-7")
    client.pageview("https://example.com/pricing", referrer="https://news.ycombinator.com/", user_agent=FIREFOX,
                    ip="203.0.113.9")
    assert client.shutdown(timeout=10)
    server.stop()
    with server.db() as db:
        rows = db.execute("SELECT name, pathname, props, revenue_amount, revenue_currency, "
                          "received_at - timestamp > INTERVAL 1 HOUR FROM events ORDER BY name").fetchall()
    assert rows == [
        ("pageview", "/pricing", None, None, None, False),
        ("purchase", "/", {"plan": "pro"}, 9.5, "EUR", False),
        ("refund", "/account", None, 3.0, "USD", True),  # the client's timestamp was kept
    ]


@pytest.mark.parametrize("drop", ["oldest", "newest"])
def test_full_queue_drops_and_counts(server, drop):
    with FlakyProxy(server.url, ["hold"]) as proxy:
        client = strana_sdk.Client(proxy.url, site="example.com", batch_size=1, max_queue=5, drop=drop, **FAST)
        client.track("e", props={"i": "0"})
        wait_for(lambda: proxy.attempts, what="the first batch to be in flight")  # the sender is now stuck
        for i in range(1, 9):
            client.track("e", props={"i": str(i)})  # 8 more into a queue of 5: 3 dropped, caller never blocked
        assert client.stats.dropped == 3 and client.stats.queued == 5
        proxy.release()
        assert client.shutdown(timeout=30)
        stats = client.stats

    assert (stats.sent, stats.dropped, stats.failed) == (6, 3, 0)
    kept = ["4", "5", "6", "7", "8"] if drop == "oldest" else ["1", "2", "3", "4", "5"]
    assert sorted(r[2] for r in stored(server)) == sorted(["0", *kept])


def test_4xx_is_not_retried_and_logs_the_servers_message(make_server, caplog):
    server = make_server(env={"STRANA_INGEST__SITES": "other.example"})
    caplog.set_level(logging.ERROR, logger="strana_sdk")
    with FlakyProxy(server.url) as proxy:
        client = strana_sdk.Client(proxy.url, site="example.com", **FAST)
        for i in range(5):
            client.track("signup", props={"i": str(i)})
        assert client.flush(timeout=30)
        stats = client.stats
        assert len(proxy.attempts) == 1
        client.shutdown(timeout=5)
    assert (stats.rejected, stats.retries, stats.sent) == (5, 0, 0)
    assert "unknown site 'example.com'" in caplog.text and "not retrying" in caplog.text

    # a 4xx for the whole batch (the collector's 400/413 shape): refused as a whole, once, message logged
    with FlakyProxy(server.url, ["400"]) as proxy:
        client = strana_sdk.Client(proxy.url, site="other.example", **FAST)
        client.track("refused")
        assert client.shutdown(timeout=30)
        assert len(proxy.attempts) == 1
        assert (client.stats.rejected, client.stats.retries) == (1, 0)
    assert "HTTP 400: scripted: this batch is refused" in caplog.text
    assert stored(server) == []


def test_422_drops_only_the_bad_events(server, caplog):
    caplog.set_level(logging.ERROR, logger="strana_sdk")
    with FlakyProxy(server.url) as proxy:
        client = strana_sdk.Client(proxy.url, site="example.com", batch_size=10, flush_interval=60)
        client.track("ok", props={"i": "1"})
        client.track("too_long", props={"i": "x" * 5000})
        client.track("ok", props={"i": "2"})
        client.track("bad_revenue", revenue=(float("nan"), "EUR"))  # not even JSON: dropped before sending
        assert client.shutdown(timeout=30)
        stats = client.stats
        statuses = [len(events) for _, events in proxy.attempts]
    assert (stats.sent, stats.rejected, stats.retries) == (2, 2, 0)
    assert statuses == [3, 2]  # the batch, then its good events once the collector named the bad one
    assert "property values must be at most 2000 bytes" in caplog.text
    assert "cannot be sent as JSON" in caplog.text
    assert sorted(r[2] for r in stored(server)) == ["1", "2"]


def test_shutdown_sends_what_is_queued(server):
    with FlakyProxy(server.url, ["503"]) as proxy:
        client = strana_sdk.Client(proxy.url, site="example.com", batch_size=500, flush_interval=3600, backoff=0.01)
        for i in range(120):
            client.track("queued", props={"i": str(i)})
        assert client.shutdown(timeout=30)
        assert client.stats.sent == 120 and client.stats.queued == 0
        client.track("after", props={"i": "late"})  # after shutdown: dropped and counted, not raised
        assert client.stats.dropped == 1
        assert proxy.attempts
    assert len(stored(server)) == 120


def test_shutdown_gives_up_at_its_timeout(server):
    with FlakyProxy(server.url, ["503"] * 1000) as proxy:
        client = strana_sdk.Client(proxy.url, site="example.com", backoff=0.01, max_backoff=0.02, max_retries=None)
        for i in range(7):
            client.track("doomed", props={"i": str(i)})
        wait_for(lambda: len(proxy.attempts) >= 2, what="a retry")
        assert client.shutdown(timeout=0.3) is False
        assert client.stats.failed == 7 and client.stats.sent == 0


@pytest.mark.parametrize("kind", ["Client", "AsyncClient"])
def test_events_queued_at_exit_are_sent(server, kind):
    script = textwrap.dedent(f"""
        import asyncio, sys, strana_sdk
        client = strana_sdk.{kind}(sys.argv[1], site="example.com", batch_size=500, flush_interval=3600)
        async def main():
            for i in range(40):
                client.track("at_exit", props={{"i": str(i)}})
        asyncio.run(main())
        # no flush, no shutdown: atexit must send them
    """)
    subprocess.run([sys.executable, "-c", script, server.url], check=True, timeout=60)
    assert len(stored(server, "name = 'at_exit'")) == 40


def test_async_client_end_to_end(server):
    async def main(url):
        async with strana_sdk.AsyncClient(url, site="example.com", batch_size=7, **FAST) as client:
            for i in range(30):
                client.track("async", props={"i": f"{i:02d}"}, user_agent=FIREFOX, ip="203.0.113.9")
                if i % 10 == 0:
                    await asyncio.sleep(0)  # let the sender run between bursts
            client.pageview("https://example.com/async-page", user_agent=FIREFOX, ip="203.0.113.9")
            assert await client.flush(timeout=60)
            stats = client.stats
        return stats, client.stats

    with FlakyProxy(server.url, ["503", "500-after", "drop"]) as proxy:
        during, after = asyncio.run(main(proxy.url))
    assert (during.sent, during.failed, during.rejected) == (31, 0, 0)
    assert during.retries >= 2 and after.queued == 0  # (+1 for the drop unless it hit a reused connection)
    rows = stored(server)
    assert sorted(r[2] for r in rows if r[1] == "async") == [f"{i:02d}" for i in range(30)]
    assert [r[1] for r in rows].count("pageview") == 1
    assert len({r[0] for r in rows}) == 31


# ---- no server needed: the decisions, as tables ----

@pytest.mark.parametrize(("header", "at_least"), [
    ("7", 7.0),
    ("0", 0.0),
    ("in 60s as an HTTP date", 50.0),
    ("soon", 0.0),  # unreadable: the backoff alone
])
def test_retry_after_is_honoured(header, at_least):
    if header.startswith("in 60s"):
        header = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    opts = Options("http://127.0.0.1:1", "example.com", backoff=0.01, max_backoff=0.02)
    delay = backoff_delay(1, opts, Reply(503, {"retry-after": header}, b""))
    assert delay >= at_least and delay <= max(at_least + 10, 0.02)


def test_backoff_grows_and_is_capped():
    opts = Options("http://127.0.0.1:1", "example.com", backoff=1.0, max_backoff=8.0)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 8.0)]:
        delays = [backoff_delay(attempt, opts, None) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"url": "stats.example.com"}, "url must be"),
    ({"site": ""}, "site must be"),
    ({"drop": "random"}, "drop must be"),
    ({"batch_size": 501}, "batch_size"),
])
def test_bad_options_fail_early(kwargs, message):
    args = {"url": "https://stats.example.com", "site": "example.com", **kwargs}
    with pytest.raises(ValueError, match=message):
        strana_sdk.Client(args.pop("url"), args.pop("site"), **args)


def test_event_shape():
    opts = Options("https://stats.example.com", "Example.com", send_timestamps=False)
    event = to_event(("signup", None, None, {"a": 1}, (9.5, "EUR"), 42, None, None, 1.5, None), opts)
    assert event["u"] == "https://example.com/" and event["d"] == "example.com"
    assert event["$"] == {"amount": 9.5, "currency": "EUR"} and event["visitor"] == "42"
    assert "timestamp" not in event and len(event["event_id"]) == 36
