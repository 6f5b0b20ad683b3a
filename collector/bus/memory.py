"""The in-process bus of the embedded default.

`publish` queues the envelope with a future and waits for it; the worker in
the same process takes whatever is waiting as one group commit and resolves
all its futures after the store committed. So a request waits for the commit
it joined, never for one of its own, and a 2xx means the rows are on disk.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from collector.bus import BusUnavailable, Envelope


@dataclass
class MemoryDelivery:
    envelopes: list[Envelope]
    futures: list[asyncio.Future]
    position: dict | None = None

    def ack(self) -> None:
        for fut in self.futures:
            if not fut.done():
                fut.set_result(None)

    def fail(self, exc: BaseException) -> None:
        for fut in self.futures:
            if not fut.done():
                fut.set_exception(exc)


class MemoryBus:
    def __init__(self, commit_rows: int = 2000, commit_interval_ms: int = 20, max_pending: int = 50000):
        self.commit_rows = commit_rows
        self.interval = commit_interval_ms / 1000
        self.max_pending = max_pending
        self._items: list[tuple[Envelope, asyncio.Future]] = []
        self._rows = 0
        self._wakeup: asyncio.Event | None = None
        self._closed = False

    async def start(self) -> None:
        self._wakeup = asyncio.Event()

    async def stop(self) -> None:
        """Stop taking new envelopes; `deliveries()` ends once what is queued is handed out."""
        self._closed = True
        if self._wakeup:
            self._wakeup.set()

    def pending(self) -> int:
        return self._rows

    async def publish(self, envelope: Envelope) -> None:
        if self._closed:
            raise BusUnavailable("shutting down")
        if self._rows >= self.max_pending:
            raise BusUnavailable("too many events waiting for the store")
        fut = asyncio.get_running_loop().create_future()
        self._items.append((envelope, fut))
        self._rows += len(envelope.events) + 1
        if len(self._items) == 1 or self._rows >= self.commit_rows:
            self._wakeup.set()  # the first waiting event starts the commit interval; a full group ends it
        await fut

    async def deliveries(self) -> AsyncIterator[MemoryDelivery]:
        while True:
            if not self._items:
                if self._closed:
                    return
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), timeout=1.0)
                except TimeoutError:
                    pass
                continue
            if self.interval > 0 and self._rows < self.commit_rows and not self._closed:
                # Let a group gather: wait out the interval unless it fills first.
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), timeout=self.interval)
                except TimeoutError:
                    pass
            items, self._items = self._items, []
            self._rows = 0
            yield MemoryDelivery([e for e, _ in items], [f for _, f in items])
