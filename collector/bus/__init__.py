"""The bus between the edge (HTTP + edge enhancers) and the store.

Every backend has the same small shape, like Litestar's channels backends:

- `publish(envelope)` returns once the envelope is durable by the backend's
  own standard (memory: committed by the in-process worker; Kafka: acks=all;
  JetStream: publish ack). It raises `BusUnavailable` when the backend
  cannot take more (ingest answers 503) and `StoreFailed` when the worker
  could not store it.
- `deliveries()` yields `Delivery` batches to the worker; the worker stores
  them and then calls `ack()` (or `fail(exc)`).

Envelopes carry only anonymous events (stored fields, never the IP or the
user agent), drop counts per (site, day, reason), quarantined items
(collector/quarantine.py) and the ids of quarantined items a replay stored,
so all of them commit in one transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from collector.events import Hit


class BusUnavailable(Exception):
    """The bus cannot take the event right now; the client should retry later."""


class StoreFailed(Exception):
    """The worker could not store the batch this event was in; nothing of it was stored."""


class BusError(Exception):
    """The bus cannot be used as configured (broker unreachable, topic mismatch); the message names the setting."""


def parse_partitions(text: str, partitions: int) -> list[int] | None:
    """`[worker] partitions` ("0-3", "0,2,5", "" for all/group) as a sorted list, checked against the count."""
    text = str(text).strip()
    if not text:
        return None
    owned: set[int] = set()
    for piece in text.split(","):
        lo, _, hi = piece.strip().partition("-")
        try:
            owned.update(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            raise BusError(f"[worker] partitions: {piece.strip()!r} is not a number or a range like 0-3") from None
    if not owned or min(owned) < 0 or max(owned) >= partitions:
        raise BusError(f"[worker] partitions: {text!r} is outside 0-{partitions - 1} ([bus] partitions = {partitions})")
    return sorted(owned)


@dataclass
class Envelope:
    events: list[Hit] = field(default_factory=list)
    drops: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (site, day, reason) -> n
    quarantine: list = field(default_factory=list)  # quarantine.Item
    replayed: list[bytes] = field(default_factory=list)  # quarantine ids this envelope's events replay


class Delivery(Protocol):
    envelopes: list[Envelope]
    position: dict | None  # bus position to store with the rows (None for memory)

    def ack(self) -> None: ...
    def fail(self, exc: BaseException) -> None: ...


class Bus(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def publish(self, envelope: Envelope) -> None: ...
    def deliveries(self) -> AsyncIterator[Delivery]: ...
    def pending(self) -> int: ...
