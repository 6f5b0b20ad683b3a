"""The lake sink: events and drop counts as zstd Parquet files in a folder or an S3 bucket.

`write(events, drops, position)` is the worker's unit, as for the DuckDB sink:
it returns once every file of the unit is stored (local: fsynced and renamed;
S3: the object is complete), so a 2xx still means durable. Events are split
by site and UTC day of `timestamp` into Hive partitions
(`events/site=example.com/date=2026-11-23/`), each file exactly
`events.SCHEMA`; drop counts go to `drops/site=/date=/` the same way. If one
file of a unit fails, the files already written for it are deleted again
(best effort) and the error is raised, so the worker fails the requests (503)
rather than half-storing them. Small files are merged later by compaction.

File names (the exactly-once hook for bus consumers):

- with a bus `position`, a file is named after what it holds:
  `part-<stream>-<partition>-<first>-<last>.parquet` (one such group per
  (stream, partition) in the position, joined by `_`). Position values are
  either `(first, last)` offsets, or the next offset to read, in which case
  `first` is the previous next offset this sink stored for that partition.
  Writing the same offset range again replaces the same objects instead of
  adding rows, and a name that compaction already merged stays ignored by
  readers (its manifest lists it). The position itself is stored after the
  data, in `_positions/<stream>/<partition>.json`; `positions()` reads it back.
- without a position (the embedded memory bus), a time-ordered uuid7:
  `<uuid7>.parquet`.

Salts live in the lake too (`_salts/<day>.bin`, see `LakeSaltStore`).
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from collector.events import SCHEMA
from collector.sinks.lake import DROPS_SCHEMA, Lake, partition_dir, uuid7
from collector.sinks.lake_reader import LakeReader

DAY_US = 86_400_000_000
EPOCH = dt.date(1970, 1, 1)


def parquet_bytes(table: pa.Table) -> bytes:
    out = pa.BufferOutputStream()
    pq.write_table(table, out, compression="zstd")
    return out.getvalue().to_pybytes()


def split_by_day(batch: pa.RecordBatch) -> list[tuple[str, dt.date, pa.Table]]:
    """(site, UTC day of timestamp, rows) for each partition the batch touches."""
    table = pa.Table.from_batches([batch])
    days = pc.divide(pc.cast(table["timestamp"], pa.int64()), DAY_US)  # integer division; times are after 1970
    keys = pa.table({"site": table["site"], "d": days}).group_by(["site", "d"]).aggregate([])
    out = []
    for site, d in zip(keys["site"].to_pylist(), keys["d"].to_pylist(), strict=True):
        rows = table if keys.num_rows == 1 else table.filter(pc.and_(pc.equal(table["site"], site),
                                                                     pc.equal(days, d)))
        out.append((site, EPOCH + dt.timedelta(days=d), rows))
    return out


class ParquetSink:
    def __init__(self, lake: Lake, keep=None, list_ttl: float = 5.0, probe: bool = True):
        self.lake = lake
        if probe:
            lake.probe()
        self.lake_reader = LakeReader(lake, keep, list_ttl)
        self._next: dict[tuple[str, int], int] | None = None

    def reader(self):
        """A DuckDB connection with `events` and `drops` over the lake as it is now."""
        return self.lake_reader.connect()

    def file_name(self, position: dict | None) -> str:
        if not position:
            return f"{uuid7()}.parquet"
        if self._next is None:
            self._next = self.positions()
        groups = []
        for (stream, part), value in sorted(position.items()):
            first, last = value if isinstance(value, tuple) else (self._next.get((stream, part), 0), value - 1)
            groups.append(f"{urllib.parse.quote(stream, safe='')}-{part}-{first}-{last}")
        return "part-" + "_".join(groups) + ".parquet"

    def write(self, events: pa.RecordBatch | None, drops: dict[tuple[str, str, str], int],
              position: dict | None = None, quarantine: list | None = None, replayed: list | None = None) -> None:
        name = self.file_name(position)
        written: list[str] = []
        try:
            for item in quarantine or ():  # kept, not lost; the quarantine CLI/API reads the DuckDB sink only
                rel = f"_quarantine/{item.id.hex()}.json"
                self.lake.put(rel, msgspec.json.encode(item))
                written.append(rel)
            for item_id in replayed or ():
                self.lake.put(f"_quarantine/{item_id.hex()}.replayed", b"")
            if events is not None and events.num_rows:
                for site, day, rows in split_by_day(events):
                    rel = f"{partition_dir('events', site, day)}/{name}"
                    self.lake.put(rel, parquet_bytes(rows.cast(SCHEMA)))
                    written.append(rel)
            by_partition: dict[tuple[str, str], list] = {}
            for (site, day, reason), n in drops.items():
                by_partition.setdefault((site, day), []).append((reason, n))
            for (site, day), rows in by_partition.items():
                table = pa.table({"site": [site] * len(rows), "day": [dt.date.fromisoformat(day)] * len(rows),
                                  "reason": [r for r, _ in rows], "n": [n for _, n in rows]}, schema=DROPS_SCHEMA)
                rel = f"{partition_dir('drops', site, day)}/{name}"
                self.lake.put(rel, parquet_bytes(table))
                written.append(rel)
            if position:
                self._store_position(position)
        except BaseException:
            for rel in written:
                try:
                    self.lake.delete(rel)
                except OSError:
                    pass
            raise
        finally:
            self.lake_reader.invalidate()

    def _store_position(self, position: dict) -> None:
        for (stream, part), value in position.items():
            nxt = value[1] + 1 if isinstance(value, tuple) else value
            self.lake.put(f"_positions/{urllib.parse.quote(stream, safe='')}/{part}.json",
                          json.dumps({"stream": stream, "part": part, "next_offset": nxt}).encode())
            self._next[(stream, part)] = nxt

    def positions(self) -> dict[tuple[str, int], int]:
        """The stored bus positions: (stream, partition) -> next offset to read."""
        out = {}
        for rel in self.lake.list("_positions"):
            p = json.loads(self.lake.get(rel))
            out[(p["stream"], p["part"])] = p["next_offset"]
        return out

    def recent_client_ids(self, hours: int = 24, limit: int = 500_000) -> list[bytes]:
        con = self.reader()
        try:
            rows = con.execute(
                "SELECT event_id FROM events WHERE \"timestamp\" > now() - INTERVAL 8 DAY "
                "AND received_at > now() - to_hours(?) ORDER BY received_at DESC LIMIT ?", [hours, limit]
            ).fetchall()
        finally:
            con.close()
        return [r[0].bytes for r in rows]

    def recent_sessions(self, minutes: int = 30, limit: int = 500_000) -> list[tuple[int, int, int]]:
        """At most `limit` visitors, the latest seen (collector/sinks/duckdb.py says why)."""
        con = self.reader()
        try:
            return con.execute(
                "SELECT visitor_id, arg_max(session_id, timestamp), epoch_us(max(timestamp)) AS last FROM events "
                "WHERE timestamp > now() - to_minutes(?) AND visitor_id IS NOT NULL GROUP BY visitor_id "
                "ORDER BY last DESC LIMIT ?",
                [minutes, limit],
            ).fetchall()
        finally:
            con.close()

    def close(self) -> None:
        self.lake_reader.close()


class LakeSaltStore:
    """Salts as small objects, `_salts/<YYYY-MM-DD>.bin`; rotation deletes the old ones.

    `create` keeps an existing salt (check, then put): two processes starting
    the same second may both put, and `create` reads back what was stored, so
    they converge on the last one written.
    """

    PREFIX = "_salts"

    def __init__(self, lake: Lake):
        self.lake = lake

    def load(self) -> dict[dt.date, bytes]:
        out = {}
        for rel in self.lake.list(self.PREFIX):
            try:
                out[dt.date.fromisoformat(rel.rsplit("/", 1)[1].removesuffix(".bin"))] = self.lake.get(rel)
            except (ValueError, FileNotFoundError):
                continue
        return out

    def create(self, day: dt.date, salt: bytes) -> bytes:
        rel = f"{self.PREFIX}/{day}.bin"
        if not self.lake.exists(rel):
            self.lake.put(rel, salt)
        return self.lake.get(rel)

    def delete_before(self, day: dt.date) -> int:
        deleted = 0
        for d in self.load():
            if d < day:
                self.lake.delete(f"{self.PREFIX}/{d}.bin")
                deleted += 1
        return deleted
