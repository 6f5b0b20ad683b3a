"""Sessions: one id per visitor until 30 minutes pass without an event.

Judged by each event's own timestamp (batches may carry past ones), from a
bounded in-memory table of active visitors, so bounce rate and visit
duration need no window functions at query time. Runs in the consumer: the
bus is keyed by site + visitor, so one consumer sees all of a visitor.
"""

from __future__ import annotations

import secrets

from collector.events import Hit

TIMEOUT_US = 30 * 60 * 1_000_000


class PutSession:
    def __init__(self, timeout_us: int = TIMEOUT_US, max_visitors: int = 500_000):
        self.timeout = timeout_us
        self.max_visitors = max_visitors
        self.active: dict[int, tuple[int, int, int]] = {}  # visitor -> (session id, first ts, last ts)

    def seed(self, rows) -> None:
        """Restore active visits after a restart: (visitor_id, session_id, last ts µs)."""
        for visitor, session, last in rows:
            if visitor is not None and session is not None:
                self.active[visitor] = (session, last, last)

    def __call__(self, hit: Hit) -> str | None:
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
        if state is not None and state[1] - self.timeout <= ts <= state[2] + self.timeout:
            session, first, last = state
            state = (session, min(first, ts), max(last, ts))
            del active[visitor]  # re-insert: dict order doubles as least-recently-seen order
        else:
            if state is not None:
                del active[visitor]
            state = (secrets.randbits(63), ts, ts)
        active[visitor] = state
        hit.session_id = state[0]
        if len(active) > self.max_visitors:
            oldest = iter(active)
            for old in [next(oldest) for _ in range(max(1, self.max_visitors // 10))]:
                del active[old]
        return None
