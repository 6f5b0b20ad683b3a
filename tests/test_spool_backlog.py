"""A spool loader that falls behind makes ingest answer 503; the rows waiting for it in memory stay bounded.

The loader runs below ingest's CPU priority (collector/cpu_priority.py), so flat-out ingest can outrun it. Here
its loads are held on purpose, on the real memory bus, worker, spool and DuckDB.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

from collector.bus import BusUnavailable, Envelope
from collector.bus.memory import MemoryBus
from collector.events import Hit
from collector.pipeline import Chain
from collector.sinks.duckdb import DuckDBSink
from collector.sinks.spool import SpoolingSink
from collector.worker import Worker

MAX_LOAD_ROWS = 50
COMMIT_ROWS = 10


class HeldLoads:
    """The store under the spool, with its loads held until `release` is set."""

    def __init__(self, inner: DuckDBSink):
        self.inner = inner
        self.release = threading.Event()
        self.waiting = threading.Event()

    def write(self, *args, **kwargs):
        self.waiting.set()
        assert self.release.wait(60), "the test never released the loads"
        return self.inner.write(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def hit() -> Hit:
    now = int(time.time() * 1e6)
    return Hit(event_id=uuid.uuid4().bytes, site="example.com", timestamp=now, received_at=now, name="pageview",
               url="https://example.com/", hostname="example.com", pathname="/")


async def until(condition, what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


def test_a_loader_that_falls_behind_makes_ingest_answer_503_and_keeps_the_backlog_bounded(tmp_path):
    store = HeldLoads(DuckDBSink(tmp_path / "strana.duckdb"))
    spool = SpoolingSink(store, tmp_path / "spool", max_load_rows=MAX_LOAD_ROWS, load_interval=0.001)
    spool.recover()
    bus = MemoryBus(commit_rows=COMMIT_ROWS, commit_interval_ms=1, max_pending=100)
    worker = Worker(bus, Chain([]), spool)
    most_behind = 0

    async def scenario() -> tuple[int, int]:
        nonlocal most_behind
        await bus.start()
        consuming = asyncio.create_task(worker.run())
        sent, refused = [], 0
        for _ in range(600):
            try:  # publish refuses at once when the bus is full: that is the 503
                await asyncio.wait_for(asyncio.shield(task := asyncio.ensure_future(
                    bus.publish(Envelope(events=[hit()])))), timeout=0.002)
            except BusUnavailable:
                refused += 1
                continue
            except TimeoutError:
                pass  # taken, waiting for its commit
            sent.append(task)
            most_behind = max(most_behind, spool.backlog_rows())
        assert store.waiting.is_set(), "the loader never started a load"
        store.release.set()
        results = await asyncio.gather(*sent, return_exceptions=True)
        late_refusals = sum(isinstance(r, BusUnavailable) for r in results)
        accepted = sum(r is None for r in results)
        assert accepted + late_refusals == len(sent), [r for r in results if r is not None][:3]
        await until(lambda: spool.backlog_rows() == 0, "the spool to drain")
        await bus.stop()
        await consuming
        return accepted, refused + late_refusals

    accepted, refused = asyncio.run(scenario())
    worker.close()
    spool.close()
    assert refused > 0, "with the loader held, a full bus must refuse (503), not take events without end"
    assert accepted > 0
    # the waiting rows stay within a load and one group commit of the limit, however much was offered
    assert most_behind <= MAX_LOAD_ROWS + COMMIT_ROWS, most_behind
    stored = DuckDBSink(tmp_path / "strana.duckdb", read_only=True)
    try:
        assert stored.con.execute("SELECT count(*) FROM events").fetchone()[0] == accepted  # each 2xx, once
    finally:
        stored.con.close()
