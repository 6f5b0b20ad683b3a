"""DuckDB invalidated under a running server: the spool's loader opens the store again and loses nothing.

DuckDB invalidates a database when a checkpoint cannot write its file (disk full) or a failed commit cannot be
reverted (seen in bench/soak_max.py when a load ran out of memory_limit while reports held it); every statement
then fails until the database is opened again. The disk-full case is reproduced for real on a size-limited
tmpfs (needs root; skipped otherwise), with the real spool and DuckDB.
"""

from __future__ import annotations

import os
import time
import uuid

import duckdb
import pytest
from disk_support import fill, small_disk_at

from collector.app import store_unavailable
from collector.events import Hit, to_arrow
from collector.sinks import spool as spool_module
from collector.sinks.duckdb import DuckDBSink, invalidated
from collector.sinks.spool import SpoolingSink


@pytest.fixture
def small_disk(tmp_path):
    with small_disk_at(tmp_path, "48M") as mnt:
        yield mnt


def batch(n: int, start: int):
    now = int(time.time() * 1e6)
    return to_arrow([Hit(event_id=uuid.uuid4().bytes, site="example.com", timestamp=now, received_at=now,
                         pathname="/" + os.urandom(100).hex(), props={"seq": str(start + i)})
                     for i in range(n)])


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_an_invalidated_store_is_reopened_and_every_spooled_event_stored_once(small_disk, caplog, monkeypatch):
    monkeypatch.setattr(spool_module, "SPARE_AFTER_BYTES", 1 << 40)  # no spare segment racing the filler
    db = small_disk / "strana.duckdb"
    spool = SpoolingSink(DuckDBSink(db), small_disk / "spool")
    spool.recover()
    spool.inner.con.execute("SET wal_autocheckpoint = '1GB'")  # the checkpoint below is the one that fails
    for i in range(0, 20000, 1000):  # ~4 MB of random paths in the WAL: the checkpoint must write them out
        spool.write(batch(1000, i), {})
    assert spool.wait_loaded(30)
    fill(small_disk / "filler")
    with pytest.raises(duckdb.Error) as failed:
        spool.inner.checkpoint()  # what the loader does before deleting loaded segments
    assert invalidated(failed.value) and spool.inner.invalid, failed.value
    with pytest.raises(duckdb.Error):
        spool.reader().execute("SELECT count(*) FROM events").fetchone()  # every statement fails now

    os.unlink(small_disk / "filler")  # space returns
    for i in range(20000, 21000, 100):
        spool.write(batch(100, i), {})  # acknowledged: in the spool, not yet in the store
    assert spool.wait_loaded(60), "the loader did not recover"
    assert not spool.inner.invalid
    assert "has been opened again" in caplog.text and "loaded again from the spool" in caplog.text

    cur = spool.reader()
    seqs = cur.execute("SELECT props['seq']::INTEGER, count(*) FROM events GROUP BY ALL").fetchall()
    cur.close()
    assert sorted(s for s, _ in seqs) == list(range(21000))
    assert {n for _, n in seqs} == {1}, "stored twice"
    spool.write(batch(10, 21000), {})  # and it goes on loading
    assert spool.wait_loaded(30)
    spool.close()
    check = duckdb.connect(str(db), read_only=True)
    assert check.execute("SELECT count(*), count(DISTINCT props['seq']) FROM events").fetchone() == (21010, 21010)
    check.close()


def test_reopen_waits_for_a_running_query_and_hands_out_no_reader_of_the_old_store(tmp_path):
    sink = DuckDBSink(tmp_path / "s.duckdb")
    sink.write(batch(100, 0), {})
    old = sink.reader()
    sink.reopen()
    with pytest.raises(duckdb.ConnectionException):
        old.execute("SELECT 1")  # closed with the database it came from
    cur = sink.reader()
    assert cur.execute("SELECT count(*) FROM events").fetchone() == (100,)
    cur.close()
    sink.close()


def test_a_read_of_an_unavailable_store_is_a_503_with_a_retry():
    class Req:
        method, url = "GET", type("U", (), {"path": "/api/v1/stats/aggregate"})()

    exc = duckdb.FatalException("FATAL Error: Failed: database has been invalidated because of a previous fatal "
                                "error. The database must be restarted prior to being used again.")
    response = store_unavailable(Req(), exc)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "try again" in response.content["error"]
