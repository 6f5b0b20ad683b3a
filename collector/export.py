"""`strana export`: a site's raw events for a range of days, as Parquet or CSV, from either sink.

The rows stream from DuckDB in batches (the lake through the same reader the
reports use), so an export of millions of events needs little memory; a
progress bar on stderr counts them. The output is written to a temporary
name and renamed at the end: an interrupted export leaves no half file.

The DuckDB sink's file can be opened by one process only: while `strana serve`
runs on it, export says so and suggests stopping the server or using the
Parquet sink, whose lake any number of readers can read at once.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from collector.events import SCHEMA


class ExportError(Exception):
    """The export cannot run; the message says why and what to do."""


def open_store(settings) -> duckdb.DuckDBPyConnection:
    if settings.sink.kind == "parquet":
        from collector.sinks.lake import Lake, LakeConfig
        from collector.sinks.lake_reader import LakeReader

        return LakeReader(Lake(LakeConfig.from_settings(settings))).connect()
    path = settings.data_dir / "strana.duckdb"
    if not path.exists():
        raise ExportError(f"no DuckDB store at {path} (check --data-dir / [server] data_dir)")
    try:
        return duckdb.connect(str(path), read_only=True)
    except duckdb.IOException as exc:
        raise ExportError(
            f"cannot open {path}: another process holds it ({exc}).\n"
            "DuckDB lets one process open the file, and `strana serve` is probably running on it. "
            "Stop the server and export again, or run with [sink] kind = \"parquet\", whose event lake "
            "can be read while the server writes it.") from None


class Progress:
    """A one-line bar on a terminal, a line every few seconds otherwise."""

    def __init__(self, total: int, stream=sys.stderr):
        self.total, self.stream, self.done = total, stream, 0
        self.tty = stream.isatty()
        self.last = 0.0

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.done < self.total and now - self.last < (0.1 if self.tty else 2.0):
            return
        self.last = now
        share = self.done / self.total if self.total else 1.0
        bar = "#" * int(share * 30)
        line = f"[{bar:<30}] {share:4.0%} {self.done:,}/{self.total:,} events"
        self.stream.write("\r" + line if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()


def export(settings, site: str, start: dt.date, end: dt.date, fmt: str, output: str | Path,
           progress_stream=sys.stderr, batch_rows: int = 100_000) -> int:
    """Events of `site` whose timestamp falls on days start..end (inclusive, UTC); returns how many."""
    if fmt not in ("parquet", "csv"):
        raise ExportError(f"--format must be parquet or csv, got {fmt!r}")
    if end < start:
        raise ExportError(f"--to {end} is before --from {start}")
    con = open_store(settings)
    try:
        if fmt == "parquet":  # UUIDs stay UUIDs (else DuckDB hands them out as strings)
            con.execute("SET arrow_lossless_conversion = true")
        where = "site = ? AND \"timestamp\" >= ?::TIMESTAMPTZ AND \"timestamp\" < ?::TIMESTAMPTZ"
        params = [site.strip().lower(), f"{start}T00:00:00+00:00", f"{end + dt.timedelta(days=1)}T00:00:00+00:00"]
        total = con.execute(f"SELECT count(*) FROM events WHERE {where}", params).fetchall()[0][0]
        if fmt == "csv":
            select = "SELECT * REPLACE (event_id::VARCHAR AS event_id, to_json(props)::VARCHAR AS props)"
        else:
            select = "SELECT *"
        reader = con.sql(f"{select} FROM events WHERE {where} ORDER BY \"timestamp\"",
                         params=params).to_arrow_reader(batch_rows)
        return _write(reader, fmt, Path(output), Progress(total, progress_stream))
    finally:
        con.close()


def _write(reader: pa.RecordBatchReader, fmt: str, output: Path, progress: Progress) -> int:
    tmp = output.with_name(f".{output.name}.partial")
    writer = None
    rows = 0
    try:
        for batch in reader:
            if fmt == "parquet":
                batch = batch.cast(SCHEMA)
                writer = writer or pq.ParquetWriter(tmp, SCHEMA, compression="zstd")
            else:
                writer = writer or pacsv.CSVWriter(tmp, batch.schema)
            writer.write_batch(batch)
            rows += batch.num_rows
            progress.update(batch.num_rows)
        if writer is None:  # nothing matched: still a valid, empty file
            if fmt == "parquet":
                pq.write_table(SCHEMA.empty_table(), tmp, compression="zstd")
            else:
                tmp.write_text(",".join(f'"{n}"' for n in SCHEMA.names) + "\n")
        else:
            writer.close()
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
        progress.update(0)
        progress.close()
    return rows
