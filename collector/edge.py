"""The edge: where sources hand over hits. Runs the edge chain, counts drops, publishes to the bus.

`accept` returns once the bus says the kept events are durable, so a source
can answer 2xx; it raises BusUnavailable / StoreFailed when that cannot be
promised, and the source answers 503.
"""

from __future__ import annotations

import datetime as dt

from collector import metrics
from collector.bus import Envelope
from collector.events import Hit
from collector.pipeline import Chain, Outcome


def _day(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1_000_000, dt.UTC).date().isoformat()


class Edge:
    def __init__(self, chain: Chain, bus):
        self.chain = chain
        self.bus = bus
        self._accepted: dict = {}  # via -> bound counter

    async def accept(self, hits: list[Hit]) -> Outcome:
        outcome = self.chain.run(hits)
        drops: dict[tuple[str, str, str], int] = {}
        for hit, reason in outcome.dropped:
            key = (hit.site, _day(hit.timestamp), reason)
            drops[key] = drops.get(key, 0) + 1
            metrics.dropped_total.labels(reason).inc()
        await self.bus.publish(Envelope(events=outcome.kept, drops=drops))
        if outcome.kept:
            via = outcome.kept[0].via
            counter = self._accepted.get(via)
            if counter is None:
                counter = self._accepted[via] = metrics.accepted_total.labels(via)
            counter.inc(len(outcome.kept))
        return outcome
