"""The write-ahead spool: replay after a crash, torn tails cut, positions stored with the rows."""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest

from collector.events import Hit, stored_rows, to_arrow
from collector.sinks import spool as spool_module
from collector.sinks.duckdb import DuckDBSink
from collector.sinks.spool import SpoolingSink


def batch(n: int, start: int = 0):
    now = int(time.time() * 1e6)
    return to_arrow([Hit(event_id=uuid.uuid4().bytes, site="example.com", timestamp=now, received_at=now,
                         props={"seq": str(start + i)}) for i in range(n)])


def count(sink_path) -> int:
    sink = DuckDBSink(sink_path)
    try:
        return sink.con.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        sink.close()


def stop_loader(spool) -> None:
    """What a crash leaves: the loader gone, records written but not loaded."""
    spool._closing = True
    with spool._cond:
        spool._cond.notify_all()
    spool._loader.join()
    spool._pending.clear()
    spool._pending_count = 0


def test_replays_what_was_spooled_but_not_loaded(tmp_path):
    db = tmp_path / "s.duckdb"
    spool = SpoolingSink(DuckDBSink(db), tmp_path / "spool")
    spool.recover()
    spool.write(batch(10), {("example.com", "2026-11-23", "bot_ua"): 2})
    spool.wait_loaded(10)
    stop_loader(spool)  # a crash: records from here on are written but never loaded
    spool.write(batch(5, 10), {})
    spool.write(batch(7, 15), {})
    spool.inner.close()  # the process dies; the spool file stays

    again = SpoolingSink(DuckDBSink(db), tmp_path / "spool")
    assert again.recover() == 12
    again.close()
    assert count(db) == 22
    # A third start replays nothing more.
    third = SpoolingSink(DuckDBSink(db), tmp_path / "spool")
    assert third.recover() == 0
    third.close()
    assert count(db) == 22


@pytest.mark.parametrize("tail, torn", [
    (b"\x40\x00\x00\x00\x12\x34\x56\x78partial", True),  # a header promising 64 bytes, then the crash
    (bytes(4096), False),  # what is left of a spare segment after its last record
], ids=["torn record", "zeros of a spare"])
def test_a_torn_tail_is_cut_not_fatal(tmp_path, caplog, tail, torn):
    db = tmp_path / "s.duckdb"
    spool = SpoolingSink(DuckDBSink(db), tmp_path / "spool")
    spool.recover()
    stop_loader(spool)
    spool.write(batch(3), {})
    path = spool._path(spool._segment)
    spool.inner.close()
    with open(path, "ab") as f:
        f.write(tail)
    again = SpoolingSink(DuckDBSink(db), tmp_path / "spool")
    with caplog.at_level("WARNING", logger="strana.spool"):
        assert again.recover() == 3
    again.close()
    assert count(db) == 3
    assert ("cut a torn record" in caplog.text) is torn


def test_segments_rotate_and_old_ones_are_deleted(tmp_path):
    spool = SpoolingSink(DuckDBSink(tmp_path / "s.duckdb"), tmp_path / "spool", segment_bytes=2000)
    spool.recover()
    for i in range(10):
        spool.write(batch(5, i * 5), {})
    assert spool.wait_loaded(10)
    assert wait_for_segments(tmp_path / "spool", 2) <= 2
    spool.close()
    assert count(tmp_path / "s.duckdb") == 50


def wait_for_segments(folder, at_most: int) -> int:
    """The number of segment files, once it is down to `at_most` or after 10 s (the loader deletes them)."""
    deadline = time.monotonic() + 10
    while len(list(folder.glob("*.log"))) > at_most and time.monotonic() < deadline:
        time.sleep(0.01)
    return len(list(folder.glob("*.log")))


class HeldSink(DuckDBSink):
    """A DuckDB sink whose loads wait for `release`, and which records what happened in which order."""

    def __init__(self, path):
        super().__init__(path)
        self.release = threading.Event()
        self.log: list[str] = []

    def write(self, *args, **kwargs):
        self.release.wait(30)
        self.log.append("write")
        return super().write(*args, **kwargs)

    def checkpoint(self):
        self.log.append("checkpoint")
        return super().checkpoint()


