"""What crosses a networked bus: the anonymous part of a hit, in msgpack, grouped per partition.

Why a module of its own: Kafka and NATS must agree byte for byte on the
message body and on which partition a visitor lands in, and the privacy rule
("the IP and the user agent never leave the edge") is easiest to check in one
place. A message carries only the stored fields (`events.FIELDS`), plus
`prev_visitor_id` (an anonymous hash, for sessions over midnight) and
`client_event_id` (a flag: dedupe on this id) — never `ip`, `user_agent`,
`url`, `raw_referrer`, `params` or `visitor_key`, which are not in the
struct at all.

One request becomes one message per partition it touches; a visitor's
partition is `crc32(site, visitor_id) % partitions`, so one consumer sees all
of a visitor. Drop counts ride on the first message (or alone, keyed by site).
"""

from __future__ import annotations

import zlib
from hashlib import blake2b
from operator import attrgetter

import msgspec

from collector.bus import Envelope
from collector.events import FIELD_NAMES, Hit

WIRE_FIELDS: tuple[str, ...] = (*FIELD_NAMES, "prev_visitor_id", "client_event_id")
_TYPES = {f: t for f, t in zip(Hit.__struct_fields__, msgspec.structs.fields(Hit), strict=True)}
WireHit = msgspec.defstruct(
    "WireHit", [(name, _TYPES[name].type, _TYPES[name].default) for name in WIRE_FIELDS],
    array_like=True, gc=False,
)


class Message(msgspec.Struct, array_like=True, gc=False):
    events: list[WireHit]  # type: ignore[valid-type]
    drops: list[tuple[str, str, str, int]] = []  # (site, day, reason, n)


_wire_values = attrgetter(*WIRE_FIELDS)
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Message)


def partition_of(site: str, visitor_id: int | None, partitions: int) -> int:
    """Stable across processes and Python runs (not `hash()`); anonymous hits spread by site."""
    return zlib.crc32(f"{site}\x00{visitor_id if visitor_id is not None else ''}".encode()) % partitions


def split(envelope: Envelope, partitions: int) -> list[tuple[int, bytes, str | None]]:
    """(partition, body, dedup id) per partition the envelope touches.

    The dedup id is the event id in hex for a single-event message (the
    tracker's path) and a hash of the ids for a group, so a retried request
    with client ids is deduplicated by JetStream either way.
    """
    groups: dict[int, list] = {}
    for hit in envelope.events:
        part = partition_of(hit.site, hit.visitor_id, partitions)
        groups.setdefault(part, []).append(WireHit(*_wire_values(hit)))
    drops = [(site, day, reason, n) for (site, day, reason), n in envelope.drops.items()]
    if not groups:
        if not drops:
            return []
        groups[partition_of(drops[0][0], None, partitions)] = []
    out = []
    for part, events in groups.items():
        body = _encoder.encode(Message(events, drops))
        drops = []
        if len(events) == 1:
            msg_id = events[0].event_id.hex()
        elif events:
            msg_id = blake2b(b"".join(e.event_id for e in events), digest_size=16).hexdigest()
        else:
            msg_id = None
        out.append((part, body, msg_id))
    return out


def decode(body: bytes) -> Envelope:
    """The events come back as `WireHit`s: they have every attribute the consumer chain, the worker and
    `to_arrow` read or set, and skipping a copy into `Hit` makes decoding ~10x cheaper."""
    message = _decoder.decode(body)
    return Envelope(events=message.events, drops={(s, d, r): n for s, d, r, n in message.drops})
