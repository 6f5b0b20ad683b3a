"""Where the worker's group commit writes: on its event loop for a spool append, off it when the disk stalls."""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
import time
import uuid

from collector import worker as worker_module
from collector.bus import Envelope
from collector.events import Hit
from collector.pipeline import Chain
from collector.sinks.duckdb import DuckDBSink
from collector.sinks.spool import SpoolingSink
from collector.worker import Worker

SLOW = 0.2  # the threshold in these tests: far above any pause a loaded CI machine gives a quick write


class StallingAppends:
    """A sink like the spool (one append per write) whose disk stalls on the writes it is told to."""

    accepts_rows = True
    appends_only = True

    def __init__(self, stall_on: set[int]):
        self.stall_on = stall_on
        self.threads: list[str] = []

    def write(self, events, drops, position=None, quarantine=None, replayed=None) -> None:
        self.threads.append(threading.current_thread().name)
        if len(self.threads) in self.stall_on:
            time.sleep(SLOW * 2)


def hit() -> Hit:
    now = int(time.time() * 1e6)
    return Hit(event_id=uuid.uuid4().bytes, site="example.com", timestamp=now, received_at=now)


def commits(worker: Worker, n: int) -> None:
    async def run():
        for _ in range(n):
            await worker._commit([Envelope(events=[hit()])], None)
    asyncio.run(run())


def test_appends_run_on_the_loop_until_the_disk_stalls_then_off_it_until_one_is_quick_again(monkeypatch):
    monkeypatch.setattr(worker_module, "SLOW_APPEND_SECONDS", SLOW)
    sink = StallingAppends(stall_on={2, 3})
    worker = Worker(bus=None, chain=Chain([]), sink=sink)
    try:
        commits(worker, 5)
    finally:
        worker.close()
    loop = threading.main_thread().name
    # 1 quick on the loop; 2 stalls (on the loop: it could not know); 3 stalls off it; 4 quick off it; 5 back
    assert sink.threads[:3] == [loop, loop, sink.threads[2]] and sink.threads[2].startswith("strana-sink")
    assert sink.threads[3].startswith("strana-sink") and sink.threads[4] == loop
    assert worker.stored == 5


def test_a_sink_that_is_not_an_append_never_writes_on_the_loop(tmp_path):
    class Plain(StallingAppends):
        appends_only = False

    sink = Plain(stall_on=set())
    worker = Worker(bus=None, chain=Chain([]), sink=sink)
    try:
        commits(worker, 3)
    finally:
        worker.close()
    assert all(name.startswith("strana-sink") for name in sink.threads)


def test_the_spool_file_is_written_with_o_dsync(tmp_path):
    # A record is durable when write() returns only because the descriptor syncs each write (no fdatasync).
    spool = SpoolingSink(DuckDBSink(tmp_path / "s.duckdb"), tmp_path / "spool")
    spool.recover()
    try:
        assert fcntl.fcntl(spool._fd, fcntl.F_GETFL) & os.O_DSYNC == os.O_DSYNC
    finally:
        spool.close()
