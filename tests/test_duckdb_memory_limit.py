"""[sink] memory_limit bounds DuckDB's memory in a serving process; a bad value is named at start-up. [sink]
threads is DuckDB's default (one per core) unless set."""

import os

import duckdb
import pytest

from collector.settings import SettingsError, load
from collector.sinks.duckdb import DuckDBSink, query_threads


def store_with(make_server, tmp_path, insert: str):
    """A data directory whose store has every migration applied, then `insert` run on it."""
    data = tmp_path / "data"
    make_server(data_dir=data, start=False).start().stop()
    con = duckdb.connect(str(data / "strana.duckdb"))
    con.execute(insert)
    con.close()
    return data


def test_the_default_bounds_duckdb(tmp_path):
    limit = load().sink.memory_limit
    sink = DuckDBSink(tmp_path / "strana.duckdb", memory_limit=limit)
    try:
        assert limit == "256MB"
        assert sink.con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "244.1 MiB"
    finally:
        sink.close()


def test_a_set_limit_is_used(tmp_path):
    sink = DuckDBSink(tmp_path / "strana.duckdb", memory_limit="256MB")
    try:
        assert sink.con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "244.1 MiB"
    finally:
        sink.close()


def test_a_bad_limit_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"\[sink\] memory_limit: 'lots'.*512MB"):
        DuckDBSink(tmp_path / "strana.duckdb", memory_limit="lots")


def test_duckdb_threads_default_to_one_per_core_and_can_be_set(tmp_path):
    assert query_threads(load(environ={}).sink.threads) == os.cpu_count()
    threads = query_threads(load(environ={"STRANA_SINK__THREADS": "1"}).sink.threads)
    assert threads == 1
    sink = DuckDBSink(tmp_path / "strana.duckdb", threads=threads)
    try:
        assert sink.con.execute("SELECT current_setting('threads')").fetchone()[0] == threads
    finally:
        sink.close()


def test_negative_threads_are_named():
    with pytest.raises(SettingsError, match=r"\[sink\] threads"):
        load(environ={"STRANA_SINK__THREADS": "-1"})


def test_a_report_over_the_memory_limit_is_a_503_that_says_what_to_change(make_server, tmp_path):
    data = store_with(make_server, tmp_path, """
                   INSERT INTO events (event_id, site, name, "timestamp", received_at, via, visitor_id)
                   SELECT uuid(), 'big.example', 'pageview', now(), now(), 'batch', (hash(i) >> 1)::UBIGINT
                   FROM range(1500000) t(i)""")  # 1.5M visitors today
    # counted over SELECT DISTINCT, they fit 32MB (count(DISTINCT) needed more: reports/aggregate.py)
    fits = make_server(data_dir=data, env={"STRANA_SINK__MEMORY_LIMIT": "32MB", "STRANA_SINK__THREADS": "1"})
    with fits.client() as c:
        r = c.get("/api/v1/stats/aggregate", params={"site": "big.example", "period": "day"})
        assert r.status_code == 200 and r.json()["results"]["visitors"] == 1_500_000
    fits.stop()
    small = make_server(data_dir=data, env={"STRANA_SINK__MEMORY_LIMIT": "8MB", "STRANA_SINK__THREADS": "1"})
    with small.client() as c:
        r = c.get("/api/v1/stats/aggregate", params={"site": "big.example", "period": "day"})
        assert r.status_code == 503 and r.headers["retry-after"] == "30"
        assert "memory_limit" in r.json()["error"]
        assert "strana_reads_out_of_memory_total 1.0" in c.get("/metrics").text
        assert c.get("/healthz").status_code == 200
    assert "Traceback" not in small.log()


def test_a_restart_with_more_open_visits_than_memory_limit_holds_still_starts(make_server, tmp_path):
    """Start-up reloads the last 30 minutes' visits (put_session goes on counting them); 1.5M of them did not
    fit 32MB, and the server exited before serving. Now it reloads a shorter window, says so, and serves."""
    data = store_with(make_server, tmp_path, """
                   INSERT INTO events (event_id, site, name, "timestamp", received_at, via, visitor_id, session_id,
                                       visit_seq, interactive)
                   SELECT uuid(), 'big.example', 'pageview', now(), now(), 'batch', (hash(i) >> 1)::UBIGINT,
                          (hash(i) >> 2)::UBIGINT, 1, true
                   FROM range(1500000) t(i)""")
    small = make_server(data_dir=data, env={"STRANA_SINK__MEMORY_LIMIT": "32MB", "STRANA_SINK__THREADS": "1"})
    with small.client() as c:
        assert c.post("/api/event", json={"n": "pageview", "u": "https://big.example/", "d": "big.example"},
                      headers={"user-agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 "
                                             "Firefox/128.0"}).status_code == 202
        r = c.get("/api/v1/stats/aggregate", params={"site": "big.example", "period": "day"})
        assert r.status_code == 200 and r.json()["results"]["pageviews"] == 1_500_001
    assert "needs more than [sink] memory_limit; trying less" in small.log()
    assert "Traceback" not in small.log()


def test_a_restart_reloads_no_more_open_visits_than_the_visit_table_holds(make_server, tmp_path):
    """The half hour before a restart had more visitors than put_session's table holds (500,000). Start-up
    reloaded every one of them, so a flat-out soak's 8.6M took 2.3 GB and 24 s before serving
    (bench/soak_max.py --from-store); now it reloads the latest 500,000 and the table starts full, not over."""
    data = store_with(make_server, tmp_path, """
                   INSERT INTO events (event_id, site, name, "timestamp", received_at, via, visitor_id, session_id,
                                       visit_seq, interactive)
                   SELECT uuid(), 'busy.example', 'pageview', now() - to_milliseconds(600000 - i), now(), 'batch',
                          i + 1, i + 1, 1, true
                   FROM range(600000) t(i)""")
    restarted = make_server(data_dir=data)
    with restarted.client() as c:
        metrics = c.get("/metrics").text
    assert "strana_active_visitors 500000.0" in metrics
    assert "Traceback" not in restarted.log()
