"""Quarantine: events that arrived but did not fit, kept with the reason instead of being lost.

Two reasons, a closed list like the drop reasons:

- `schema`: an event's props failed its site's JSON Schema (collector/schemas.py);
- `mapping`: a webhook delivery the hook's mapping could not turn into events.

An item is written in the same group commit as the events of its request
(it rides the bus in the envelope), so a 2xx or a 422 that says "quarantined"
means it is on disk. Its `id` is stable: the event id it will become, or,
for a webhook, one made from the delivery id, so a resent item is kept once.

What is kept is the event body only: never request headers, and the body
without the page URL, referrer, IP, user agent or user key (`SCRUBBED`). A
webhook body loses any key that looks like an address or a user agent
(`PRIVATE`, e.g. Shopify's `browser_ip`). For events from browsers and SDKs,
`context` holds the anonymous fields the edge derived before they were
scrubbed (visitor id, country, device, path, campaign), so a replayed event
looks as it would have; for a hook it holds the headers the mapping reads.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid

import msgspec

from collector.events import FIELD_NAMES, Hit

REASONS = {
    "schema": "the event's props do not fit the site's JSON Schema for that event name",
    "mapping": "the webhook payload does not fit the hook's mapping",
}
SCRUBBED = frozenset({"u", "url", "r", "referrer", "ip", "user_agent", "visitor"})
PRIVATE = re.compile(r"(^|_)ip(_?address)?$|^ip_|user_?agent|remote_?addr", re.I)
NS = uuid.UUID("3d9b7c9e-61a4-4a5e-8f0e-6f7d0a1c5b22")
CONTEXT_FIELDS = tuple(f for f in FIELD_NAMES if f != "event_id")


class Item(msgspec.Struct, kw_only=True):
    id: bytes  # 16 bytes
    site: str
    received_at: int  # µs, UTC
    source: str  # api/event, api/v1/batch, hook:<name>
    reason: str
    detail: str
    payload: str  # JSON text
    context: str | None = None  # JSON text
    replayed_at: str | None = None

    def summary(self) -> dict:
        return {"id": str(uuid.UUID(bytes=self.id)), "site": self.site,
                "received_at": dt.datetime.fromtimestamp(self.received_at / 1e6, dt.UTC).isoformat(),
                "source": self.source, "reason": self.reason, "detail": self.detail,
                "replayed_at": self.replayed_at}

    def full(self) -> dict:
        return {**self.summary(), "payload": msgspec.json.decode(self.payload),
                "context": msgspec.json.decode(self.context) if self.context else None}


def scrub(value):
    """A webhook body without keys that look like an address or a user agent, at any depth."""
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if not PRIVATE.search(k)}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


class Pending:
    """A parsed event that failed its schema: becomes an Item once the edge has derived its context."""

    __slots__ = ("source", "detail", "body")

    def __init__(self, source: str, detail: str, body: dict):
        self.source = source
        self.detail = detail
        self.body = body

    def item(self, hit: Hit) -> Item:
        body = {k: v for k, v in self.body.items() if k not in SCRUBBED}
        context = {name: getattr(hit, name) for name in CONTEXT_FIELDS}
        return Item(id=hit.event_id, site=hit.site, received_at=hit.received_at, source=self.source,
                    reason="schema", detail=self.detail, payload=msgspec.json.encode(body).decode(),
                    context=msgspec.json.encode(context).decode())


def screen(hits: list[Hit], bodies: list, schemas, source: str) -> dict[int, Pending] | None:
    """{id(hit): Pending} for the hits whose raw props fail their site's schema; `bodies[i]` is hit i's body."""
    if not schemas:
        return None
    pending = {}
    for hit, body in zip(hits, bodies, strict=True):
        raw = next((body[k] for k in ("p", "props", "m", "meta") if body.get(k) is not None), None)
        problem = schemas.check(hit.site, hit.name, raw)
        if problem:
            pending[id(hit)] = Pending(source, problem, body)
    return pending or None


def hook_item(hook: str, site: str, delivery: str, now_us: int, reason: str, detail: str, payload,
              headers: dict[str, str]) -> Item:
    return Item(id=uuid.uuid5(NS, f"{hook}\x00{delivery}").bytes, site=site, received_at=now_us,
                source=f"hook:{hook}", reason=reason, detail=detail,
                payload=msgspec.json.encode(scrub(payload)).decode(),
                context=msgspec.json.encode({"headers": headers, "delivery": delivery}).decode())


def hit_from_context(item: Item) -> Hit:
    """The event as the edge made it, from a `schema` item's context, with its stable id."""
    hit = msgspec.json.decode(item.context, type=Hit)
    hit.event_id = item.id
    hit.client_event_id = True
    return hit


# ---- reading the store (writes go through the sink, in the group commit) ----

_COLUMNS = "id, site, epoch_us(received_at), source, reason, detail, payload, context, CAST(replayed_at AS VARCHAR)"


def select(con, *, site: str | None = None, reason: str | None = None, item_id: str | None = None,
           pending: bool = True, limit: int = 10_000) -> list[Item]:
    where, args = [], []
    if site:
        where.append("site = ?")
        args.append(site)
    if reason:
        where.append("reason = ?")
        args.append(reason)
    if item_id:
        where.append("id = ?")
        args.append(uuid.UUID(item_id))
    if pending:
        where.append("replayed_at IS NULL")
    sql = f"SELECT {_COLUMNS} FROM quarantine" + (" WHERE " + " AND ".join(where) if where else "")
    rows = con.execute(sql + " ORDER BY received_at, id LIMIT ?", [*args, limit]).fetchall()
    return [Item(id=r[0].bytes, site=r[1], received_at=r[2], source=r[3], reason=r[4], detail=r[5], payload=r[6],
                 context=r[7], replayed_at=r[8]) for r in rows]


def counts(con) -> list[tuple]:
    """(site, day, reason, items, waiting for a replay), for the dashboard and `strana quarantine list`."""
    return con.execute(
        "SELECT site, CAST(received_at AT TIME ZONE 'UTC' AS DATE) AS day, reason, count(*), "
        "count(*) FILTER (WHERE replayed_at IS NULL) FROM quarantine GROUP BY ALL ORDER BY day, site, reason"
    ).fetchall()


def stored_ids(con, ids: list[bytes]) -> set[bytes]:
    """Which of these event ids the events table already holds (a replay skips them)."""
    if not ids:
        return set()
    rows = con.execute("SELECT event_id FROM events WHERE event_id IN (SELECT unnest(?::UUID[]))",
                       [[uuid.UUID(bytes=i) for i in ids]]).fetchall()
    return {r[0].bytes for r in rows}
