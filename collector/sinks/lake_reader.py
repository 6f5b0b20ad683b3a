"""Reads the event lake: DuckDB connections whose `events` and `drops` are the lake's live files.

Reports query two relations, `events` and `drops`, and do not care where they
live. Here they are PyArrow datasets registered in an in-memory DuckDB (duckdb
2.0.0 cannot load httpfs offline, and PyArrow reads both folders and S3). Each
file carries its partition as an expression (site, and the day as a range of
`timestamp`), so DuckDB's filters on `site` and `timestamp` skip whole files
without reading a byte of them.

Which files are live (the rule compaction relies on, see collector/compaction.py):

1. list the data files under `events/` and `drops/`, THEN list `_manifests/`;
2. a manifest names an `output` and its `inputs`; if the output was listed,
   the inputs are ignored (their rows are in the output);
3. partitions older than the retention policy are left out, so a reader
   never opens a file that retention is about to delete.

A manifest is written before its output and deleted only with its partition,
so any listing that shows an output is followed by one that shows its
manifest: a reader never counts a row twice. Inputs are deleted only a grace
period after their output appeared, longer than any query runs: a reader never
opens a deleted file.

The listing is cached and rebuilt when the sink in this process wrote
(`invalidate()`), or after `ttl` seconds for writers in other processes.

A data file whose Parquet footer cannot be read (truncated by a copy, damaged
on disk, not Parquet at all) is left out of every report with a warning that
names it, once per process: one bad file must not make every report a 500.
Each file is checked once, when it first shows up in a listing (files are
immutable, so the answer holds).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from collector.events import SCHEMA
from collector.sinks.lake import DROPS_SCHEMA, KINDS, Lake, parse_partition, partition_dir

TS = pa.timestamp("us", tz="UTC")
log = logging.getLogger("strana.lake")


class Partition:
    """One site's day of one kind: its data files, and the manifests that say which of them are merged."""

    def __init__(self, kind: str, site: str, day: dt.date):
        self.kind, self.site, self.day = kind, site, day
        self.files: list[str] = []  # relative paths of data files
        self.manifests: dict[str, dict] = {}  # relative path -> manifest

    @property
    def dir(self) -> str:
        return partition_dir(self.kind, self.site, self.day)

    def names(self) -> set[str]:
        return {f.rsplit("/", 1)[1] for f in self.files}

    def merged(self) -> set[str]:
        """Names of files whose rows are in an output that exists, directly or through a later merge of that
        output (manifests are kept, so a merged output that was itself merged and deleted still counts)."""
        present, covered = self.names(), set()
        changed = True
        while changed:
            changed = False
            for m in self.manifests.values():
                if (m["output"] in present or m["output"] in covered) and not covered.issuperset(m["inputs"]):
                    covered.update(m["inputs"])
                    changed = True
        return covered

    def live(self) -> list[str]:
        merged = self.merged()
        return [f for f in self.files if f.rsplit("/", 1)[1] not in merged]

    def expression(self) -> pc.Expression:
        if self.kind == "drops":
            return (pc.field("site") == self.site) & (pc.field("day") == pa.scalar(self.day, pa.date32()))
        start = dt.datetime(self.day.year, self.day.month, self.day.day, tzinfo=dt.UTC)
        return ((pc.field("site") == self.site) & (pc.field("timestamp") >= pa.scalar(start, TS))
                & (pc.field("timestamp") < pa.scalar(start + dt.timedelta(days=1), TS)))


def scan(lake: Lake, manifest_cache: dict | None = None) -> dict[tuple[str, str, dt.date], Partition]:
    """Every partition in the lake, with its files and manifests (data listed first, manifests after)."""
    cache = {} if manifest_cache is None else manifest_cache
    parts: dict[tuple[str, str, dt.date], Partition] = {}
    for kind in KINDS:
        for rel in lake.list(kind):
            if not rel.endswith(".parquet"):
                continue
            key = parse_partition(rel.rsplit("/", 1)[0])
            if key is not None:
                parts.setdefault(key, Partition(*key)).files.append(rel)
    for rel in lake.list("_manifests"):
        key = parse_partition(rel[len("_manifests/"):].rsplit("/", 1)[0])
        if key is None or not rel.endswith(".json"):
            continue
        if rel not in cache:
            try:
                cache[rel] = json.loads(lake.get(rel))
            except FileNotFoundError:  # retention removed the partition meanwhile
                continue
        parts.setdefault(key, Partition(*key)).manifests[rel] = cache[rel]
    return parts


def build_dataset(lake: Lake, kind: str, partitions: list[Partition], readable=lambda rel: True) -> ds.Dataset:
    schema = SCHEMA if kind == "events" else DROPS_SCHEMA
    paths, exprs = [], []
    for part in partitions:
        for rel in part.live():
            if not readable(rel):
                continue
            paths.append(lake.full(rel))
            exprs.append(part.expression())
    return ds.FileSystemDataset.from_paths(paths, schema=schema, format=ds.ParquetFileFormat(),
                                           filesystem=lake.fs, partitions=exprs)


class LakeReader:
    def __init__(self, lake: Lake, keep: Callable[[str, dt.date], bool] | None = None, ttl: float = 5.0):
        self.lake = lake
        self.keep = keep or (lambda site, day: True)
        self.ttl = ttl
        self.db = duckdb.connect()
        self._lock = threading.Lock()
        self._version = 0
        self._built: tuple[int, float, dict[str, ds.Dataset]] | None = None
        self._manifests: dict[str, dict] = {}
        self._readable: dict[str, bool] = {}  # data file -> its footer reads (checked once; files are immutable)

    def readable(self, rel: str) -> bool:
        ok = self._readable.get(rel)
        if ok is None:
            try:
                with self.lake.fs.open_input_file(self.lake.full(rel)) as f:
                    pq.ParquetFile(f).metadata  # noqa: B018 -- reads and checks the footer
                ok = True
            except FileNotFoundError:  # compaction or retention removed it meanwhile: not a damaged file
                return False
            except (OSError, pa.ArrowException) as exc:
                ok = False
                log.warning("lake: leaving out %s from reports: it is not a readable Parquet file (%s). Restore it "
                            "from a backup, or delete it if its events are lost anyway", rel, exc)
            self._readable[rel] = ok
        return ok

    def invalidate(self) -> None:
        """Something was written: the next connection lists the lake again."""
        self._version += 1

    def datasets(self) -> dict[str, ds.Dataset]:
        with self._lock:
            built = self._built
            if built is None or built[0] != self._version or time.monotonic() - built[1] > self.ttl:
                version = self._version
                parts = [p for p in scan(self.lake, self._manifests).values() if self.keep(p.site, p.day)]
                sets = {kind: build_dataset(self.lake, kind, [p for p in parts if p.kind == kind], self.readable)
                        for kind in KINDS}
                self._built = built = (version, time.monotonic(), sets)
            return built[2]

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection where `events` and `drops` are the lake as it is now."""
        sets = self.datasets()
        con = self.db.cursor()
        con.register("events", sets["events"])
        con.register("drops", sets["drops"])
        return con

    def close(self) -> None:
        self.db.close()
