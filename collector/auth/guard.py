"""The gate in front of the Litestar app: who is asking, may they, CSRF, and the security headers.

Every non-ingest request passes here (ingest routes are bare ASGI in
FrontDoor and never do). The rule is by path, so pages and API routes added
later are covered without registering anything:

- public: the login/setup/share pages, /healthz, /metrics, /schema, /assets/;
- `/api/v1/quarantine`: the owner only;
- `/api/v1/sites`, `/api/v1/users`, `/api/v1/me`: a logged-in person (or
  local mode); the handlers check the role on the site;
- everything else (stats API, dashboard pages): a principal that may read
  **every** site the request names — `site` / `site_id` / `domain` query
  parameters (all their values), `site_id` / `site` in a JSON body, and any
  path segment that is a known site. Nothing named: the handler answers 400.

Cookie-authenticated changes need the double-submit CSRF token (the
`strana_csrf` cookie's value in `X-CSRF-Token`; forms check `_csrf`
themselves). Read-only POSTs (/api/v1/query, /api/v1/funnel) need none.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qsl, quote

import msgspec

from collector.auth import tokens
from collector.auth.service import CSRF_COOKIE, cookies_of
from collector.sources.http import Request

PUBLIC = ("/healthz", "/metrics", "/login", "/logout", "/setup/", "/share/", "/embed/", "/auth/static/", "/schema",
          "/favicon.ico", "/assets/")  # /assets/: the dashboard's hashed CSS/JS files (no data)
OWNER_ONLY = ("/api/v1/quarantine",)  # raw payloads of any site, and replay: the owner's business
FORMS = ("/login", "/logout", "/setup/", "/share/")  # the page handlers check the form's _csrf field
ADMIN = ("/api/v1/sites", "/api/v1/users", "/api/v1/me")
READ_POSTS = frozenset({"/api/v1/query", "/api/v1/funnel"})
SITE_PARAMS = ("site", "site_id", "domain")
MAX_BODY = 1 << 20
SAFE = ("GET", "HEAD", "OPTIONS")

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors ")


def _json(status: int, error: str, extra: list | None = None):
    body = msgspec.json.encode({"error": error})
    return status, body, [(b"content-type", b"application/json"), *(extra or [])]


class AuthGate:
    def __init__(self, app, auth):
        self.app = app
        self.auth = auth

    def _admin_token(self, request) -> bool:
        token = str(self.auth.settings.values.get("admin", {}).get("token") or "")
        sent = request.header(b"authorization") or ""
        return bool(token) and hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        auth = self.auth
        request = Request(scope, receive)
        path = scope["path"]
        cookies = cookies_of(request)
        try:
            pairs = parse_qsl(scope.get("query_string", b"").decode("utf-8", "replace"), keep_blank_values=True)
        except ValueError:
            pairs = []
        first = {}
        for k, v in pairs:
            first.setdefault(k, v)
        principal = auth.principal(request, cookies, first)
        csrf = cookies.get(CSRF_COOKIE) or ""
        new_csrf = None
        if len(csrf) != 43:
            csrf = new_csrf = tokens.new_token()
        scope["strana.auth"], scope["strana.principal"], scope["strana.csrf"] = auth, principal, csrf
        send = self._headers(send, path, principal, new_csrf, auth.secure(request))

        if path.startswith(OWNER_ONLY) and self._admin_token(request):
            # the [admin] token of the quarantine API (collector/admin.py checks it again): for scripts
            return await self.app(scope, receive, send)
        refusal = None
        if principal.kind == "invalid":
            refusal = _json(401, "the API key or link is invalid, expired or revoked")
        elif path.startswith(PUBLIC):
            return await self.app(scope, receive, send)
        method = scope["method"]
        unsafe = method not in SAFE
        if refusal is None and unsafe and principal.via_cookie and path not in READ_POSTS \
                and not path.startswith(FORMS):
            sent = request.header(b"x-csrf-token") or ""
            if not sent or not hmac.compare_digest(sent.encode(), (cookies.get(CSRF_COOKIE) or "").encode()):
                refusal = _json(403, "CSRF token missing or wrong: send the strana_csrf cookie's value in "
                                     "X-CSRF-Token")
        if refusal is None and path.startswith(OWNER_ONLY):
            if not principal.is_owner:
                refusal = _json(401 if principal.kind == "anonymous" else 403, "only the owner may do this")
        elif refusal is None and path.startswith(ADMIN):
            if principal.kind == "anonymous":
                refusal = _json(401, "log in first")
            elif principal.kind not in ("user", "local"):
                refusal = _json(403, "API keys and shared links cannot manage sites, people or keys")
        elif refusal is None:
            refusal, receive = await self._check_read(scope, receive, request, principal, pairs, unsafe)
        if refusal is not None:
            status, body, headers = refusal
            await send({"type": "http.response.start", "status": status,
                        "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            return await send({"type": "http.response.body", "body": body})
        return await self.app(scope, receive, send)

    async def _check_read(self, scope, receive, request, principal, pairs, unsafe):
        path = scope["path"]
        if not principal.authenticated:
            accept = request.header(b"accept") or ""
            if scope["method"] == "GET" and not path.startswith("/api/") and "text/html" in accept:
                target = quote(path + ("?" + scope["query_string"].decode("latin-1") if scope.get("query_string")
                                       else ""), safe="")
                return (303, b"", [(b"location", f"/login?next={target}".encode())]), receive
            return _json(401, "authentication required: send Authorization: Bearer <read key>, or log in"), receive
        if principal.kind == "key" and principal.key.scope != "read":
            return _json(403, "a write key can only send events (/api/v1/batch)"), receive
        if principal.kind == "link" and unsafe and path not in READ_POSTS:
            return _json(403, "a shared link is read-only"), receive
        named = [v for k, v in pairs if k in SITE_PARAMS]
        known = self.auth.sites.views
        named += [seg for seg in path.split("/") if seg and (seg in known or seg in self.auth.sites.data_sites)]
        if unsafe:
            body, receive = await _buffer(receive, request)
            if body is None:
                return _json(413, f"body is larger than {MAX_BODY} bytes"), receive
            try:
                data = msgspec.json.decode(body) if body.strip() else None
            except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
                data = None
            if isinstance(data, dict):
                named += [data[k] for k in ("site_id", "site") if k in data]
        for site in named:
            name = str(site).strip().lower()
            if not principal.can_read(name):
                return _json(403, f"site_id: no access to site {name!r}"), receive
        return None, receive

    def _headers(self, send, path, principal, new_csrf, secure):
        embed = principal.kind == "link" and principal.link.embed
        extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]
        if path.startswith("/schema"):  # the API docs pages load their own scripts
            extra.append((b"content-security-policy", b"frame-ancestors 'none'"))
        else:
            extra.append((b"content-security-policy", (CSP + ("*" if embed else "'none'")).encode()))
        if not embed:
            extra.append((b"x-frame-options", b"DENY"))
        if new_csrf:
            cookie = f"{CSRF_COOKIE}={new_csrf}; Path=/; SameSite=Lax" + ("; Secure" if secure else "")
            extra.append((b"set-cookie", cookie.encode()))

        async def wrapped(message):
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                added = [(k, v) for k, v in extra if k not in present or k == b"set-cookie"]
                message = {**message, "headers": [*message.get("headers", []), *added]}
            await send(message)

        return wrapped


async def _buffer(receive, request):
    """Read the whole body (up to MAX_BODY) and give the app a receive that replays it."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None, receive
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay
