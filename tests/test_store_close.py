"""Shutdown with a scheduled job still running: the store is checkpointed and closed, not left to a traceback.

The scheduler does not wait for a job's thread, and a today_rollups run can take tens of seconds; DuckDB
refuses to close a connection while a cursor of it runs a query, so a SIGTERM in the middle of one exited
`strana serve` with a traceback and no checkpoint (seen at the end of bench/soak_max.py).
"""

from __future__ import annotations

import signal
import threading
import time

import duckdb

from collector.sinks.duckdb import DuckDBSink


def test_close_interrupts_a_running_query_rolls_its_step_back_and_checkpoints(tmp_path):
    sink = DuckDBSink(tmp_path / "strana.duckdb")
    job, outcome, began = sink.reader(), {}, threading.Event()

    def run():
        try:
            job.execute("BEGIN")
            job.execute("INSERT INTO drops VALUES ('s.example', DATE '2026-12-01', 'step', 1)")
            began.set()
            job.execute("SELECT sum(hash(i)) FROM range(100000000000) t(i)").fetchall()  # minutes, alone
            outcome["ended"] = "finished"
        except duckdb.Error as exc:
            outcome["ended"] = type(exc).__name__

    thread = threading.Thread(target=run)
    thread.start()
    assert began.wait(10)
    sink.close()
    thread.join(10)
    assert not thread.is_alive() and outcome["ended"] != "finished"
    assert not (tmp_path / "strana.duckdb.wal").exists()  # checkpointed
    con = duckdb.connect(str(tmp_path / "strana.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM drops").fetchone()[0] == 0  # the uncommitted step is gone


def test_sigterm_during_a_today_rollups_run_stops_cleanly(make_server, tmp_path):
    data = tmp_path / "data"
    make_server(data_dir=data, start=False).start().stop()
    con = duckdb.connect(str(data / "strana.duckdb"))
    con.execute("""INSERT INTO events (event_id, site, name, "timestamp", received_at, via, visitor_id, session_id,
                                       visit_seq, interactive, pathname)
                   SELECT uuid(), 'busy.example', 'pageview', now(), now(), 'batch', i + 1, i + 1, 1, true,
                          '/p' || (i % 1000)
                   FROM range(1500000) t(i)""")  # today's first run builds these in 30 steps
    con.close()
    server = make_server(data_dir=data, env={"STRANA_SERVER__LOG_LEVEL": "info",
                                             "STRANA_SINK__TODAY_ROLLUPS_SECONDS": "1"})
    deadline = time.monotonic() + 60
    while 'Running job "today_rollups' not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert 'Running job "today_rollups' in server.log()
    with server.client() as c:
        assert c.post("/api/event", json={"n": "pageview", "u": "https://busy.example/", "d": "busy.example"},
                      headers={"user-agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 "
                                             "Firefox/128.0"}).status_code == 202
    assert server.stop(signal.SIGTERM, timeout=20) == 0  # not killed after 20 s: the job did not hold it up
    log = server.log()
    assert "drained and closed; 1 events stored this run" in log
    assert "Traceback" not in log and "error while stopping" not in log
    assert not (data / "strana.duckdb.wal").exists()
    with server.db() as db:
        assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 1_500_001
