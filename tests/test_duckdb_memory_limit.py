"""[sink] memory_limit bounds DuckDB's memory in a serving process; a bad value is named at start-up."""

import pytest

from collector.settings import load
from collector.sinks.duckdb import DuckDBSink


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
