"""Damaged files: a recovery or one clear message at start, never silent data loss; a bad lake file never a 500.

- a DuckDB WAL truncated mid-record after a SIGKILL: DuckDB opens it without a
  word, minus the torn tail, and the spool position goes back with the rows, so
  the spool (whose segments are deleted only after a CHECKPOINT) replays them;
- bytes flipped in the .duckdb file, or a file that is not DuckDB at all: exit
  code 1 and a message naming the file and what to do, no traceback;
- a torn spool segment: tests/test_spool.py::test_a_torn_tail_is_cut_not_fatal;
- a Parquet file in a local lake that cannot be read: left out of the reports
  with a warning naming it; the reports answer 200 with the readable events.
SIGKILL under load: tests/test_durability.py (3 rounds) and bench/faults.py (20).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import socket
import subprocess

import pytest
from conftest import ROOT, STRANA, free_port

UA = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}
TODAY = dt.datetime.now(dt.UTC).date().isoformat()


def post_events(server, seqs) -> None:
    with server.client() as c:
        for i in seqs:
            r = c.post("/api/event", json={"n": "pageview", "u": f"https://example.com/{i}", "d": "example.com",
                                           "p": {"seq": str(i)}}, headers=UA)
            assert r.status_code == 202 and "x-strana-ignored" not in r.headers


def stored_seqs(server) -> dict[int, int]:
    with server.db() as db:
        rows = db.execute("SELECT props['seq'], count(*) FROM events GROUP BY ALL").fetchall()
    return {int(seq): n for seq, n in rows}


def test_a_truncated_wal_after_sigkill_is_replayed_from_the_spool(make_server, tmp_path):
    data = tmp_path / "data"
    server = make_server(data_dir=data)
    post_events(server, range(300))
    server.stop(signal.SIGKILL)
    wal = data / "strana.duckdb.wal"
    assert wal.exists() and wal.stat().st_size > 10_000, "no WAL to damage: the test needs one"
    os.truncate(wal, wal.stat().st_size // 2)  # cut mid-record

    again = make_server(data_dir=data)
    post_events(again, range(300, 310))
    again.stop()
    counts = stored_seqs(again)
    assert sorted(counts) == list(range(310)), f"lost: {sorted(set(range(310)) - set(counts))[:10]}"
    assert set(counts.values()) == {1}, "stored twice"
    assert "replayed" in again.log()


def serve_once(data_dir, timeout: float = 60) -> subprocess.CompletedProcess:
    """`strana serve` on a damaged store: it must stop by itself (the store check runs before Granian)."""
    return subprocess.run([*STRANA, "serve", "--port", str(free_port()), "--data-dir", str(data_dir)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def damage(path, offset: int, n: int = 16) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        chunk = f.read(n)
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in chunk))


@pytest.mark.parametrize("offset", [100, 4096 + 10, 8192 + 10], ids=["header", "database header", "metadata"])
def test_flipped_bytes_in_the_store_stop_the_start_with_a_clear_message(make_server, tmp_path, offset):
    data = tmp_path / "data"
    server = make_server(data_dir=data)
    post_events(server, range(20))
    server.stop()  # SIGTERM: checkpointed, no WAL
    store = data / "strana.duckdb"
    intact = tmp_path / "intact.duckdb"
    shutil.copy(store, intact)
    damage(store, offset)
    done = serve_once(data)
    assert done.returncode == 1, done.stderr[-2000:]
    assert str(store) in done.stderr and "damaged" in done.stderr and "backup" in done.stderr
    assert "Traceback" not in done.stderr
    shutil.copy(intact, store)  # and once restored, it serves again with every event
    again = make_server(data_dir=data)
    again.stop()
    assert sorted(stored_seqs(again)) == list(range(20))


def test_a_file_that_is_not_duckdb_is_named(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "strana.duckdb").write_bytes(os.urandom(64 << 10))
    done = serve_once(data)
    assert done.returncode == 1 and "damaged" in done.stderr and "strana.duckdb" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_an_unreadable_parquet_file_is_left_out_of_reports_with_a_warning(make_server):
    server = make_server(env={"STRANA_SINK__KIND": "parquet"})
    post_events(server, range(6))
    part = server.data_dir / "lake" / "events" / "site=example.com" / f"date={TODAY}"
    files = sorted(part.glob("*.parquet"))
    assert len(files) == 6
    os.truncate(files[0], files[0].stat().st_size // 2)  # a copy cut short
    (part / "zz-garbage.parquet").write_bytes(b"PAR1" + os.urandom(4000))  # not Parquet at all
    with server.client() as c:
        r = c.get("/api/v1/stats/aggregate", params={"site": "example.com"})
        assert r.status_code == 200 and r.json()["results"]["events"] == 5, r.text
        r = c.post("/api/v1/query", json={"site_id": "example.com", "metrics": ["pageviews"], "date_range": "day"})
        assert r.status_code == 200, r.text
        assert c.get("/example.com", headers={"accept": "text/html"}).status_code == 200
        post_events(server, [6])  # and the lake still takes events
        assert c.get("/api/v1/stats/aggregate", params={"site": "example.com"}).json()["results"]["events"] == 6
    log = server.log()
    assert f"leaving out events/site=example.com/date={TODAY}/{files[0].name}" in log
    assert "zz-garbage.parquet" in log and "Traceback" not in log


def test_a_taken_port_stops_the_start_with_a_clear_message(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([*STRANA, "serve", "--port", str(port), "--data-dir", str(tmp_path / "data")], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr
    assert "--port" in done.stderr and "Traceback" not in done.stderr
    assert "serving on" not in done.stderr
