"""Serves the ASGI part of Strana (Litestar: dashboard, stats API, admin, health, metrics) over Granian's RSGI.

Why RSGI at all: ingest is the hot path, and Granian's native protocol costs
less per request than its ASGI one. Here single events ran at 13.2-13.5k
req/s on RSGI against 11.1-11.2k on ASGI, the same sources behind both
(wrk -c64, alternating runs; bench/ingest.py prints both protocols' floors).
A Granian server speaks one protocol, so the ingest routes take RSGI natively
(sources/http.py: RsgiRequest) and the rest comes through this bridge, which
turns an RSGI call into an ASGI one. The ASGI lifespan
(start-up, drain on SIGTERM) runs from RSGI's worker init and del hooks.

Left out, since nothing here needs them: websockets (`strana serve` turns them
off) and ASGI extensions (pathsend, trailers).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from urllib.parse import quote

from granian.asgi import LifespanProtocol
from granian.rsgi import ProtocolClosed, ProtocolError

log = logging.getLogger("strana.rsgi")

ERROR_HEADERS = [("content-type", "application/json")]
ERROR_BODY = b'{"error": "internal error (logged)"}'


def _host_port(text: str | None) -> tuple[str, int] | None:
    if not text:
        return None
    host, _, port = text.rpartition(":")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        return None


class AsgiOverRsgi:
    def __init__(self, app, read_timeout: float | None = None):
        self.app = app
        self.lifespan = LifespanProtocol(app)
        self.read_timeout = read_timeout  # seconds a body may take to arrive; then 408 (None: no limit)

    def startup(self, loop) -> None:
        """Run the app's lifespan start-up before the worker takes requests; exit the worker if it fails, as
        Granian's own ASGI worker does."""
        loop.run_until_complete(self.lifespan.startup())
        if self.lifespan.interrupt:
            log.error("start-up failed", exc_info=self.lifespan.exc)
            sys.exit(1)

    def shutdown(self, loop) -> None:
        """After the last request: the lifespan shut-down, which drains and commits what was accepted."""
        loop.run_until_complete(self.lifespan.shutdown())

    async def __call__(self, scope, protocol) -> None:
        if scope.proto != "http":
            return
        path = scope.path
        asgi_scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": scope.http_version,
            "server": _host_port(scope.server),
            "client": _host_port(scope.client),
            "scheme": scope.scheme,
            "method": scope.method,
            "root_path": "",
            "path": path,
            "raw_path": quote(path, safe="/:@!$&'()*+,;=~").encode("ascii"),  # RSGI has the decoded path only
            "query_string": scope.query_string.encode("latin-1"),
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in scope.headers.items()],
            "state": self.lifespan.state.copy(),
        }
        exchange = Exchange(protocol, self.read_timeout)
        try:
            await self.app(asgi_scope, exchange.receive, exchange.send)
        except Exception:
            log.exception("unhandled error on %s %s", scope.method, path)
            if not exchange.sent and exchange.stream is None:  # nothing went out yet (a start alone may have)
                protocol.response_bytes(500, ERROR_HEADERS, ERROR_BODY)
            return
        if exchange.status is None:
            log.error("%s %s: the app sent no response", scope.method, path)
            protocol.response_bytes(500, ERROR_HEADERS, ERROR_BODY)
        elif not exchange.sent and exchange.stream is None:  # a start without a body message
            protocol.response_bytes(exchange.status, exchange.headers, b"")


class Exchange:
    """One request's ASGI receive and send, on its RSGI protocol object."""

    __slots__ = ("protocol", "chunks", "body_done", "status", "headers", "stream", "sent", "read_timeout",
                 "deadline", "timed_out")

    def __init__(self, protocol, read_timeout: float | None = None):
        self.protocol = protocol
        self.read_timeout = read_timeout
        self.deadline = time.monotonic() + read_timeout if read_timeout else None
        self.timed_out = False
        self.chunks = None
        self.body_done = False
        self.status: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.stream = None
        self.sent = False

    async def receive(self) -> dict:
        if self.timed_out:
            return {"type": "http.disconnect"}
        if self.body_done:  # the body is read: the next event is the client going away
            await self.protocol.client_disconnect()
            return {"type": "http.disconnect"}
        if self.chunks is None:
            self.chunks = self.protocol.__aiter__()
        try:  # chunk by chunk, so the app's own body limit stops a huge body before it is all in memory
            if self.deadline is None:
                chunk = await self.chunks.__anext__()
            else:  # one deadline for the whole body: a client must not trickle it in for ever
                chunk = await asyncio.wait_for(self.chunks.__anext__(), max(0.0, self.deadline - time.monotonic()))
        except TimeoutError:  # answer 408 now; the app sees the client leave, and what it sends is dropped
            self.body_done = self.timed_out = self.sent = True
            self.status = 408
            body = f'{{"error": "the body did not arrive within {self.read_timeout:g} seconds"}}'.encode()
            self.protocol.response_bytes(408, ERROR_HEADERS + [("connection", "close")], body)
            return {"type": "http.disconnect"}
        except StopAsyncIteration:
            self.body_done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        except (ProtocolClosed, ProtocolError):
            self.body_done = True
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(self, message: dict) -> None:
        kind = message["type"]
        if self.timed_out:
            return
        if kind == "http.response.start":
            self.status = message["status"]
            self.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", ())]
            return
        if kind != "http.response.body" or self.sent or self.status is None:
            return
        body = message.get("body", b"")
        more = message.get("more_body", False)
        if self.stream is None:
            if not more:  # the usual case: the whole body in one message
                self.sent = True
                self.protocol.response_bytes(self.status, self.headers, body)
                return
            self.stream = self.protocol.response_stream(self.status, self.headers)
        try:
            if body:
                await self.stream.send_bytes(body)
        except (ProtocolClosed, ProtocolError):  # the client left mid-stream: drop the rest
            self.sent = True
            return
        if not more:
            self.sent = True
