"""The few HTTP pieces the ingest routes need, on bare ASGI or RSGI.

Ingest is the hot path: a Litestar handler costs ~2.5x a bare ASGI route here
(see COMPONENTS.md), so the ingest routes are plain callables that take a
Request and everything else goes through Litestar. Under Granian a Request is
an RsgiRequest, on Granian's native protocol (collector/rsgi.py says why).
"""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import socket
import time
import zlib
from urllib.parse import parse_qsl

import msgspec
from granian.rsgi import ProtocolClosed, ProtocolError

CORS = [
    (b"access-control-allow-origin", b"*"),
]
PREFLIGHT = CORS + [
    (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
    (b"access-control-max-age", b"86400"),
]


class BadRequest(Exception):
    """A client error: status, the field at fault (or None), a message that says what to fix, and any headers
    the answer must carry."""

    def __init__(self, status: int, message: str, field: str | None = None, reason: str = "invalid",
                 headers: list[tuple[bytes, bytes]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.reason = reason
        self.headers = headers or []

    def body(self) -> bytes:
        err: dict = {"error": (f"{self.field}: " if self.field else "") + self.message}
        if self.field:
            err["field"] = self.field
            err["errors"] = {self.field: [self.message]}  # Plausible's error shape
        return msgspec.json.encode(err)


def client_gone() -> BadRequest:
    return BadRequest(400, "client disconnected before the body was complete", reason="disconnect")


def body_left_unread(limit: int) -> BadRequest:
    """413 for a body not read to its end. The answer says the connection closes: Granian drains or drops
    the rest of such a body as it sees fit, and when it drops the connection without saying so, a
    keep-alive client loses its next request on it ("server disconnected without sending a response")."""
    return BadRequest(413, f"body is larger than {limit} bytes", reason="too_large",
                      headers=[(b"connection", b"close")])


class Request:
    """One ingest request on bare ASGI (tests, other ASGI servers): the base for both interfaces.

    Sources see only this surface: method, path, header(), query(), body(), peer and respond(). Under Granian
    the same sources run on RsgiRequest, its native interface (collector/rsgi.py says why).
    """

    __slots__ = ("scope", "receive", "send", "read_timeout", "responded", "_headers")

    def __init__(self, scope, receive, send=None, read_timeout: float | None = None):
        self.scope = scope
        self.receive = receive
        self.send = send
        self.read_timeout = read_timeout  # seconds the body may take to arrive (None: no limit)
        self.responded = False
        self._headers: dict[bytes, bytes] | None = None

    @property
    def method(self) -> str:
        return self.scope["method"]

    @property
    def path(self) -> str:
        return self.scope["path"]

    @property
    def peer(self) -> str | None:
        """The address the connection comes from (a proxy's, behind one: see client_address)."""
        client = self.scope.get("client")
        return client[0] if client else None

    def header(self, name: bytes) -> str | None:
        if self._headers is None:
            self._headers = {k.lower(): v for k, v in self.scope["headers"]}
        value = self._headers.get(name)
        return value.decode("latin-1") if value is not None else None

    def _query_text(self) -> str:
        return self.scope.get("query_string", b"").decode("utf-8")

    def query(self) -> dict[str, str]:
        try:  # strict also for what is percent-encoded: %ff must not become U+FFFD in a site or a URL
            pairs = parse_qsl(self._query_text(), keep_blank_values=True, errors="strict")
        except UnicodeDecodeError:
            raise BadRequest(400, "query string is not valid UTF-8") from None
        out: dict[str, str] = {}
        for k, v in pairs:
            out.setdefault(k, v)
        return out

    async def respond(self, status: int, body: bytes = b"", headers: list | None = None,
                      content_type: bytes | None = b"application/json") -> None:
        self.responded = True
        await respond(self.send, status, body, headers, content_type)

    async def body(self, limit: int) -> bytes:
        """The whole body, at most `limit` bytes, arriving within the read timeout (a client that trickles its
        body in a byte at a time must not hold a connection for ever)."""
        timeout = self.read_timeout
        if not timeout:
            return await self._body(limit)
        task = asyncio.current_task()
        SLOW_BODIES.watch(task, timeout)
        try:
            return await self._body(limit)
        except asyncio.CancelledError:
            if not SLOW_BODIES.expired(task):
                raise
            task.uncancel()
            raise BadRequest(408, f"the body did not arrive within {timeout:g} seconds", reason="slow") from None
        finally:
            SLOW_BODIES.forget(task)

    def _declared_length(self, limit: int) -> int | None:
        declared = self.header(b"content-length")
        if declared is None:
            return None
        try:
            length = int(declared)
        except ValueError:
            raise BadRequest(400, "content-length is not a number") from None
        if length > limit:
            raise body_left_unread(limit)
        return length

    async def _body(self, limit: int) -> bytes:
        self._declared_length(limit)
        chunks = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise client_gone()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise body_left_unread(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def decoded_body(self, limit: int) -> bytes:
        """The body, gunzipped when the client says so, never larger than `limit` once inflated."""
        raw = await self.body(limit)
        encoding = (self.header(b"content-encoding") or "identity").strip().lower()
        if encoding in ("identity", ""):
            return raw
        if encoding not in ("gzip", "deflate"):
            raise BadRequest(415, f"content-encoding {encoding!r} is not supported (use gzip)", "content-encoding")
        wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(raw, limit + 1)
        except (zlib.error, gzip.BadGzipFile):
            raise BadRequest(400, f"body is not valid {encoding}", "content-encoding") from None
        if len(out) > limit or inflater.unconsumed_tail:
            raise BadRequest(413, f"decompressed body is larger than {limit} bytes", reason="too_large")
        return out


class RsgiRequest(Request):
    """The same request on Granian's native interface, RSGI: the scope is an object, its headers a map that
    Granian reads on demand, and the answer one call with the whole body.

    What RSGI hands over differs from ASGI in two ways a client can see: the path comes percent-decoded
    (no raw path), and a header whose value is not visible ASCII is left out (an ASGI scope has its bytes).
    """

    __slots__ = ("protocol",)

    def __init__(self, scope, protocol, read_timeout: float | None = None):
        self.scope = scope
        self.protocol = protocol
        self.read_timeout = read_timeout
        self.responded = False
        self._headers = None  # scope.headers builds a new map object on each access: taken once

    @property
    def method(self) -> str:
        return self.scope.method

    @property
    def path(self) -> str:
        return self.scope.path

    @property
    def peer(self) -> str | None:
        host = self.scope.client.rpartition(":")[0]  # "1.2.3.4:5678", "[::1]:5678"
        return host.strip("[]") or None

    def header(self, name: bytes) -> str | None:
        if self._headers is None:
            self._headers = self.scope.headers
        return self._headers.get(name.decode("latin-1"))

    def _query_text(self) -> str:
        return self.scope.query_string

    async def respond(self, status: int, body: bytes = b"", headers: list | None = None,
                      content_type: bytes | None = b"application/json") -> None:
        hdrs = [("content-type", content_type.decode("latin-1"))] if content_type is not None else []
        if headers:
            hdrs.extend([(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers])
        self.responded = True
        self.protocol.response_bytes(status, hdrs, body)  # Granian adds content-length

    async def _body(self, limit: int) -> bytes:
        declared = self._declared_length(limit)
        try:
            if declared is not None:  # the server holds the client to its content-length
                return await self.protocol()
            chunks = []
            size = 0
            async for chunk in self.protocol:
                size += len(chunk)
                if size > limit:
                    raise body_left_unread(limit)
                chunks.append(chunk)
            return b"".join(chunks)
        except (ProtocolClosed, ProtocolError):
            raise client_gone() from None


class SlowBodies:
    """Cancels body reads that outlive their deadline.

    One sweep every quarter second instead of a timer per request: asyncio.timeout()
    cost ~6% of a single event's CPU, and a deadline a quarter second late is fine.
    """

    SWEEP_SECONDS = 0.25

    def __init__(self):
        self._deadlines: dict[asyncio.Task, float] = {}
        self._expired: set[asyncio.Task] = set()
        self._sweeping = False

    def watch(self, task: asyncio.Task, timeout: float) -> None:
        self._deadlines[task] = time.monotonic() + timeout
        if not self._sweeping:
            self._sweeping = True
            asyncio.get_running_loop().call_later(self.SWEEP_SECONDS, self._sweep)

    def forget(self, task: asyncio.Task) -> None:
        self._deadlines.pop(task, None)
        self._expired.discard(task)

    def expired(self, task: asyncio.Task) -> bool:
        return task in self._expired

    def _sweep(self) -> None:
        now = time.monotonic()
        for task, deadline in list(self._deadlines.items()):
            if deadline <= now:
                del self._deadlines[task]
                self._expired.add(task)
                task.cancel()
        if self._deadlines:
            asyncio.get_running_loop().call_later(self.SWEEP_SECONDS, self._sweep)
        else:
            self._sweeping = False


SLOW_BODIES = SlowBodies()  # one per process: each event loop's tasks are its own keys


def decode_json(body: bytes, hint: str):
    """The body as JSON, or a 400 that says what to send (`hint`). Invalid UTF-8 is bad JSON too, and so is
    nesting deeper than msgspec's recursion limit (a few hundred `[` raise RecursionError, not DecodeError)."""
    try:
        return msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, ValueError):
        raise BadRequest(400, f"body is not valid JSON ({hint})", reason="bad_json") from None
    except RecursionError:
        raise BadRequest(400, f"body is nested too deeply to be read ({hint})", reason="bad_json") from None


class Networks(list):
    """The trusted proxies: a list of networks with a fast test for an address given as text (it runs on every
    hit behind a proxy, where ipaddress objects cost ~5% of a request)."""

    def __init__(self, nets=()):
        super().__init__(nets)
        self._v4 = [(int(n.network_address), int(n.netmask)) for n in self if n.version == 4]
        self._v6 = [n for n in self if n.version == 6]
        self._peers: dict[str, bool] = {}  # the peer is usually one of a few proxies: remember the answer

    def holds_peer(self, ip: str) -> bool:
        known = self._peers.get(ip)
        if known is None:
            known = self.holds(ip)
            if len(self._peers) >= 4096:
                self._peers.clear()
            self._peers[ip] = known
        return known

    def holds(self, ip: str) -> bool:
        try:
            n = int.from_bytes(socket.inet_pton(socket.AF_INET, ip), "big")
        except OSError:
            try:
                addr = ipaddress.ip_address(ip)
            except ValueError:
                return False
            if addr.version == 4:  # e.g. an IPv4 address written in a form inet_pton refuses
                return any(addr in net for net in self)
            return any(addr in net for net in self._v6)
        return any(n & mask == net for net, mask in self._v4)


def parse_networks(values) -> Networks:
    nets = []
    for value in values:
        try:
            nets.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError:
            raise ValueError(f"trusted_proxies: {value!r} is not an address or CIDR") from None
    return Networks(nets)


def _clean_ip(value: str) -> str | None:
    value = value.strip().strip('"')
    if value.startswith("["):  # Forwarded: for="[2001:db8::1]:4711"
        value = value[1:].split("]", 1)[0]
    elif value.count(":") == 1:  # IPv4 with a port
        value = value.split(":", 1)[0]
    try:  # the common case, and the same answer ipaddress gives for a dotted quad (no leading zeros either)
        socket.inet_pton(socket.AF_INET, value)
        return value
    except OSError:
        pass
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def client_address(request: Request, trusted: list) -> str | None:
    """The visitor's address: the peer, or from X-Forwarded-For / Forwarded when the peer is a trusted proxy.

    Walks the forwarded chain from the right and stops at the first address
    that is not itself a trusted proxy, so a client cannot spoof its address
    by sending the header itself.
    """
    peer = request.peer
    if not trusted or peer is None:
        return peer
    if not isinstance(trusted, Networks):
        trusted = Networks(trusted)
    if not trusted.holds_peer(peer):
        return peer
    chain: list[str] = []
    forwarded = request.header(b"forwarded")
    if forwarded:
        for element in forwarded.split(","):
            for pair in element.split(";"):
                key, _, value = pair.strip().partition("=")
                if key.lower() == "for":
                    chain.append(value)
    else:
        xff = request.header(b"x-forwarded-for")
        if xff:
            chain = xff.split(",")
    for candidate in reversed(chain):
        ip = _clean_ip(candidate)
        if ip is None:
            break
        if not trusted.holds(ip):
            return ip
        peer = ip
    return peer


async def respond(send, status: int, body: bytes = b"", headers: list | None = None,
                  content_type: bytes | None = b"application/json") -> None:
    hdrs = [] if status == 304 else [(b"content-length", str(len(body)).encode())]
    if content_type is not None:
        hdrs.append((b"content-type", content_type))
    if headers:
        hdrs.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": body})
