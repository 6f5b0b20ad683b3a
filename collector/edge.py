"""The edge: where sources hand over hits. Runs the edge chain, counts drops, publishes to the bus.

`accept` returns once the bus says the kept events are durable, so a source
can answer 2xx; it raises BusUnavailable / StoreFailed when that cannot be
promised, and the source answers 503.

Hits a source found failing their site's schema come with a `quarantine.Pending`:
they run the chain like any other (a bot's hit is still dropped as a bot),
then go to quarantine with what the chain derived, reported as dropped with
the reason `quarantined`. `store` publishes what needs no chain: replayed
events (already enhanced) and webhook deliveries kept whole in quarantine.
"""

from __future__ import annotations

from collector import metrics
from collector.bus import Envelope
from collector.events import Hit, utc_day
from collector.pipeline import Chain, Outcome

QUARANTINED = "quarantined"  # reported to the client like a drop reason; counted in the quarantine table


class Edge:
    def __init__(self, chain: Chain, bus):
        self.chain = chain
        self.bus = bus
        self._accepted: dict = {}  # via -> bound counter

    async def accept(self, hits: list[Hit], quarantine: dict | None = None, replayed: list[bytes] = ()) -> Outcome:
        """`quarantine`: {id(hit): Pending} for hits that failed a schema; `replayed`: quarantine ids these replay."""
        outcome = self.chain.run(hits)
        drops: dict[tuple[str, str, str], int] = {}
        if outcome.dropped:
            days: dict[int, str] = {}  # a batch's hits mostly share one timestamp: its day is worked out once
            reasons: dict[str, int] = {}
            for hit, reason in outcome.dropped:
                day = days.get(hit.timestamp)
                if day is None:
                    day = days[hit.timestamp] = utc_day(hit.timestamp)
                key = (hit.site, day, reason)
                drops[key] = drops.get(key, 0) + 1
                reasons[reason] = reasons.get(reason, 0) + 1
            for reason, n in reasons.items():  # labels() takes a lock: once per reason, not per hit
                metrics.dropped_total.labels(reason).inc(n)
        items = []
        if quarantine:
            kept = []
            for hit in outcome.kept:
                pending = quarantine.get(id(hit))
                if pending is None:
                    kept.append(hit)
                else:
                    items.append(pending.item(hit))
                    outcome.dropped.append((hit, QUARANTINED))
                    metrics.quarantined_total.labels(pending.source, "schema").inc()
            outcome.kept = kept
        await self.bus.publish(Envelope(events=outcome.kept, drops=drops, quarantine=items, replayed=list(replayed)))
        if outcome.kept:
            via = outcome.kept[0].via
            counter = self._accepted.get(via)
            if counter is None:
                counter = self._accepted[via] = metrics.accepted_total.labels(via)
            counter.inc(len(outcome.kept))
        return outcome

    async def store(self, hits: list[Hit] = (), quarantine: list = (), replayed: list[bytes] = ()) -> None:
        """Publish without the chain: enhanced hits (a replay) and/or quarantine items."""
        for item in quarantine:
            metrics.quarantined_total.labels(item.source, item.reason).inc()
        await self.bus.publish(Envelope(events=list(hits), quarantine=list(quarantine), replayed=list(replayed)))
