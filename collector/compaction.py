"""Compaction: merge a finished day's small Parquet files into one, without a reader ever noticing.

The sink writes one file per group commit and partition, so a busy day holds
thousands of small files; queries are faster over few large ones. Once a UTC
day is over, a run merges each partition's live files in three steps, each of
which leaves the lake consistent (see collector/sinks/lake_reader.py for the
reading rule):

1. write a manifest `_manifests/<kind>/site=/date=/<id>.json` naming the
   output `c-<id>.parquet` and the inputs. Readers ignore a manifest whose
   output does not exist, so nothing changes yet;
2. write the output (atomically). From now on readers take the output and
   ignore the inputs;
3. a later run, once `grace` seconds have passed (longer than any query),
   deletes the inputs. The manifest stays until retention removes the
   partition, so a late re-write of an input name stays ignored.

A crash between any two steps is finished by the next run: a manifest whose
output never appeared is deleted after the grace period (it may belong to a
run still in progress until then, so its partition is skipped meanwhile) and
the merge is redone; inputs still present after the grace are deleted. Runs
are idempotent. Compaction assumes one compacting process per lake (the jobs
run in the server that owns the sink).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.dataset as ds

from collector.events import SCHEMA
from collector.sinks.lake import DROPS_SCHEMA, Lake, partition_dir, uuid7
from collector.sinks.lake_reader import Partition, scan
from collector.sinks.parquet import parquet_bytes

log = logging.getLogger("strana.compaction")


@dataclass
class CompactionRun:
    merged_partitions: int = 0
    merged_files: int = 0
    deleted_inputs: int = 0
    aborted_manifests: int = 0
    busy_partitions: int = 0


def compact(lake: Lake, today: dt.date, grace: float = 600.0, now: float | None = None,
            step: Callable[[str], None] | None = None) -> CompactionRun:
    """Merge every partition of a day before `today` that has two or more live files; delete inputs merged
    more than `grace` seconds ago. `step(name)` is called between steps (tests inject crashes there)."""
    now = time.time() if now is None else now
    step = step or (lambda name: None)
    run = CompactionRun()
    for part in scan(lake).values():
        if part.day >= today:
            continue
        if not _finish(lake, part, now, grace, run, step):
            run.busy_partitions += 1
            continue
        live = part.live()
        if len(live) >= 2:
            _merge(lake, part, live, now, step)
            run.merged_partitions += 1
            run.merged_files += len(live)
    if run.merged_partitions or run.deleted_inputs or run.aborted_manifests:
        log.info("compaction: %s", run)
    return run


def _finish(lake: Lake, part: Partition, now: float, grace: float, run: CompactionRun, step) -> bool:
    """Finish earlier runs on this partition; False if one may still be in progress."""
    present, merged = part.names(), part.merged()
    busy = False
    for rel, manifest in list(part.manifests.items()):
        old = now - manifest["created"] >= grace
        if manifest["output"] in present or manifest["output"] in merged:
            if old:
                for name in manifest["inputs"]:
                    if name in present:
                        lake.delete(f"{part.dir}/{name}")
                        present.discard(name)
                        run.deleted_inputs += 1
                        step("input_deleted")
        elif old:  # its output never appeared: that run crashed before step 2
            lake.delete(rel)
            del part.manifests[rel]
            run.aborted_manifests += 1
        else:
            busy = True
    part.files = [f for f in part.files if f.rsplit("/", 1)[1] in present]
    return not busy


def _merge(lake: Lake, part: Partition, live: list[str], now: float, step) -> None:
    ident = uuid7()
    where = partition_dir(part.kind, part.site, part.day)
    output = f"c-{ident}.parquet"
    manifest = {"output": output, "inputs": sorted(rel.rsplit("/", 1)[1] for rel in live), "created": now,
                "kind": part.kind, "site": part.site, "date": part.day.isoformat()}
    lake.put(f"_manifests/{where}/{ident}.json", json.dumps(manifest).encode())
    step("manifest_written")
    schema = SCHEMA if part.kind == "events" else DROPS_SCHEMA
    table = ds.dataset([lake.full(rel) for rel in live], schema=schema, format="parquet",
                       filesystem=lake.fs).to_table()
    if part.kind == "events":
        table = table.sort_by([("timestamp", "ascending")])
    else:  # drop counts add up: one row per reason
        sums = table.group_by(["site", "day", "reason"]).aggregate([("n", "sum")])
        table = pa.table([sums["site"], sums["day"], sums["reason"], sums["n_sum"]], schema=DROPS_SCHEMA)
    lake.put(f"{where}/{output}", parquet_bytes(table))
    step("output_written")
