"""The consumer: takes deliveries off the bus, runs the stateful steps, stores, then acks.

Events whose client-supplied `event_id` was already stored are dropped as
`duplicate` (ids of the last day are remembered, and reloaded from the store
at start). Ids are remembered only after the commit succeeded, so a failed
commit never turns a retry into a "duplicate".

A sink whose write is one append (the spool: `appends_only`) is called on the
event loop itself while its writes are quick, as Redis does its `appendfsync
always` writes: handing a quick write to the store thread costs more (two GIL
hand-offs a commit, each waiting for the busy loop to let go) than the write.
But the loop does nothing else while it waits for the disk, and under load a
write's flush waits for the device's other traffic (DuckDB's loads and
checkpoints on the same disk): here a 6 KB O_DSYNC write took 0.05 ms alone and
0.68 ms on average under flat-out single events. A write that takes longer
than `SLOW_APPEND_SECONDS` sends the following ones to the store thread, where
the loop goes on taking requests meanwhile, until one is quick again (each is
timed where it runs, so a hand-off's wait for the GIL does not count).
"""

from __future__ import annotations

import asyncio
import logging
import operator
import time
from concurrent.futures import ThreadPoolExecutor

from collector import metrics
from collector.bus import StoreFailed
from collector.events import stored_rows, to_arrow, utc_day
from collector.pipeline import Chain

log = logging.getLogger("strana.worker")
_timestamp = operator.attrgetter("timestamp")
BACKLOG_POLL_SECONDS = 0.005  # how often a worker waiting for the spool's loader looks again
# Above this, the store thread's overlap is worth its hand-offs. Single events here (wrk -c64, bench/ingest.py's
# script, 15 s), in alternating runs: 12.1-14.1k req/s at 2 ms (most writes stayed on the loop), 13.4-14.9k with
# every write on the store thread, 12.3-14.7k at 0.25 ms, which keeps an idle disk's writes (~0.05-0.1 ms) on the loop.
SLOW_APPEND_SECONDS = 0.00025


class RecentIds:
    """A bounded set of recently stored client event ids (insertion-ordered, oldest evicted first)."""

    def __init__(self, limit: int = 1_000_000):
        self.limit = limit
        self.ids: dict[bytes, None] = {}

    def __contains__(self, event_id: bytes) -> bool:
        return event_id in self.ids

    def add_all(self, ids) -> None:
        for event_id in ids:
            self.ids[event_id] = None
        if len(self.ids) > self.limit:
            oldest = iter(self.ids)
            for old in [next(oldest) for _ in range(len(self.ids) - self.limit)]:
                del self.ids[old]


class Worker:
    def __init__(self, bus, chain: Chain, sink):
        self.bus = bus
        self.chain = chain
        self.sink = sink
        self.recent = RecentIds()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="strana-sink")
        self.stored = 0
        self.appends = getattr(sink, "appends_only", False)  # see the module docstring
        self.append_on_loop = self.appends

    def warm_up(self) -> None:
        """Reload what survives a restart: recent client ids and active sessions."""
        self.recent.add_all(reversed(self.sink.recent_client_ids()))
        for _, step in self.chain.steps:
            if hasattr(step, "seed"):
                step.seed(self.sink.recent_sessions(limit=step.max_visitors))

    async def run(self) -> None:
        async for delivery in self.bus.deliveries():
            try:
                await self._sink_caught_up()
                await self.store(delivery)
            except Exception as exc:  # never let the worker die: fail the delivery, keep consuming
                log.exception("unexpected error while storing")
                self._failed(delivery, exc)

    async def _sink_caught_up(self) -> None:
        """Wait while the spool's loader is more than a load behind. It runs below ingest's CPU priority
        (collector/cpu_priority.py), so flat-out ingest could outrun it and the rows waiting for it, in memory,
        would grow without end; waiting here lets the bus fill instead, and a full bus answers 503."""
        backlog = getattr(self.sink, "backlog_rows", None)
        if backlog is None or backlog() <= self.sink.max_load_rows:
            return
        metrics.sink_backlog_waits_total.inc()
        while backlog() > self.sink.max_load_rows // 2:
            await asyncio.sleep(BACKLOG_POLL_SECONDS)

    async def store(self, delivery) -> None:
        """Store a delivery in one transaction; if that fails, each envelope alone, so one bad request
        cannot fail the others that joined its group commit."""
        try:
            await self._commit(delivery.envelopes, delivery.position)
        except Exception as exc:
            if len(delivery.envelopes) == 1 or delivery.position is not None:
                self._failed(delivery, exc)
                return
            log.warning("group commit of %d requests failed (%s); storing them one by one",
                        len(delivery.envelopes), exc)
            for envelope, fut in zip(delivery.envelopes, delivery.futures, strict=True):
                try:
                    await self._commit([envelope], None)
                except Exception as one_exc:
                    if not fut.done():
                        fut.set_exception(StoreFailed(str(one_exc)))
                    metrics.store_failures_total.inc()
                    log.error("store failed for a request of %d events: %s", len(envelope.events), one_exc)
                else:
                    if not fut.done():
                        fut.set_result(None)
            return
        delivery.ack()

    def _failed(self, delivery, exc: BaseException) -> None:
        metrics.store_failures_total.inc()
        log.error("store failed: %s", exc)
        delivery.fail(StoreFailed(str(exc)))

    async def _commit(self, envelopes, position) -> None:
        events, drops, fresh, quarantine, replayed = [], {}, [], [], []
        seen_now: set[bytes] = set()
        for envelope in envelopes:
            quarantine.extend(envelope.quarantine)
            replayed.extend(envelope.replayed)
            for key, n in envelope.drops.items():
                drops[key] = drops.get(key, 0) + n
            for hit in envelope.events:
                if hit.client_event_id:
                    if hit.event_id in self.recent or hit.event_id in seen_now:
                        day = utc_day(hit.timestamp)
                        drops[(hit.site, day, "duplicate")] = drops.get((hit.site, day, "duplicate"), 0) + 1
                        metrics.dropped_total.labels("duplicate").inc()
                        continue
                    seen_now.add(hit.event_id)
                    fresh.append(hit.event_id)
                events.append(hit)
        events.sort(key=_timestamp)
        kept = self.chain.run(events).kept
        batch = None
        if kept:  # a sink that logs rows (the spool) makes one Arrow batch per load instead of one per group
            batch = stored_rows(kept) if getattr(self.sink, "accepts_rows", False) else to_arrow(kept)
        appending = self.appends and position is None  # with a bus position, the spool writes to DuckDB
        started = time.perf_counter()
        args = (batch, drops, position, quarantine, replayed)
        if appending and self.append_on_loop:
            wrote = self._timed_write(*args)
        else:
            wrote = await asyncio.get_running_loop().run_in_executor(self.executor, self._timed_write, *args)
        if appending:
            self.append_on_loop = wrote < SLOW_APPEND_SECONDS
        metrics.commit_seconds.observe(time.perf_counter() - started)
        metrics.commit_rows.observe(len(kept))
        metrics.stored_total.inc(len(kept))
        self.stored += len(kept)
        self.recent.add_all(fresh)

    def _timed_write(self, *args) -> float:
        started = time.perf_counter()
        self.sink.write(*args)
        return time.perf_counter() - started

    def close(self) -> None:
        self.executor.shutdown(wait=True)
