"""The migrations build exactly the table collector/events.py FIELDS describes, and 004 backfills old rows.

FIELDS is the single source of truth for the event record; the store is made
by numbered SQL migrations. This applies them all to an empty DuckDB and
compares column names, order and types with the Arrow schema, and checks that
the visit-rollup backfill agrees with put_session on rows stored before it.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from collector import migrate
from collector.enhancers.put_session import PutSession
from collector.events import FIELDS, SCHEMA, Hit, to_arrow


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
        if version >= 4:
            break
        con.execute(path.read_text())
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
    con.register("old", pa.Table.from_batches([old]))
    con.execute("INSERT INTO events SELECT * FROM old")
    assert migrate.apply(con) == ["004_visit_rollups"]
    got = {r[0].bytes: r[1:] for r in con.execute(
        "SELECT event_id, visit_seq, interaction_seq, duration_delta FROM events").fetchall()}
    assert got == expected
    assert sorted(v[0] for v in got.values()) == [1, 1, 1, 2, 2, 2, 3]
