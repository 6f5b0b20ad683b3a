"""The few HTTP pieces the ingest routes need, on bare ASGI.

Ingest is the hot path: a Litestar handler costs ~2.5x a bare ASGI route here
(see COMPONENTS.md), so the three ingest routes are plain ASGI callables and
everything else goes through Litestar.
"""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import zlib
from urllib.parse import parse_qsl

import msgspec

CORS = [
    (b"access-control-allow-origin", b"*"),
]
PREFLIGHT = CORS + [
    (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
    (b"access-control-max-age", b"86400"),
]


class BadRequest(Exception):
    """A client error: status, the field at fault (or None) and a message that says what to fix."""

    def __init__(self, status: int, message: str, field: str | None = None, reason: str = "invalid"):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.reason = reason

    def body(self) -> bytes:
        err: dict = {"error": (f"{self.field}: " if self.field else "") + self.message}
        if self.field:
            err["field"] = self.field
            err["errors"] = {self.field: [self.message]}  # Plausible's error shape
        return msgspec.json.encode(err)


class Request:
    __slots__ = ("scope", "receive", "_headers")

    def __init__(self, scope, receive):
        self.scope = scope
        self.receive = receive
        self._headers: dict[bytes, bytes] | None = None

    @property
    def method(self) -> str:
        return self.scope["method"]

    def header(self, name: bytes) -> str | None:
        if self._headers is None:
            self._headers = {k.lower(): v for k, v in self.scope["headers"]}
        value = self._headers.get(name)
        return value.decode("latin-1") if value is not None else None

    def query(self) -> dict[str, str]:
        raw = self.scope.get("query_string", b"")
        try:  # strict also for what is percent-encoded: %ff must not become U+FFFD in a site or a URL
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict")
        except UnicodeDecodeError:
            raise BadRequest(400, "query string is not valid UTF-8") from None
        out: dict[str, str] = {}
        for k, v in pairs:
            out.setdefault(k, v)
        return out

    async def body(self, limit: int) -> bytes:
        """The whole body, at most `limit` bytes, arriving within the read timeout that the front door put in
        the scope (a client that trickles its body in a byte at a time must not hold a connection for ever)."""
        timeout = self.scope.get("strana.read_timeout")
        try:
            async with asyncio.timeout(timeout):
                return await self._body(limit)
        except TimeoutError:
            raise BadRequest(408, f"the body did not arrive within {timeout:g} seconds", reason="slow") from None

    async def _body(self, limit: int) -> bytes:
        declared = self.header(b"content-length")
        if declared is not None:
            try:
                if int(declared) > limit:
                    raise BadRequest(413, f"body is larger than {limit} bytes", reason="too_large")
            except ValueError:
                raise BadRequest(400, "content-length is not a number") from None
        chunks = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise BadRequest(400, "client disconnected before the body was complete", reason="disconnect")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BadRequest(413, f"body is larger than {limit} bytes", reason="too_large")
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


def decode_json(body: bytes, hint: str):
    """The body as JSON, or a 400 that says what to send (`hint`). Invalid UTF-8 is bad JSON too, and so is
    nesting deeper than msgspec's recursion limit (a few hundred `[` raise RecursionError, not DecodeError)."""
    try:
        return msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, ValueError):
        raise BadRequest(400, f"body is not valid JSON ({hint})", reason="bad_json") from None
    except RecursionError:
        raise BadRequest(400, f"body is nested too deeply to be read ({hint})", reason="bad_json") from None


def parse_networks(values) -> list:
    nets = []
    for value in values:
        try:
            nets.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError:
            raise ValueError(f"trusted_proxies: {value!r} is not an address or CIDR") from None
    return nets


def _clean_ip(value: str) -> str | None:
    value = value.strip().strip('"')
    if value.startswith("["):  # Forwarded: for="[2001:db8::1]:4711"
        value = value[1:].split("]", 1)[0]
    elif value.count(":") == 1:  # IPv4 with a port
        value = value.split(":", 1)[0]
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
    client = request.scope.get("client")
    peer = client[0] if client else None
    if not trusted or peer is None:
        return peer
    if not _trusted(peer, trusted):
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
        if not _trusted(ip, trusted):
            return ip
        peer = ip
    return peer


def _trusted(ip: str, trusted: list) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in net for net in trusted)


async def respond(send, status: int, body: bytes = b"", headers: list | None = None,
                  content_type: bytes = b"application/json") -> None:
    hdrs = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if headers:
        hdrs.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": body})