def test_a_rotation_does_not_hold_writes_behind_the_loader(tmp_path):
    """Passing `segment_bytes` only starts a new file: the group commit that crosses it returns while the
    loader is still busy (it used to wait for the load and a CHECKPOINT, and every request waited with it).
    The loader deletes the old segments itself once they are loaded, and only after a checkpoint."""
    folder = tmp_path / "spool"
    sink = HeldSink(tmp_path / "s.duckdb")
    sink.release.set()
    spool = SpoolingSink(sink, folder, segment_bytes=2000, load_interval=0.01)
    spool.recover()
    sink.release.clear()  # the loader is stuck in its next load from here on
    batches = [batch(5, i * 5) for i in range(10)]
    writer = threading.Thread(target=lambda: [spool.write(b, {}) for b in batches])  # each passes 2000 bytes
    writer.start()
    writer.join(10)
    held, segments = writer.is_alive(), len(list(folder.glob("*.log")))
    sink.release.set()
    writer.join()
    assert not held, "the writes waited for the loader"
    assert segments >= 10, "every write got its own segment while the loader was held"
    assert spool.wait_loaded(10)
    assert wait_for_segments(folder, 2) <= 2
    assert "checkpoint" in sink.log and sink.log.index("checkpoint") > sink.log.index("write")
    spool.close()
    assert count(tmp_path / "s.duckdb") == 50


def _hits(n: int, start: int = 0) -> list[Hit]:
    now = int(time.time() * 1e6)
    return [Hit(event_id=uuid.uuid4().bytes, site="example.com", timestamp=now + i, received_at=now,
                pathname=f"/p{start + i}", props={"seq": str(start + i), "plan": "pro"} if i % 2 else None,
                revenue_amount=-0.0 if i % 3 == 0 else 9.5, visitor_id=2**64 - 1 - i, country=None,
                interactive=bool(i % 2)) for i in range(n)]


def _stored(db):
    sink = DuckDBSink(db)
    try:
        return sink.con.execute("SELECT * EXCLUDE (received_at) FROM events ORDER BY pathname").fetchall()
    finally:
        sink.close()


def test_rows_and_arrow_batches_store_the_same_events(tmp_path):
    """The worker hands the spool rows (events.Rows); sinks get Arrow. Both ways store identical values,
    also after a crash replays rows from the log, and next to records written as Arrow (older spools)."""
    hits = _hits(40)
    as_batch = tmp_path / "batch.duckdb"
    spool = SpoolingSink(DuckDBSink(as_batch), tmp_path / "spool-a")
    spool.recover()
    spool.write(to_arrow(hits[:20]), {})
    spool.write(to_arrow(hits[20:]), {})
    spool.close()

    as_rows = tmp_path / "rows.duckdb"
    spool = SpoolingSink(DuckDBSink(as_rows), tmp_path / "spool-r")
    spool.recover()
    spool.write(stored_rows(hits[:10]), {})
    spool.write(to_arrow(hits[10:20]), {})  # an Arrow record among rows: one load takes both
    spool.wait_loaded(10)
    spool._closing = True  # the crash: the next records are logged, never loaded
    with spool._cond:
        spool._cond.notify_all()
    spool._loader.join()
    spool._pending.clear()
    spool._pending_count = 0
    spool.write(stored_rows(hits[20:30]), {("example.com", "2026-11-23", "bot_ua"): 1})
    spool.write(to_arrow(hits[30:]), {})
    spool.inner.close()
    again = SpoolingSink(DuckDBSink(as_rows), tmp_path / "spool-r")
    assert again.recover() == 20
    again.close()

    stored = _stored(as_rows)
    assert len(stored) == 40
    assert stored == _stored(as_batch)


