"""Replay: quarantined items back through the pipeline, after the schema or the mapping was fixed.

A way in like the others, whose input is the quarantine table instead of a
request. Each item is checked again exactly as when it arrived:

- a `schema` item (from /api/event or /api/v1/batch) is the event as the edge
  made it (its `context`: visitor id, country, device... derived before the
  IP and user agent were dropped) with its props checked again from the body
  as sent; it is published as is, without the edge chain, which already ran;
- a hook item (`mapping` or `schema`) goes through the hook's current mapping
  and the schemas again, then through the edge chain like a fresh delivery.
  Its visitor id is the mapped user key hashed with today's salt: the salt of
  the day it arrived may be gone, by design.

Exactly once: every event keeps the id it had (the item's id, or the id the
mapping derives from the delivery id), ids already in the events table are
skipped, and the item's `replayed_at` is set in the same transaction as its
events. Replaying twice, or again after a crash midway, stores nothing twice.
An item that still does not fit stays in quarantine, with why.
"""

from __future__ import annotations

import uuid

import msgspec

from collector.quarantine import Item, hit_from_context, stored_ids
from collector.sources.webhooks import Unfit, events_for


class Replayer:
    def __init__(self, edge, hooks: dict, schemas, limits, connect):
        self.edge = edge
        self.hooks = hooks
        self.schemas = schemas
        self.limits = limits
        self.connect = connect  # () -> a DuckDB connection to read the events table

    async def one(self, item: Item) -> dict:
        """Replay one item: {"id", "result": stored | already stored | still failing, "events", "detail"}."""
        out = {"id": str(uuid.UUID(bytes=item.id)), "events": 0, "detail": None}
        try:
            hits, chained = self._rebuild(item)
        except Unfit as exc:
            return {**out, "result": "still failing", "detail": str(exc)}
        con = self.connect()
        try:
            done = stored_ids(con, [h.event_id for h in hits])
        finally:
            con.close()
        fresh = [h for h in hits if h.event_id not in done]
        if not fresh:
            await self.edge.store(replayed=[item.id])
            return {**out, "result": "already stored"}
        if chained:
            outcome = await self.edge.accept(fresh, replayed=[item.id])
            stored = len(outcome.kept)
        else:
            await self.edge.store(fresh, replayed=[item.id])
            stored = len(fresh)
        return {**out, "result": "stored", "events": stored}

    def _rebuild(self, item: Item) -> tuple[list, bool]:
        """(the item's events, whether they still need the edge chain)."""
        payload = msgspec.json.decode(item.payload)
        if item.source.startswith("hook:"):
            hook = self.hooks.get(item.source[5:])
            if hook is None:
                raise Unfit(item.reason, "hook", f"no webhook named {item.source[5:]!r} is configured any more")
            context = msgspec.json.decode(item.context or "{}")
            headers = {k.encode(): v for k, v in (context.get("headers") or {}).items()}
            hits = events_for(hook, payload, headers, context.get("delivery") or "", item.received_at,
                              self.limits, self.schemas)
            if hits is None:
                raise Unfit(item.reason, "map", "no rule of the hook's mapping matches this delivery any more")
            return hits, True
        hit = hit_from_context(item)
        raw = next((payload[k] for k in ("p", "props", "m", "meta") if payload.get(k) is not None), None)
        problem = self.schemas.check(hit.site, hit.name, raw) if self.schemas else None
        if problem:
            raise Unfit("schema", "props", problem)
        return [hit], False
