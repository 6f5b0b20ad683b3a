"""POST /hooks/<name>: events that other systems send (payments, stars, signups), as server-side events.

In order, each check answering before the next runs:

- unknown hook: 404; not POST: 405;
- body over [ingest] max_webhook_bytes: 413;
- signature (collector/webhooks/signatures.py) wrong, missing or stale: 401, nothing kept;
- not JSON: 400, nothing kept. Not quarantined: no mapping fix can read a
  body that is not JSON, and the sender retries a 4xx once it sends JSON;
- no rule matches (an event type the hook does not map): 202 with
  `X-Strana-Ignored: no_rule`, so senders do not disable the endpoint;
- the matching rule cannot read the payload, or an event's props fail the
  site's schema: 422 naming the field and the expression, and the delivery is
  kept whole in quarantine (reason `mapping` or `schema`) for a replay. The
  422 shows up in the sender's dashboard, and its retries, once the mapping is
  fixed, store the events (their ids come from the delivery id, so a later
  replay of the quarantined copy finds them stored and adds nothing);
- otherwise 202 `{"accepted": n}` once the events are committed.

Webhook events have `via = "webhook"` and no IP or user agent: they come
from the sender's servers, not from the visitor, so the bot filter lets them
through and their visitor id (if any) is the hash of the mapped user key.
"""

from __future__ import annotations

import time
import uuid

import msgspec

from collector import metrics
from collector.bus import BusUnavailable, StoreFailed
from collector.events import Hit
from collector.quarantine import hook_item
from collector.sources.http import BadRequest, Request, decode_json
from collector.webhooks.mapping import MappingError
from collector.webhooks.signatures import SignatureError

PREFIX = "/hooks/"


class Unfit(Exception):
    """A delivery that cannot be stored as it is: kept in quarantine under `reason`."""

    def __init__(self, reason: str, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.reason = reason
        self.field = field
        self.message = message


def events_for(hook, payload, headers: dict[bytes, str], delivery: str, now_us: int, limits,
               schemas) -> list[Hit] | None:
    """The delivery's events, None when no rule maps it; Unfit when the mapping or a schema refuses it."""
    try:
        mapped = hook.mapping.apply(payload, headers, delivery, site=hook.site, now_us=now_us, limits=limits)
    except MappingError as exc:
        raise Unfit("mapping", exc.field, exc.message) from None
    if mapped is None:
        return None
    for m in mapped:
        problem = schemas.check(m.hit.site, m.hit.name, m.raw_props) if schemas else None
        if problem:
            raise Unfit("schema", f"{m.hit.name}.props", problem)
    return [m.hit for m in mapped]


def _json(status: int, obj: dict) -> tuple[int, bytes]:
    return status, msgspec.json.encode(obj)


class WebhookSource:
    def __init__(self, hooks: dict, edge, limits, max_body: int, schemas=None):
        self.hooks = hooks
        self.edge = edge
        self.limits = limits
        self.max_body = max_body
        self.schemas = schemas

    async def __call__(self, request: Request) -> None:
        name = request.path[len(PREFIX):]
        hook = self.hooks.get(name)
        route = f"{PREFIX}{name}" if hook else f"{PREFIX}*"
        extra: list = []
        if hook is None:
            status, body = _json(404, {"error": f"no webhook named {name[:64]!r} is configured"})
        elif request.method != "POST":
            status, body = _json(405, {"error": "use POST"})
            extra = [(b"allow", b"POST")]
        else:
            status, body, extra = await self._deliver(hook, request)
        metrics.requests_total.labels(route, status).inc()
        await request.respond(status, body, extra)

    async def _deliver(self, hook, request: Request) -> tuple[int, bytes, list]:
        route = f"{PREFIX}{hook.name}"
        try:
            raw = await request.body(self.max_body)
            try:
                hook.scheme.verify(request.header, raw)
            except SignatureError as exc:
                raise BadRequest(401, str(exc), "signature", reason="bad_signature") from None
            payload = decode_json(raw, "webhooks are read as JSON")
        except BadRequest as exc:
            metrics.rejected_total.labels(route, exc.reason).inc()
            return exc.status, exc.body(), exc.headers
        headers = {h: v for h in hook.mapping.headers_used() if (v := request.header(h)) is not None}
        delivery = hook.mapping.delivery(payload, headers, raw)
        now_us = time.time_ns() // 1000
        try:
            try:
                hits = events_for(hook, payload, headers, delivery, now_us, self.limits, self.schemas)
            except Unfit as exc:
                item = hook_item(hook.name, hook.site or "(unknown)", delivery, now_us, exc.reason, str(exc),
                                 payload, {k.decode(): v for k, v in headers.items()})
                await self.edge.store(quarantine=[item])
                metrics.rejected_total.labels(route, exc.reason).inc()
                kept_as = str(uuid.UUID(bytes=item.id))
                return (*_json(422, {"error": str(exc), "field": exc.field, "reason": exc.reason,
                                     "quarantined": kept_as}), [])
            if hits is None:
                return (*_json(202, {"accepted": 0, "ignored": "no_rule"}), [(b"x-strana-ignored", b"no_rule")])
            outcome = await self.edge.accept(hits)
        except (BusUnavailable, StoreFailed) as exc:
            return (*_json(503, {"error": f"nothing stored, try again: {exc}"}), [(b"retry-after", b"1")])
        ignored = [reason for _, reason in outcome.dropped]
        return (*_json(202, {"accepted": len(outcome.kept), "ignored": ignored}), [])