def test_a_spool_in_use_writes_into_a_zeroed_spare_and_replays_it_after_a_crash(tmp_path, monkeypatch):
    monkeypatch.setattr(spool_module, "SPARE_AFTER_BYTES", 1)
    db, folder = tmp_path / "s.duckdb", tmp_path / "spool"
    spool = SpoolingSink(DuckDBSink(db), folder, segment_bytes=256 << 10, load_interval=0.01)
    spool.recover()
    spool.write(batch(4), {})
    first = spool._segment
    deadline = time.monotonic() + 10
    while not (folder / spool_module.SPARE).exists() or not spool._spare_ready:
        assert time.monotonic() < deadline, "the loader never made a spare segment"
        time.sleep(0.01)
    assert (folder / spool_module.SPARE).stat().st_size == 256 << 10
    spool.write(batch(5, 4), {})  # the spare replaces the empty-file segment after this record
    assert spool._segment == first + 1 and spool._preallocated
    stop_loader(spool)
    spool.write(batch(6, 9), {})
    spool.write(batch(7, 15), {})
    into = spool._path(spool._segment)
    assert into.stat().st_size == 256 << 10, "the records went into the zeroed file without growing it"
    spool.inner.close()  # the process dies

    again = SpoolingSink(DuckDBSink(db), folder)
    assert again.recover() == 13  # the two records in the spare; a zero header ends them, no torn-record warning
    assert not (folder / spool_module.SPARE).exists()
    again.close()
    assert count(db) == 22
    sink = DuckDBSink(db)
    try:
        seqs = sorted(int(r[0]) for r in sink.con.execute("SELECT props['seq'] FROM events").fetchall())
    finally:
        sink.close()
    assert seqs == list(range(22))


def test_a_spare_that_cannot_be_made_leaves_nothing_and_writes_go_on(tmp_path, monkeypatch):
    monkeypatch.setattr(spool_module, "SPARE_AFTER_BYTES", 1)
    folder = tmp_path / "spool"
    spool = SpoolingSink(DuckDBSink(tmp_path / "s.duckdb"), folder, load_interval=0.01)
    real_write = os.write

    def full_disk(fd, data):
        if len(data) == len(spool_module.ZEROS):
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(spool_module.os, "write", full_disk)
    spool.recover()
    spool.write(batch(2), {})
    deadline = time.monotonic() + 10
    while spool._spare_retry_at == 0.0:
        assert time.monotonic() < deadline, "the loader never tried to make a spare"
        time.sleep(0.01)
    assert not (folder / spool_module.SPARE).exists() and not spool._spare_ready
    spool.write(batch(3, 2), {})
    spool.close()
    assert count(tmp_path / "s.duckdb") == 5


def test_a_checkpoint_busy_with_another_write_keeps_the_segments_and_is_no_warning(tmp_path, caplog):
    """A today_rollups step holds a write transaction; the loader's checkpoint then fails. That is routine under
    load: the loaded segments stay until a later checkpoint, and the log says so at info, not as a warning."""
    sink = DuckDBSink(tmp_path / "s.duckdb")
    spool = SpoolingSink(sink, tmp_path / "spool", segment_bytes=2000)
    spool.recover()
    sink.con.execute("INSERT INTO drops VALUES ('example.com', DATE '2026-12-01', 'step', 1)")
    job = sink.reader()
    job.execute("BEGIN")
    job.execute("UPDATE drops SET site = site")  # held open: an update, as a step's MERGE makes, blocks CHECKPOINT
    with caplog.at_level("INFO", logger="strana.spool"):
        for i in range(6):
            spool.write(batch(5, i * 5), {})
        assert spool.wait_loaded(10)
        deadline = time.monotonic() + 10  # the loader drops segments after it has loaded them
        while not (busy := [r for r in caplog.records if "checkpoint failed" in r.getMessage()]):
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
    assert busy and {r.levelname for r in busy} == {"INFO"}
    assert len(list((tmp_path / "spool").glob("*.log"))) > 2  # kept while the checkpoint cannot run
    job.execute("COMMIT")
    spool._drop_retry_at = 0  # the loader waits 5 s after a failed checkpoint before it tries again
    for i in range(3):
        spool.write(batch(5, 30 + i * 5), {})
    assert spool.wait_loaded(10)
    assert wait_for_segments(tmp_path / "spool", 2) <= 2  # a later load's checkpoint deletes them
    spool.close()
    assert count(tmp_path / "s.duckdb") == 45
