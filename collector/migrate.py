"""Numbered SQL migrations for the DuckDB store, applied in order, each once."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

_HERE = Path(__file__).resolve().parent


def migrations_dir() -> Path:
    for candidate in (_HERE.parent / "migrations", _HERE / "_migrations"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("no migrations folder found beside the collector package")


def available() -> list[tuple[int, str, Path]]:
    found = []
    for path in sorted(migrations_dir().glob("*.sql")):
        m = re.match(r"(\d+)_(.+)\.sql$", path.name)
        if m:
            found.append((int(m.group(1)), m.group(2), path))
    return found


def apply(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply pending migrations; returns the names applied."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, "
        "applied_at TIMESTAMPTZ DEFAULT now())"
    )
    done = {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}
    applied = []
    for version, name, path in available():
        if version in done:
            continue
        con.execute("BEGIN")
        try:
            con.execute(path.read_text())
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        applied.append(f"{version:03d}_{name}")
    return applied
