"""GET /p.gif: the 1x1 pixel for pages without JavaScript and for e-mails.

Always answers with the GIF and no-cache headers, also when the hit is
ignored (the reason is in `X-Strana-Ignored`, as GoatCounter does), so a
broken image never shows. With no `u` the page is taken from the Referer
header, which is what a plain `<img>` on a page sends. The status is 200
once the hit is stored, and 503 (still with the GIF) when it could not be.
"""

from __future__ import annotations

import base64
import time

from collector import metrics
from collector.bus import BusUnavailable, StoreFailed
from collector.sources.http import CORS, PREFLIGHT, BadRequest, Request, client_address
from collector.sources.plausible import hits_from_payload

ROUTE = "/p.gif"
GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_CACHE = CORS + [
    (b"cache-control", b"no-cache, no-store, must-revalidate, max-age=0"),
    (b"pragma", b"no-cache"),
    (b"expires", b"0"),
]


class PixelSource:
    def __init__(self, edge, limits, trusted: list):
        self.edge = edge
        self.limits = limits
        self.trusted = trusted

    async def __call__(self, request: Request) -> None:
        if request.method == "OPTIONS":
            return await request.respond(204, headers=PREFLIGHT)
        if request.method not in ("GET", "HEAD"):
            return await request.respond(405, b'{"error": "use GET"}', CORS + [(b"allow", b"GET, OPTIONS")])
        status, ignored = 200, None
        try:
            params = request.query()
            if "n" not in params and "name" not in params:
                params["n"] = "pageview"
            if "u" not in params and "url" not in params:
                referer = request.header(b"referer")
                if referer:
                    params["u"] = referer
            hits = hits_from_payload(params, self.limits, now_us=time.time_ns() // 1000, via="pixel")
        except BadRequest as exc:
            metrics.rejected_total.labels(ROUTE, exc.reason).inc()
            hits, ignored = [], f"{exc.reason}: {exc}".encode("ascii", "replace")[:200]
            if exc.status == 429:  # rate limited: still the GIF, but say so (with Retry-After)
                status, ignored = 429, b"rate_limited"
        if hits:
            ip = client_address(request, self.trusted)
            ua = request.header(b"user-agent")
            signal = request.header(b"dnt") == "1" or request.header(b"sec-gpc") == "1"
            for hit in hits:
                hit.ip, hit.user_agent, hit.privacy_signal = ip, ua, signal
            try:
                outcome = await self.edge.accept(hits)
                if outcome.dropped and not outcome.kept:
                    ignored = outcome.dropped[0][1].encode()
            except (BusUnavailable, StoreFailed):
                status, ignored = 503, b"unavailable"
        headers = list(NO_CACHE)
        if status == 429:
            headers.append((b"retry-after", b"1"))
        if ignored:
            headers.append((b"x-strana-ignored", ignored))
        metrics.requests_total.labels(ROUTE, status).inc()
        await request.respond(status, GIF, headers, content_type=b"image/gif")
