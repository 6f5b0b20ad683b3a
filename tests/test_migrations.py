"""Migrations give exactly the event schema of collector/events.py on an empty DB; `strana migrate` works."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pyarrow as pa

from collector import migrate
from collector.events import SCHEMA, Hit, to_arrow


def test_migrations_match_the_arrow_schema(tmp_path):
    con = duckdb.connect(str(tmp_path / "m.duckdb"))
    applied = migrate.apply(con)
    assert applied and applied[0].startswith("001_")
    assert migrate.apply(con) == []  # idempotent
    schema = con.sql("SELECT * FROM events LIMIT 0").arrow().schema
    con.execute("SET arrow_lossless_conversion = true")  # only this way do UUIDs come out as arrow.uuid
    lossless = con.sql("SELECT * FROM events LIMIT 0").arrow().schema
    assert schema.names == SCHEMA.names
    for field in SCHEMA:
        got = (lossless if field.type == pa.uuid() else schema).field(field.name).type
        if pa.types.is_timestamp(field.type):  # DuckDB says Etc/UTC for UTC
            assert got.unit == field.type.unit and got.tz in ("UTC", "Etc/UTC"), field.name
        else:
            assert got == field.type, (field.name, got, field.type)


def test_a_batch_made_by_to_arrow_inserts_as_is(tmp_path):
    con = duckdb.connect(str(tmp_path / "m.duckdb"))
    migrate.apply(con)
    batch = to_arrow([Hit(event_id=b"\x01" * 16, site="example.com", timestamp=1, received_at=1,
                          props={"a": "b"}, scroll_depth=100, engagement_ms=5)])
    assert batch.schema == SCHEMA
    con.execute("INSERT INTO events SELECT * FROM batch")
    assert con.execute("SELECT site, props['a'], scroll_depth FROM events").fetchall() == [("example.com", "b", 100)]


def test_strana_migrate_command(tmp_path):
    run = subprocess.run([sys.executable, "-m", "collector.cli", "migrate", "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, check=True)
    assert "applied: 001_events" in run.stdout
    again = subprocess.run([sys.executable, "-m", "collector.cli", "migrate", "--data-dir", str(tmp_path)],
                           capture_output=True, text=True, check=True)
    assert "up to date" in again.stdout
