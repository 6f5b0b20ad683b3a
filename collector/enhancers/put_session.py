"""Sessions: one id per visitor until 30 minutes pass without an event, plus the visit's rollups.

Judged by each event's own timestamp (batches may carry past ones), from a
bounded in-memory table of active visitors. Runs in the consumer: the bus is
keyed by site + visitor, so one consumer sees all of a visitor, and the worker
hands it each delivery's events in timestamp order.

Besides `session_id` it stamps each event with its visit's rollups in
per-event form, so the stats API answers visit metrics without grouping by
session_id (reports/query/fast.py, reports/METRICS.md "Fast paths"):
`visit_seq` (1 = the visit's first event), `interaction_seq` (nth interactive
non-engagement event: a visit bounces unless it has a 2nd) and
`duration_delta` (µs by which this event moved the visit's first or last
timestamp; summed over a visit's events: its duration).
"""

from __future__ import annotations

import os
import random
import struct

from collector.events import Hit

TIMEOUT_US = 30 * 60 * 1_000_000
_MAX_SEQ = 2**32 - 1
# A visit's state is packed into bytes, not kept as a tuple of ints: bytes are not tracked by Python's cyclic
# GC, so the table (500,000 visits when full) drops out of its collections, where each fresh tuple put the
# dict back in. bench/soak_max.py at 96MB: with tuples the single-event p99 doubled as the table filled
# (120 -> 191 -> 235 ms, minutes 1-3); packed it stays 112 -> 139 -> 124 -> 124 ms, with ~0.8 M fewer
# Python blocks at the cap.
_STATE = struct.Struct("<QqqQQ")  # session id, first ts, last ts, events so far, interactions so far
_pack, _unpack = _STATE.pack, _STATE.unpack


_random = random.Random(os.urandom(32))  # unique, not secret; no syscall per visit (see sources/plausible.py)


def new_session_id(ts_us: int) -> int:
    """Time-ordered: the visit's start in ms (42 bits, to 2109), then 22 random bits. The events stored
    together belong to visits that started close together, so DuckDB bit-packs the column (~5 instead of
    8 bytes per event). Two visits of one site share an id only if they start in the same millisecond
    and draw the same 22 bits (1 in 4 M)."""
    return (max(0, ts_us // 1000) & (2**42 - 1)) << 22 | _random.getrandbits(22)


class PutSession:
    def __init__(self, timeout_us: int = TIMEOUT_US, max_visitors: int = 500_000):
        self.timeout = timeout_us
        self.max_visitors = max_visitors
        # visitor -> _STATE packed (session id, first ts, last ts, events so far, interactions so far)
        self.active: dict[int, bytes] = {}

    def seed(self, rows) -> None:
        """Restore active visits after a restart: (visitor_id, session_id, last ts µs) or
        (visitor_id, session_id, first ts µs, last ts µs, events, interactions).

        The table's bound holds here too: the latest `max_visitors` visits are kept, inserted oldest first so
        that dict order is least-recently-seen order, as `many` leaves it."""
        full = []
        for row in rows:
            if len(row) == 3:
                visitor, session, last = row
                row = (visitor, session, last, last, 1, 1)
            if None not in row[:4]:
                full.append(row)
        full.sort(key=lambda row: row[3])
        for visitor, session, first, last, n, k in full[-self.max_visitors:]:
            self.active.pop(visitor, None)
            self.active[visitor] = _pack(session, first, last, n or 1, k or 0)

    def many(self, hits: list[Hit]) -> tuple:
        """The batch form (collector/pipeline.py): `__call__` on each hit in order, as one loop with the table
        and the helpers in locals (hits of one visitor in one batch must see each other, so no reordering)."""
        active = self.active
        timeout = self.timeout
        max_visitors = self.max_visitors
        fresh, pack, unpack = new_session_id, _pack, _unpack
        for hit in hits:
            if hit.visit_seq is not None:
                continue
            visitor = hit.visitor_id
            if visitor is None:
                hit.session_id = None
                continue
            state = active.get(visitor)
            if state is None and hit.prev_visitor_id is not None:
                state = active.get(hit.prev_visitor_id)
                if state is not None:
                    visitor = hit.visitor_id = hit.prev_visitor_id
            ts = hit.timestamp
            counted = hit.interactive and hit.name != "engagement"
            if state is not None:
                state = unpack(state)
            # min/max spelled as conditionals: the same ints, without a builtin call each
            if state is not None and state[1] - timeout <= ts <= state[2] + timeout:
                session, first, last, n, k = state
                delta = 0
                if ts > last:
                    delta, last = ts - last, ts
                if ts < first:
                    delta, first = delta + first - ts, ts
                hit.duration_delta = delta
                n += 1
                k += counted
                del active[visitor]
            else:
                if state is not None:
                    del active[visitor]
                hit.duration_delta = 0
                session, first, last, n, k = fresh(ts), ts, ts, 1, int(counted)
            active[visitor] = pack(session, first, last, n, k)
            hit.session_id = session
            hit.visit_seq = n if n < _MAX_SEQ else _MAX_SEQ
            hit.interaction_seq = (k if k < _MAX_SEQ else _MAX_SEQ) if counted else None
            if len(active) > max_visitors:
                oldest = iter(active)
                for old in [next(oldest) for _ in range(max(1, max_visitors // 10))]:
                    del active[old]
        return ()

    def __call__(self, hit: Hit) -> str | None:
        if hit.visit_seq is not None:  # already sessionized (a failed group commit stored one by one)
            return None
        visitor = hit.visitor_id
        if visitor is None:
            hit.session_id = None
            return None
        active = self.active
        state = active.get(visitor)
        if state is None and hit.prev_visitor_id is not None:
            state = active.get(hit.prev_visitor_id)
            if state is not None:  # the visit began before midnight: keep its visitor id
                visitor = hit.visitor_id = hit.prev_visitor_id
        ts = hit.timestamp
        counted = hit.interactive and hit.name != "engagement"
        if state is not None:
            state = _unpack(state)
        if state is not None and state[1] - self.timeout <= ts <= state[2] + self.timeout:
            session, first, last, n, k = state
            hit.duration_delta = max(0, ts - last) + max(0, first - ts)
            state = (session, min(first, ts), max(last, ts), n + 1, k + counted)
            del active[visitor]  # re-insert: dict order doubles as least-recently-seen order
        else:
            if state is not None:
                del active[visitor]
            hit.duration_delta = 0
            state = (new_session_id(ts), ts, ts, 1, int(counted))
        active[visitor] = _pack(*state)
        hit.session_id = state[0]
        hit.visit_seq = min(state[3], _MAX_SEQ)
        hit.interaction_seq = min(state[4], _MAX_SEQ) if counted else None
        if len(active) > self.max_visitors:
            oldest = iter(active)
            for old in [next(oldest) for _ in range(max(1, self.max_visitors // 10))]:
                del active[old]
        return None
