"""[sink] memory_limit bounds DuckDB's memory in a serving process; a bad value is named at start-up. [sink]
threads leaves a core to ingest unless told otherwise."""

import os

import pytest

from collector.settings import SettingsError, load
from collector.sinks.duckdb import DuckDBSink, query_threads


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


def test_duckdb_leaves_a_core_to_ingest_by_default(tmp_path):
    threads = query_threads(load(environ={}).sink.threads)
    assert threads == max(1, os.cpu_count() - 1)
    assert query_threads(3) == 3
    sink = DuckDBSink(tmp_path / "strana.duckdb", threads=threads)
    try:
        assert sink.con.execute("SELECT current_setting('threads')").fetchone()[0] == threads
    finally:
        sink.close()


def test_negative_threads_are_named():
    with pytest.raises(SettingsError, match=r"\[sink\] threads"):
        load(environ={"STRANA_SINK__THREADS": "-1"})
