"""POST /api/event: Plausible's Events API, one event per request (the JS tracker's path).

Like Plausible, the body is read as JSON whatever the content type (trackers
send text/plain to skip the CORS preflight) and the answer is 202 `ok`.
An ignored hit still gets 202, with `X-Strana-Ignored: <reason>`; so does
one whose props fail the site's schema: it is kept in quarantine
(`X-Strana-Ignored: quarantined`), since a browser cannot fix what it sent.
"""

from __future__ import annotations

import time

import msgspec

from collector import metrics
from collector.bus import BusUnavailable, StoreFailed
from collector.quarantine import screen
from collector.sources.http import CORS, PREFLIGHT, BadRequest, Request, client_address, decode_json
from collector.sources.plausible import hits_from_payload

ROUTE = "/api/event"
OK = metrics.requests_total.labels(ROUTE, 202)  # bound once: labels() costs a lock per call


class EventSource:
    def __init__(self, edge, limits, max_body: int, trusted: list, schemas=None):
        self.edge = edge
        self.schemas = schemas
        self.limits = limits
        self.max_body = max_body
        self.trusted = trusted

    async def __call__(self, request: Request) -> None:
        method = request.method
        if method == "OPTIONS":
            allow = request.header(b"access-control-request-headers") or "content-type"
            return await request.respond(204, headers=PREFLIGHT + [(b"access-control-allow-headers", allow.encode())])
        if method != "POST":
            return await request.respond(405, b'{"error": "use POST"}', CORS + [(b"allow", b"POST, OPTIONS")])
        try:
            body = await request.decoded_body(self.max_body)
            payload = decode_json(body, "send a Plausible Events API object")
            hits = hits_from_payload(payload, self.limits, now_us=time.time_ns() // 1000, via="event")
        except BadRequest as exc:
            metrics.rejected_total.labels(ROUTE, exc.reason).inc()
            metrics.requests_total.labels(ROUTE, exc.status).inc()
            return await request.respond(exc.status, exc.body(), CORS + exc.headers)
        ip = client_address(request, self.trusted)
        ua = request.header(b"user-agent")
        signal = request.header(b"dnt") == "1" or request.header(b"sec-gpc") == "1"
        for hit in hits:
            hit.ip, hit.user_agent, hit.privacy_signal = ip, ua, signal
        try:
            outcome = await self.edge.accept(hits, screen(hits, [payload] * len(hits), self.schemas, "api/event"))
        except (BusUnavailable, StoreFailed) as exc:
            metrics.requests_total.labels(ROUTE, 503).inc()
            body = msgspec.json.encode({"error": f"not stored, try again: {exc}"})
            return await request.respond(503, body, CORS + [(b"retry-after", b"1")])
        headers = list(CORS)
        if outcome.dropped and not outcome.kept:
            headers.append((b"x-strana-ignored", outcome.dropped[0][1].encode()))
        OK.inc()
        await request.respond(202, b"ok", headers, content_type=b"text/plain; charset=utf-8")
