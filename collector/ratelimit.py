"""Ingest rate limits: token buckets in memory, per client address and per site, answering 429 + Retry-After.

One misbehaving page (a tracker in a loop) or one abusive client should not
fill the store or starve everyone else. `[ingest] rate_limit_per_ip` and
`rate_limit_per_site` are events per second (0: off); a bucket holds
`rate_limit_burst` seconds' worth. Buckets live in a dict that is pruned
when it grows, so a flood of new addresses costs bounded memory. With both
limits off nothing here is installed, so the ingest path pays nothing.
"""

from __future__ import annotations

import math
import time

from collector.sources.http import CORS, BadRequest, Request, client_address

MAX_BUCKETS = 100_000


class Buckets:
    """Token buckets keyed by any string: `take(key)` is 0.0 when allowed, else seconds to wait."""

    def __init__(self, rate: float, burst_seconds: float = 2.0, clock=time.monotonic):
        self.rate = float(rate)
        self.capacity = max(1.0, self.rate * burst_seconds)
        self.clock = clock
        self.state: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str, n: float = 1.0) -> float:
        now = self.clock()
        tokens, at = self.state.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.rate)
        if tokens >= n:
            self.state[key] = (tokens - n, now)
            return 0.0
        self.state[key] = (tokens, now)
        if len(self.state) > MAX_BUCKETS:
            self._prune(now)
        return (n - tokens) / self.rate

    def _prune(self, now: float) -> None:
        """Forget buckets that would be full again anyway; if none, the oldest half."""
        full_after = self.capacity / self.rate
        keep = {k: v for k, v in self.state.items() if now - v[1] < full_after}
        if len(keep) > MAX_BUCKETS // 2:
            keep = dict(sorted(keep.items(), key=lambda kv: kv[1][1])[len(keep) // 2:])
        self.state = keep


class RateLimited(BadRequest):
    def __init__(self, wait: float, what: str):
        self.retry_after = max(1, math.ceil(wait))
        super().__init__(429, f"too many events {what}: slow down and retry after {math.ceil(wait)} s",
                         reason="rate_limited", headers=[(b"retry-after", str(self.retry_after).encode())])


class SiteLimiter:
    """Called by the payload parser with a hit's sites (Limits.site_rate); raises RateLimited."""

    def __init__(self, rate: float, burst: float):
        self.buckets = Buckets(rate, burst)

    def __call__(self, domains: list[str]) -> None:
        for domain in domains:
            wait = self.buckets.take(domain)
            if wait:
                raise RateLimited(wait, f"for site {domain!r}")


class PerIpLimit:
    """Wraps one bare-ASGI ingest route: 429 before the body is even read when the address is over its rate."""

    def __init__(self, route, buckets: Buckets, trusted: list):
        self.route = route
        self.buckets = buckets  # shared by all ingest routes: the limit is per address, not per route
        self.trusted = trusted

    async def __call__(self, request: Request) -> None:
        if request.method != "OPTIONS":
            wait = self.buckets.take(client_address(request, self.trusted) or "-")
            if wait:
                exc = RateLimited(wait, "from this address")
                headers = CORS + exc.headers + [(b"x-strana-ignored", b"rate_limited")]
                return await request.respond(429, exc.body(), headers)
        return await self.route(request)


def wrap_routes(routes: dict, settings, trusted: list) -> dict:
    """The ingest routes with the per-IP limit around them (unchanged when the limit is off)."""
    rate = float(settings.get("ingest", "rate_limit_per_ip") or 0)
    if rate <= 0:
        return routes
    buckets = Buckets(rate, float(settings.get("ingest", "rate_limit_burst")))
    return {path: PerIpLimit(route, buckets, trusted) for path, route in routes.items()}


def site_limiter(settings) -> SiteLimiter | None:
    rate = float(settings.get("ingest", "rate_limit_per_site") or 0)
    return SiteLimiter(rate, float(settings.get("ingest", "rate_limit_burst"))) if rate > 0 else None
