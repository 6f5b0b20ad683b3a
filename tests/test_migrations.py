"""Migrations give exactly the event schema of collector/events.py on an empty DB, 005 backfills visit rollups,
and `strana migrate` works."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pyarrow as pa

from collector import migrate
from collector.enhancers.put_session import PutSession
from collector.events import FIELDS, SCHEMA, Hit, to_arrow


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


def test_migrated_table_matches_fields():
    con = duckdb.connect()
    migrate.apply(con)
    con.register("fields", SCHEMA.empty_table())
    got = con.execute("SELECT column_name, column_type FROM (DESCRIBE events)").fetchall()
    want = con.execute("SELECT column_name, column_type FROM (DESCRIBE fields)").fetchall()
    assert [n for n, _ in got] == [n for n, _, _ in FIELDS]
    assert got == want


def _hits() -> list[Hit]:
    minute = 60 * 1_000_000
    plan = [(1, 0, "pageview"), (1, 2, "engagement"), (2, 3, "pageview"), (1, 5, "signup"), (1, 50, "pageview"),
            (2, 4, "pageview"), (1, 51, "pageview")]
    return [Hit(event_id=bytes([i] * 16), site="s", name=name, timestamp=(10_000 + t) * minute,
                received_at=(10_000 + t) * minute, visitor_id=v, interactive=name != "engagement")
            for i, (v, t, name) in enumerate(plan)]


def test_backfill_agrees_with_put_session():
    hits = _hits()
    step = PutSession()
    for hit in sorted(hits, key=lambda h: h.timestamp):
        step(hit)
    expected = {h.event_id: (h.visit_seq, h.interaction_seq, h.duration_delta) for h in hits}
    batch = to_arrow(hits)
    old = batch.drop_columns(["visit_seq", "interaction_seq", "duration_delta"])
    con = duckdb.connect()
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, "
                "applied_at TIMESTAMPTZ DEFAULT now())")
    for version, name, path in migrate.available():
        if version >= 5:
            break
        con.execute(path.read_text())
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
    con.register("old", pa.Table.from_batches([old]))
    con.execute("INSERT INTO events SELECT * FROM old")
    assert migrate.apply(con)[0] == "005_visit_rollups"
    got = {r[0].bytes: r[1:] for r in con.execute(
        "SELECT event_id, visit_seq, interaction_seq, duration_delta FROM events").fetchall()}
    assert got == expected
    assert sorted(v[0] for v in got.values()) == [1, 1, 1, 2, 2, 2, 3]
