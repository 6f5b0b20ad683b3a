"""The auth facade the gate, the pages and the API share: sessions, login, setup link, who is asking.

Sessions are signed cookies `{user, epoch, expiry}`: "log out everywhere"
bumps the user's epoch, which refuses every cookie made before. The setup
link is made at start while no owner exists: a fresh random token (only its
hash is stored), printed to the log; using it once creates the owner.
Whether a request must be authenticated (`[auth] required = auto`): once an
owner exists, or when the server listens on a non-loopback address, or when
the request came through a proxy (it carries forwarding headers).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from http.cookies import SimpleCookie

import pyotp

from collector.auth import passwords, store, tokens
from collector.auth.access import Principal
from collector.auth.directory import Directory
from collector.auth.throttle import LoginThrottle
from collector.sources.http import Request, client_address, parse_networks

log = logging.getLogger("strana.auth")

SESSION_COOKIE = "strana_session"
LINK_COOKIE = "strana_link"
CSRF_COOKIE = "strana_csrf"
PROXY_HEADERS = (b"x-forwarded-for", b"forwarded", b"x-real-ip", b"x-forwarded-proto")


def _loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cookies_of(request: Request) -> dict[str, str]:
    raw = request.header(b"cookie")
    if not raw:
        return {}
    jar = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # a malformed Cookie header is the client's problem: treat it as no cookies
        return {}
    return {k: m.value for k, m in jar.items()}


class Auth:
    def __init__(self, settings, connect, sites):
        self.settings = settings
        self.sites = sites  # collector.site_registry.SiteRegistry
        self.directory = Directory(connect)
        self.directory.reload()
        self.throttle = LoginThrottle(settings.get("auth", "login_attempts"))
        self.trusted = parse_networks(settings.server.trusted_proxies)
        self.session_seconds = int(settings.get("auth", "session_hours")) * 3600
        mode = settings.get("auth", "required")
        self.mode = mode
        self.public_host = not _loopback(str(settings.server.host))
        self._totp_used: dict[str, str] = {}

    # ---- policy ----
    def required(self, request: Request) -> bool:
        if self.mode == "true":
            return True
        if self.mode == "false":
            return False
        if self.directory.owner_exists or self.public_host:
            return True
        return any(request.header(h) is not None for h in PROXY_HEADERS)

    def secure(self, request: Request) -> bool:
        """Cookies get `Secure` over HTTPS, or behind a trusted proxy that says the client used HTTPS."""
        if request.scope.get("scheme") == "https":
            return True
        client = request.scope.get("client")
        if self._peer_trusted(client[0] if client else None):
            proto = (request.header(b"x-forwarded-proto") or "").split(",")[0].strip().lower()
            return proto == "https"
        return False

    def _peer_trusted(self, peer: str | None) -> bool:
        if not peer or not self.trusted:
            return False
        try:
            addr = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(addr in net for net in self.trusted)

    def client_ip(self, request: Request) -> str:
        return client_address(request, self.trusted) or "-"

    # ---- who is asking ----
    def principal(self, request: Request, cookies: dict[str, str], query: dict[str, str]) -> Principal:
        auth = request.header(b"authorization") or ""
        if auth[:7].lower() == "bearer ":
            key = self.directory.key(auth[7:].strip())
            return Principal("key", key=key) if key else Principal("invalid")
        link_token = query.get("auth") or request.header(b"x-strana-link")
        if link_token:
            link = self.directory.link(link_token)
            if link is None or link.password_hash is not None:
                return Principal("invalid")  # password-protected links go through /share and its cookie
            return Principal("link", link=link)
        user = self.session_user(cookies.get(SESSION_COOKIE))
        if user is not None:
            return Principal("user", user=user, via_cookie=True)
        link_data = self.directory.signer.unsign(cookies.get(LINK_COOKIE), "link")
        if link_data and link_data.get("x", 0) > time.time():
            link = self.directory.links_by_id.get(link_data.get("l"))
            if link is not None and link.usable(time.time()):
                return Principal("link", link=link, via_cookie=True)
        if not self.required(request):
            return Principal("local", via_cookie=True)
        return Principal("anonymous")

    def session_user(self, value: str | None):
        data = self.directory.signer.unsign(value, "session")
        if not data or data.get("x", 0) < time.time():
            return None
        user = self.directory.users.get(data.get("u"))
        if user is None or user.epoch != data.get("e"):
            return None
        return user

    def session_value(self, user) -> str:
        return self.directory.signer.sign({"u": user.id, "e": user.epoch, "x": int(time.time()) +
                                           self.session_seconds, "n": tokens.new_id()}, "session")

    def link_value(self, link) -> str:
        return self.directory.signer.sign({"l": link.id, "x": int(time.time()) + 86400}, "link")

    # ---- login ----
    def login(self, request: Request, email: str, password: str, code: str) -> tuple[object, str, float]:
        """(user or None, message, retry-after seconds)."""
        email = (email or "").strip().lower()[:320]
        ip_key, acct_key = "ip:" + self.client_ip(request), "acct:" + email
        wait = self.throttle.wait(ip_key, acct_key)
        if wait:
            return None, "Too many failed attempts. Wait a few minutes and try again.", wait
        user = self.directory.by_email.get(email)
        ok = passwords.verify(user.password_hash if user else None, password or "")
        if ok and user.totp_secret:
            code = (code or "").strip().replace(" ", "")
            ok = pyotp.TOTP(user.totp_secret).verify(code, valid_window=1) and self._totp_used.get(user.id) != code
            if ok:
                self._totp_used[user.id] = code  # a code works once
            elif not code:
                self.throttle.fail(ip_key, acct_key)
                return None, "Enter the 6-digit code from your authenticator app.", 0.0
        if not ok:
            self.throttle.fail(ip_key, acct_key)
            return None, "Wrong e-mail, password or code.", 0.0
        self.throttle.clear(acct_key)
        return user, "", 0.0

    # ---- first owner ----
    def setup_link(self) -> str | None:
        """Start: while there is no owner, make a one-time setup token and log its link."""
        if self.directory.owner_exists:
            return None
        token = tokens.new_token()
        self.directory.write(store.state_set, "setup_token", tokens.token_hash(token))
        base = self.settings.get("auth", "public_url") or \
            f"http://{self.settings.server.host}:{self.settings.server.port}"
        url = f"{base.rstrip('/')}/setup/{token}"
        log.warning("strana: no owner yet. Create one at %s (one-time link), or run `strana users create-owner`",
                    url)
        return url

    def setup_valid(self, token: str) -> bool:
        con = self.directory.connect()
        try:
            stored = store.state_get(con, "setup_token")
        finally:
            con.close()
        return bool(stored) and not self.directory.owner_exists and hmac.compare_digest(stored,
                                                                                        tokens.token_hash(token))

    def create_owner(self, email: str, password: str) -> object:
        def make(con):
            if store.owner_exists(con):
                raise store.AuthError("setup", "an owner exists already")
            user_id = store.create_user(con, email, password, owner=True)
            store.state_set(con, "setup_token", None)
            return user_id

        user_id = self.directory.write(make)
        log.info("strana: owner %s created; the setup link no longer works", email)
        return self.directory.users[user_id]
