"""Where the bytes of a Strana store go: bytes per event for each column of `events`, and for the rest.

    .venv/bin/python bench/storage.py /path/to/strana.duckdb [--columns a,b] [--order "site, ts"]

DuckDB packs several small segments into one 256 KiB block and reports no
size per segment, so each column is measured by copying it alone (in the
same row order) into a scratch database, checkpointing, and counting the
blocks it used: compression is per column, so the copy compresses exactly as
the column does in the table. The rest of the file (other tables, rollups,
indexes, metadata, free blocks, and what a table written over many checkpoints takes beyond one written in
one go) is the file size minus the events table copied in one go.
The number that counts is the whole file divided by the events.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import duckdb

BLOCK = 262_144


def used_bytes(con: duckdb.DuckDBPyConnection) -> int:
    total, free = con.execute("SELECT total_blocks, free_blocks FROM pragma_database_size() "
                              "WHERE database_name = current_database()").fetchone()
    return (total - free) * BLOCK


def column_bytes(src: Path, column: str, scratch: Path, order: str | None = None) -> tuple[int, str]:
    """Bytes the column takes on disk when stored alone, and the compressions DuckDB chose for it
    (`column` may be `*`: the whole table)."""
    path = scratch / "col.duckdb"
    path.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    try:
        con.execute(f"ATTACH '{src}' AS src (READ_ONLY)")
        con.execute("CREATE TABLE empty AS SELECT NULL::BOOLEAN AS x")  # the table's own metadata block
        con.execute("CHECKPOINT")
        empty = used_bytes(con)
        sort = f" ORDER BY {order}" if order else ""
        select = "*" if column == "*" else f'"{column}"'
        con.execute(f"CREATE TABLE c AS SELECT {select} FROM src.events{sort}")
        con.execute("DETACH src")
        con.execute("CHECKPOINT")
        comp = con.execute(
            "SELECT string_agg(DISTINCT compression, '+' ORDER BY compression) FROM pragma_storage_info('c') "
            "WHERE segment_type <> 'VALIDITY'").fetchone()[0]
        return used_bytes(con) - empty, comp or ""
    finally:
        con.close()
        path.unlink(missing_ok=True)


def report(src: Path, columns: list[str] | None = None, order: str | None = None) -> dict[str, float]:
    """Print bytes/event per column and for the rest of the file; return {column: bytes/event}."""
    con = duckdb.connect(str(src), read_only=True)
    n = con.execute("SELECT count(*) FROM events").fetchone()[0]
    names = [r[0] for r in con.execute("SELECT column_name FROM (DESCRIBE events)").fetchall()]
    types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE events)").fetchall())
    tables = con.execute(
        "SELECT table_name, estimated_size FROM duckdb_tables() WHERE table_name <> 'events' "
        "ORDER BY estimated_size DESC").fetchall()
    indexes = con.execute("SELECT count(*) FROM duckdb_indexes()").fetchone()[0]
    total, free = con.execute("SELECT total_blocks, free_blocks FROM pragma_database_size() "
                              "WHERE database_name = current_database()").fetchone()
    con.close()
    size = src.stat().st_size
    print(f"{src}: {n:,} events, {size / 1e6:.1f} MB = {size / n:.2f} bytes/event (file size / events); "
          f"blocks in use {(total - free) * BLOCK / n:.2f}, free blocks inside the file {free * BLOCK / n:.2f}")
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="strana-storage-") as tmp:
        for name in columns or names:
            nbytes, comp = column_bytes(src, name, Path(tmp), order)
            out[name] = nbytes / n
            print(f"  {name:18} {types[name]:24} {nbytes / n:7.2f} B/event  {comp}", flush=True)
        if not columns:
            # Alone, each column fills its last block and keeps its small segments apart: the sum overstates.
            print(f"  {'(sum of the columns measured alone)':43} {sum(out.values()):7.2f} B/event")
            events_bytes, _ = column_bytes(src, "*", Path(tmp), order)
            print(f"  {'= the events table, all columns together':43} {events_bytes / n:7.2f} B/event "
                  "(copied in one go: written in many checkpoints, the table takes more)")
            print(f"  {'= the rest of the file':43} {(size - events_bytes) / n:7.2f} B/event "
                  f"(other tables, indexes ({indexes}), metadata, free blocks)")
    if not columns:
        print("  other tables (rows): " + ", ".join(f"{t}={r:,}" for t, r in tables if r))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", type=Path)
    ap.add_argument("--columns", help="comma-separated columns (default: all)")
    ap.add_argument("--order", help="measure the columns as if rows were stored in this order (SQL ORDER BY)")
    args = ap.parse_args()
    if not args.path.exists():
        sys.exit(f"no such file: {args.path}")
    report(args.path, args.columns.split(",") if args.columns else None, args.order)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
