"""Pageviews without JavaScript: middleware that records each HTML page an app serves.

A request counts when it is a GET, its path is not a static file or a health check, its user agent
is not a bot, and the answer is 2xx with a text/html content type. The visitor's IP (the peer's
address, or X-Forwarded-For when the peer is a trusted proxy), User-Agent and Referer go with the
pageview, so the collector's enhancers (location, device, source, visitor id) and privacy rules
apply as they do for the browser tracker; the collector uses them and never stores them.

    app = StranaASGIMiddleware(app, client)              # Starlette, FastAPI, Litestar, any ASGI app
    app.wsgi_app = StranaWSGIMiddleware(app.wsgi_app, client)   # Flask, any WSGI app
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import Any, Callable, Union
from urllib.parse import quote

from strana_sdk.client import BaseClient

# Paths that are never pages: static files and health checks. Regular expressions, matched with search().
DEFAULT_SKIP_PATHS: tuple[str, ...] = (
    r"^/(static|assets|media|_next|build|dist|public|favicon|apple-touch-icon)\b",
    r"\.(css|js|mjs|map|json|xml|txt|ico|png|jpe?g|gif|svg|webp|avif|bmp|woff2?|ttf|otf|eot|mp4|webm|mp3|pdf|zip)$",
    r"^/(health|healthz|healthcheck|livez|readyz|ready|ping|status|metrics)/?$",
)
# User agents that are not people. Matched case-insensitively with search(); the collector filters too.
DEFAULT_SKIP_USER_AGENTS: tuple[str, ...] = (
    r"bot\b|bot/|crawl|spider|slurp|archiver|facebookexternalhit|embedly|preview|monitor|uptime|pingdom",
    r"headless|lighthouse|phantomjs|selenium|puppeteer|playwright",
    r"^(curl|wget|python-requests|python-urllib|python-httpx|httpx|aiohttp|go-http-client|java|okhttp|"
    r"libwww-perl|axios|node-fetch|undici)\b",
    r"^$",
)

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


class PageviewRules:
    """Which requests are pages, and who the visitor is.

    `skip_paths` / `skip_user_agents`: regular expressions (defaults above; pass your own tuple,
    e.g. `DEFAULT_SKIP_PATHS + (r"^/admin",)`). `trusted_proxies`: addresses or networks of your
    reverse proxies; only when the peer is one of them is X-Forwarded-For read (from the right,
    skipping trusted hops), and "*" trusts any peer. `honour_privacy_signals`: skip requests that
    send `DNT: 1` or `Sec-GPC: 1` (the batch API has no way to count them anonymously).
    `base_url` ("https://example.com") replaces the scheme and host the app sees, e.g. behind a proxy.
    """

    def __init__(self, *, skip_paths: Sequence[str] = DEFAULT_SKIP_PATHS,
                 skip_user_agents: Sequence[str] = DEFAULT_SKIP_USER_AGENTS,
                 trusted_proxies: str | Sequence[str] = (), honour_privacy_signals: bool = True,
                 base_url: str | None = None) -> None:
        self.skip_path = re.compile("|".join(f"(?:{p})" for p in skip_paths), re.I) if skip_paths else None
        self.skip_ua = re.compile("|".join(f"(?:{p})" for p in skip_user_agents), re.I) if skip_user_agents else None
        self.trust_all = trusted_proxies == "*"
        self.trusted: list[Network] = [] if self.trust_all or isinstance(trusted_proxies, str) and not trusted_proxies \
            else [ipaddress.ip_network(p, strict=False) for p in ([trusted_proxies] if isinstance(trusted_proxies, str)
                                                                   else trusted_proxies)]
        self.honour_privacy_signals = honour_privacy_signals
        self.base_url = base_url.rstrip("/") if base_url else None

    def wanted_request(self, method: str, path: str, headers: Mapping[str, str]) -> bool:
        if method != "GET":
            return False
        if self.skip_path is not None and self.skip_path.search(path):
            return False
        if self.skip_ua is not None and self.skip_ua.search(headers.get("user-agent", "")):
            return False
        purpose = headers.get("sec-purpose") or headers.get("purpose") or ""
        if "prefetch" in purpose:
            return False
        if self.honour_privacy_signals and (headers.get("dnt") == "1" or headers.get("sec-gpc") == "1"):
            return False
        return True

    @staticmethod
    def wanted_response(status: int, content_type: str) -> bool:
        return 200 <= status < 300 and content_type.lower().lstrip().startswith("text/html")

    def _is_trusted(self, address: str) -> bool:
        if self.trust_all:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.trusted)

    def peer_is_trusted(self, peer: str | None) -> bool:
        return bool(peer) and (self.trust_all or bool(self.trusted)) and self._is_trusted(peer or "")

    def client_ip(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """The visitor's address: the peer's, unless the peer is a trusted proxy that says otherwise."""
        if not forwarded_for or not self.peer_is_trusted(peer):
            return _valid_ip(peer)
        hops = [h for h in (_valid_ip(part) for part in forwarded_for.split(",")) if h]
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return hop
        return hops[0] if hops else _valid_ip(peer)

    def page_url(self, scheme: str, host: str, path: str, query: str, headers: Mapping[str, str],
                 peer: str | None) -> str:
        if self.base_url:
            base = self.base_url
        else:
            if self.peer_is_trusted(peer):
                scheme = headers.get("x-forwarded-proto", scheme).split(",")[0].strip() or scheme
                host = headers.get("x-forwarded-host", host).split(",")[0].strip() or host
            base = f"{scheme}://{host}"
        return base + quote(path, safe="/%:@!$&'()*+,;=-._~") + (f"?{query}" if query else "")


def _valid_ip(text: str | None) -> str | None:
    if not text:
        return None
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":")[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class StranaASGIMiddleware:
    """Wrap any ASGI app: `app = StranaASGIMiddleware(app, client)`; keyword arguments go to PageviewRules.

    Litestar: `Litestar(..., middleware=[DefineMiddleware(StranaASGIMiddleware, client=client)])`.
    Starlette / FastAPI: `app.add_middleware(StranaASGIMiddleware, client=client)`.
    Use an `AsyncClient` (or a `Client`): `pageview()` only queues, so the response is never delayed.
    """

    def __init__(self, app: ASGIApp, client: BaseClient, **rules: Any) -> None:
        self.app = app
        self.client = client
        self.rules = rules.pop("rules", None) or PageviewRules(**rules)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        path, root = scope.get("path", ""), scope.get("root_path", "")
        if root and not path.startswith(root):  # older servers leave the mount point out of `path`
            path = root + path
        if not self.rules.wanted_request(scope.get("method", ""), path, headers):
            return await self.app(scope, receive, send)

        async def send_and_record(message: Message) -> None:
            if message["type"] == "http.response.start":
                content_type = ""
                for k, v in message.get("headers", ()):
                    if k.lower() == b"content-type":
                        content_type = v.decode("latin-1")
                        break
                if self.rules.wanted_response(message["status"], content_type):
                    self._record(scope, path, headers)
            await send(message)

        await self.app(scope, receive, send_and_record)

    def _record(self, scope: Scope, path: str, headers: Mapping[str, str]) -> None:
        client = scope.get("client")
        peer = client[0] if client else None
        server = scope.get("server")
        host = headers.get("host") or (f"{server[0]}:{server[1]}" if server else "localhost")
        query = scope.get("query_string", b"").decode("latin-1")
        url = self.rules.page_url(scope.get("scheme", "http"), host, path, query, headers, peer)
        self.client.pageview(url, referrer=headers.get("referer"), user_agent=headers.get("user-agent"),
                             ip=self.rules.client_ip(peer, headers.get("x-forwarded-for")))


StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class StranaWSGIMiddleware:
    """Wrap any WSGI app: `app.wsgi_app = StranaWSGIMiddleware(app.wsgi_app, client)` for Flask.

    Keyword arguments go to PageviewRules. Use a `Client`: `pageview()` only queues.
    """

    def __init__(self, app: WSGIApp, client: BaseClient, **rules: Any) -> None:
        self.app = app
        self.client = client
        self.rules = rules.pop("rules", None) or PageviewRules(**rules)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        headers = wsgi_headers(environ)
        path = _wsgi_text(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
        if not self.rules.wanted_request(environ.get("REQUEST_METHOD", ""), path, headers):
            return self.app(environ, start_response)

        def start_and_record(status: str, response_headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            try:
                code = int(status.split(" ", 1)[0])
            except ValueError:
                code = 0
            content_type = next((v for k, v in response_headers if k.lower() == "content-type"), "")
            if self.rules.wanted_response(code, content_type):
                record_wsgi(self.client, self.rules, environ, path, headers)
            return start_response(status, response_headers, *exc_info)

        return self.app(environ, start_and_record)


def _wsgi_text(text: str) -> str:
    """WSGI passes bytes as latin-1 text; URLs are UTF-8."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def wsgi_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    out = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        out["content-type"] = environ["CONTENT_TYPE"]
    return out


def record_wsgi(client: BaseClient, rules: PageviewRules, environ: Mapping[str, Any], path: str,
                headers: Mapping[str, str], url: str | None = None) -> None:
    peer = environ.get("REMOTE_ADDR")
    if url is None:
        host = headers.get("host") or f"{environ.get('SERVER_NAME', 'localhost')}:{environ.get('SERVER_PORT', '80')}"
        url = rules.page_url(environ.get("wsgi.url_scheme", "http"), host, path, environ.get("QUERY_STRING", ""),
                             headers, peer)
    client.pageview(url, referrer=headers.get("referer"), user_agent=headers.get("user-agent"),
                    ip=rules.client_ip(peer, headers.get("x-forwarded-for")))
