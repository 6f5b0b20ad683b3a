"""A 2xx means durable: SIGTERM mid-stream loses nothing that was accepted and stores nothing twice."""

from __future__ import annotations

import asyncio
import signal
import threading

import httpx


async def _fire(url: str, n: int, concurrency: int, accepted: set, started: threading.Event,
                base: int = 0) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(base + i)

    async def one(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            try:
                if i % 10 == 0:
                    r = await client.post("/api/v1/batch", json={"events": [
                        {"n": "pageview", "u": f"https://example.com/b/{i}", "p": {"seq": str(i)},
                         "event_id": f"seq-{i}"}]})
                else:
                    r = await client.post("/api/event", json={"n": "pageview", "u": f"https://example.com/e/{i}",
                                                              "d": "example.com", "p": {"seq": str(i)}})
            except httpx.HTTPError:
                continue  # refused or cut off: not accepted, may or may not be stored
            if 200 <= r.status_code < 300:
                accepted.add(i)
                if len(accepted) >= 200:
                    started.set()

    limits = httpx.Limits(max_connections=concurrency)
    browser = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits, headers=browser) as client:
        await asyncio.gather(*(one(client) for _ in range(concurrency)))


def test_sigterm_mid_stream_keeps_every_accepted_event_once(make_server):
    server = make_server()
    accepted: set[int] = set()
    started = threading.Event()
    n = 6000
    sender = threading.Thread(target=lambda: asyncio.run(_fire(server.url, n, 48, accepted, started)))
    sender.start()
    assert started.wait(60), "the server never accepted 200 events"
    code = server.stop(signal.SIGTERM)
    sender.join(120)
    assert not sender.is_alive()
    assert 200 <= len(accepted), len(accepted)
    print(f"accepted {len(accepted)} of {n} before SIGTERM took effect")

    with server.db() as db:
        rows = db.execute("SELECT props['seq'] AS seq, count(*) FROM events GROUP BY seq").fetchall()
    counts = {int(seq): c for seq, c in rows}
    missing = sorted(i for i in accepted if i not in counts)
    doubled = sorted(i for i, c in counts.items() if c > 1)
    assert not missing, f"{len(missing)} accepted events lost, e.g. {missing[:10]} (exit code {code})"
    assert not doubled, f"stored twice: {doubled[:10]}"

    # A restart on the same data finds everything still there and takes more.
    again = make_server(data_dir=server.data_dir)
    with again.client() as c:
        r = c.post("/api/event", json={"n": "pageview", "u": "https://example.com/after"},
                   headers={"user-agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"})
        assert r.status_code == 202 and "x-strana-ignored" not in r.headers
    again.stop()
    with again.db() as db:
        assert db.execute("SELECT count(*) FROM events").fetchone()[0] == len(counts) + 1


def test_sigkill_mid_stream_then_restart_keeps_every_accepted_event_once(make_server, tmp_path):
    """The spool's promise: a 2xx survives a crash, and the replay after it stores nothing twice."""
    data_dir = tmp_path / "killed"
    accepted: set[int] = set()
    for round_ in range(3):
        server = make_server(data_dir=data_dir)
        started = threading.Event()
        got: set[int] = set()
        base = round_ * 100_000
        sender = threading.Thread(target=asyncio.run, args=(_fire(server.url, 4000, 48, got, started, base),))
        sender.start()
        assert started.wait(60), "the server never accepted 200 events"
        server.stop(signal.SIGKILL)
        sender.join(120)
        accepted |= got
    final = make_server(data_dir=data_dir)
    final.stop()
    with final.db() as db:
        rows = db.execute("SELECT props['seq'] AS seq, count(*) FROM events GROUP BY seq").fetchall()
    counts = {int(seq): c for seq, c in rows}
    missing = sorted(i for i in accepted if i not in counts)
    doubled = sorted(i for i, c in counts.items() if c > 1)
    assert not missing, f"{len(missing)} accepted events lost after SIGKILL, e.g. {missing[:10]}"
    assert not doubled, f"stored twice after replay: {doubled[:10]}"


def test_sigterm_after_a_heavy_load_closes_cleanly_and_empties_the_spool(make_server):
    """A clean stop checkpoints the store and deletes the loaded spool. A result left unread on one of the
    store's cursors once kept a transaction open, so the last CHECKPOINT failed: a traceback at every stop
    after some 100k events, and the spool's segments left behind."""
    server = make_server()
    browser = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
    n_batches, size = 240, 500

    def body(b: int) -> dict:
        return {"events": [{"n": "pageview", "u": f"https://example.com/p/{(b * size + i) % 997}", "d": "example.com",
                            "ip": f"10.{b % 250}.{i % 250}.{1 + i % 200}", "user_agent": browser}
                           for i in range(size)]}

    async def send() -> list[int]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=httpx.Limits(max_connections=8)) as c:
            sem = asyncio.Semaphore(8)

            async def one(b: int) -> int:
                async with sem:
                    return (await c.post("/api/v1/batch", json=body(b))).status_code

            return await asyncio.gather(*(one(b) for b in range(n_batches)))

    assert set(asyncio.run(send())) == {202}
    code = server.stop(signal.SIGTERM)
    log = server.log()
    assert "error while stopping" not in log and "Traceback" not in log, log[-3000:]
    assert "drained and closed" in log, log[-3000:]
    assert code == 0, log[-3000:]
    assert list((server.data_dir / "spool").glob("*.log")) == []
    with server.db() as db:
        assert db.execute("SELECT count(*) FROM events").fetchone()[0] == n_batches * size
