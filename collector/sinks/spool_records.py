"""The spool's records on disk: what one group commit hands the sink, how a record is framed (length, CRC32,
msgpack payload) and read back, and how the loader merges many into one load. Kept apart from
collector/sinks/spool.py, which owns the segment files, the writer and the loader thread."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pyarrow as pa

from collector.events import SCHEMA, Rows, rows_to_arrow
from collector.quarantine import Item as QuarantineItem

HEADER = struct.Struct("<II")  # payload length, crc32; a length of 0 (zeros) is the end of the records


@dataclass
class Record:
    """What one group commit hands the sink; all of it is stored in one transaction."""

    events: pa.RecordBatch | pa.Table | Rows | None
    drops: dict
    quarantine: list = field(default_factory=list)
    replayed: list = field(default_factory=list)

    @property
    def rows(self) -> int:
        if self.events is None:
            return 0
        return len(self.events) if isinstance(self.events, Rows) else self.events.num_rows


# A record on disk is a msgpack array [arrow_ipc, drops, quarantine, replayed] (spools written before rows were
# kept: still replayed) or [None, drops, quarantine, replayed, rows], the events as arrays of their stored
# fields: ~30x cheaper to log than an Arrow batch for the few dozen events of a tracker-path group commit.
def encode(record: Record) -> bytes:
    events = record.events
    drops = [[s, d, r, n] for (s, d, r), n in record.drops.items()]
    if isinstance(events, Rows):
        payload = msgspec.msgpack.encode([None, drops, record.quarantine, record.replayed, events])
    else:
        ipc = events.serialize().to_pybytes() if events is not None and events.num_rows else None
        payload = msgspec.msgpack.encode([ipc, drops, record.quarantine, record.replayed])
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def decode(payload: bytes) -> Record:
    ipc, drops, quarantine, replayed, *rest = msgspec.msgpack.decode(payload)
    if rest:
        events = Rows(rest[0]) if rest[0] else None
    else:
        events = pa.ipc.read_record_batch(pa.py_buffer(ipc), SCHEMA) if ipc else None
    return Record(events, {(s, d, r): n for s, d, r, n in drops},
                  msgspec.convert(quarantine, list[QuarantineItem]), replayed)


def as_arrow(events):
    """Rows become one Arrow batch (sinks take Arrow); a batch or None passes through."""
    return rows_to_arrow(events) if isinstance(events, Rows) else events


def read_records(path: Path, start: int = 0):
    """Yield (record, end offset) from `start`; stops at the first torn or corrupt record."""
    with open(path, "rb") as f:
        f.seek(start)
        offset = start
        while True:
            head = f.read(HEADER.size)
            if len(head) < HEADER.size:
                return
            length, crc = HEADER.unpack(head)
            if length == 0:  # the zero-filled rest of a segment
                return
            payload = f.read(length)
            if len(payload) < length or zlib.crc32(payload) != crc:
                return
            offset += HEADER.size + length
            yield decode(payload), offset


def merge(records: list[Record]) -> Record:
    """Records as one: their events in one Arrow batch (one conversion, not one per group commit), their drop
    counts summed, their quarantine and replay lists joined."""
    merged = Record(None, {})
    batches, tuples = [], Rows()
    for record in records:
        if isinstance(record.events, Rows):
            tuples.extend(record.events)
        elif record.events is not None:
            batches.append(record.events)
        for key, n in record.drops.items():
            merged.drops[key] = merged.drops.get(key, 0) + n
        merged.quarantine.extend(record.quarantine)
        merged.replayed.extend(record.replayed)
    if tuples:
        batches.append(rows_to_arrow(tuples))
    if batches:
        merged.events = batches[0] if len(batches) == 1 else pa.Table.from_batches(batches, SCHEMA).combine_chunks()
    return merged


def zeros_at(path: Path, offset: int) -> bool:
    """Whether a segment's records end cleanly at `offset`: nothing after it, or the zeros of a spare."""
    with open(path, "rb") as f:
        f.seek(offset)
        return not f.read(HEADER.size).strip(b"\0")
