"""POST /api/v1/batch: many events at once, for the SDK and server-side senders.

`{"events": [...]}`, each in the /api/event format plus optional `event_id`
(idempotency: the same id is stored once), `timestamp` (ISO 8601, not older
than [ingest] max_past_days nor in the future), and the visitor's `ip`,
`user_agent` or `visitor` key, which the edge uses and never stores. The
body may be gzip-compressed. Validation is all or nothing: one bad event
and the answer is 422 listing every bad event by index, and nothing is stored.
An event whose props fail its site's schema is not bad input but kept in
quarantine: the others are stored, and it is listed under `ignored` with the
reason `quarantined`.
"""

from __future__ import annotations

import time

import msgspec

from collector import metrics
from collector.bus import BusUnavailable, StoreFailed
from collector.quarantine import screen
from collector.sources.batch_parse import Slow, parse_batch, site_rate_errors
from collector.sources.http import CORS, PREFLIGHT, BadRequest, Request, client_address, decode_json
from collector.sources.plausible import hits_from_payload

ROUTE = "/api/v1/batch"
OK = metrics.requests_total.labels(ROUTE, 202)  # bound once: labels() costs a lock per call


def _invalid(errors: list[dict], events: int) -> BadRequest:
    first = errors[0]
    exc = BadRequest(422, f"{len(errors)} of {events} events are invalid; nothing was stored. "
                          f"First: {first['field']}: {first['message']}")
    exc.details = errors
    return exc


class BatchSource:
    def __init__(self, edge, limits, max_body: int, max_events: int, trusted: list, schemas=None, authorize=None):
        self.edge = edge
        self.schemas = schemas
        self.authorize = authorize  # (request, hits) -> None or raises BadRequest: sites that require a write key
        self.limits = limits
        self.max_body = max_body
        self.max_events = max_events
        self.trusted = trusted

    def _parse(self, body: bytes, now_us: int) -> tuple[list, list[int], list | None]:
        """(hits, the index of the event each hit came from, the events as dicts or None if not needed yet)."""
        try:
            hits, owners = parse_batch(body, self.limits, now_us, self.max_events)
        except Slow:  # something is off: the per-event code finds and names every bad event
            return self._parse_slow(body, now_us)
        if self.limits.site_rate is not None:
            errors = site_rate_errors(hits, owners, self.limits)
            if errors:
                raise _invalid(errors, owners[-1] + 1)
        return hits, owners, None

    def _parse_slow(self, body: bytes, now_us: int) -> tuple[list, list[int], list]:
        payload = decode_json(body, 'send {"events": [...]}')
        if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
            raise BadRequest(422, "must be a list of events: send {\"events\": [...]}", "events")
        items = payload["events"]
        if not items:
            raise BadRequest(422, "is empty: send at least one event", "events")
        if len(items) > self.max_events:
            raise BadRequest(413, f"at most {self.max_events} events per batch, got {len(items)}", "events",
                             reason="too_many")
        hits, owners, errors = [], [], []
        for index, item in enumerate(items):
            try:
                made = hits_from_payload(item, self.limits, now_us=now_us, via="batch", server_fields=True,
                                         prefix=f"events[{index}].")
            except BadRequest as exc:
                errors.append({"index": index, "field": exc.field, "message": exc.message})
                continue
            hits.extend(made)
            owners.extend([index] * len(made))
        if errors:
            raise _invalid(errors, len(items))
        return hits, owners, items

    async def __call__(self, request: Request) -> None:
        if request.method == "OPTIONS":
            allow = request.header(b"access-control-request-headers") or "content-type"
            return await request.respond(204, headers=PREFLIGHT + [(b"access-control-allow-headers", allow.encode())])
        if request.method != "POST":
            return await request.respond(405, b'{"error": "use POST"}', CORS + [(b"allow", b"POST, OPTIONS")])
        try:
            body = await request.decoded_body(self.max_body)
            hits, owners, items = self._parse(body, time.time_ns() // 1000)
            if self.authorize is not None:
                self.authorize(request, hits)
        except BadRequest as exc:
            metrics.rejected_total.labels(ROUTE, exc.reason).inc()
            metrics.requests_total.labels(ROUTE, exc.status).inc()
            out = msgspec.json.decode(exc.body())
            if getattr(exc, "details", None):
                out["errors"] = exc.details
            return await request.respond(exc.status, msgspec.json.encode(out), CORS + exc.headers)
        sender_ip = client_address(request, self.trusted)
        for hit in hits:
            if hit.ip is None and hit.user_agent is None and hit.visitor_key is None:
                hit.ip = sender_ip  # Plausible's rule: no visitor given, the sender's address stands in
        try:
            pending = None
            if self.schemas:  # the raw bodies are needed only to screen props against a schema
                if items is None:
                    items = msgspec.json.decode(body)["events"]
                pending = screen(hits, [items[i] for i in owners], self.schemas, "api/v1/batch")
            outcome = await self.edge.accept(hits, pending)
        except (BusUnavailable, StoreFailed) as exc:
            metrics.requests_total.labels(ROUTE, 503).inc()
            body = msgspec.json.encode({"error": f"nothing stored, try again: {exc}"})
            return await request.respond(503, body, CORS + [(b"retry-after", b"1")])
        ignored = []
        if outcome.dropped:
            index_of = {id(hit): owner for hit, owner in zip(hits, owners, strict=True)}
            ignored = [{"index": index_of[id(hit)], "reason": reason} for hit, reason in outcome.dropped]
        OK.inc()
        body = msgspec.json.encode({"accepted": len(outcome.kept), "ignored": ignored})
        await request.respond(202, body, CORS)
