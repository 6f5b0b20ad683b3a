"""The in-memory copy of users, roles, keys and links: no DB read per request.

`reload()` re-reads the few small tables after every change made through
the server (the CLI only writes while the server is stopped). A key's
last-used time is kept in memory and written by `flush()` every minute and
at shutdown, so using a key never costs a write.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from collector.auth import store, tokens

log = logging.getLogger("strana.auth")


@dataclass(frozen=True)
class UserInfo:
    id: str
    email: str
    password_hash: str
    totp_secret: str | None
    is_owner: bool
    epoch: int
    roles: dict = field(default_factory=dict)


@dataclass(frozen=True)
class KeyInfo:
    id: str
    site: str
    scope: str
    expires_at: float | None
    revoked: bool

    def usable(self, now: float) -> bool:
        return not self.revoked and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True)
class LinkInfo:
    id: str
    site: str
    password_hash: str | None
    embed: bool
    expires_at: float | None
    revoked: bool

    def usable(self, now: float) -> bool:
        return not self.revoked and (self.expires_at is None or now < self.expires_at)


def _ts(value) -> float | None:
    return float(value) if value is not None else None


class Directory:
    def __init__(self, connect):
        self.connect = connect  # () -> a DuckDB cursor on the store
        self.users: dict[str, UserInfo] = {}
        self.by_email: dict[str, UserInfo] = {}
        self.keys: dict[str, KeyInfo] = {}  # by token hash
        self.links: dict[str, LinkInfo] = {}  # by token hash
        self.links_by_id: dict[str, LinkInfo] = {}
        self.owner_exists = False
        self.used: dict[str, float] = {}
        self._write_lock = threading.Lock()
        con = connect()
        try:
            self.signer = tokens.Signer(store.cookie_secret(con))
        finally:
            con.close()

    def reload(self) -> None:
        con = self.connect()
        try:
            roles: dict[str, dict] = {}
            for user_id, site, role in con.execute("SELECT user_id, site, role FROM memberships").fetchall():
                roles.setdefault(user_id, {})[site] = role
            users = {r[0]: UserInfo(r[0], r[1], r[2], r[3], r[4], r[5], roles.get(r[0], {})) for r in con.execute(
                "SELECT id, email, password_hash, totp_secret, is_owner, session_epoch FROM users").fetchall()}
            keys = {r[0]: KeyInfo(r[1], r[2], r[3], _ts(r[4]), r[5]) for r in con.execute(
                "SELECT token_hash, id, site, scope, epoch(expires_at), revoked_at IS NOT NULL FROM api_keys"
            ).fetchall()}
            links = {r[0]: LinkInfo(r[1], r[2], r[3], r[4], _ts(r[5]), r[6]) for r in con.execute(
                "SELECT token_hash, id, site, password_hash, embed, epoch(expires_at), revoked_at IS NOT NULL "
                "FROM shared_links"
            ).fetchall()}
        finally:
            con.close()
        self.users, self.keys, self.links = users, keys, links
        self.by_email = {u.email: u for u in users.values()}
        self.links_by_id = {link.id: link for link in links.values()}
        self.owner_exists = any(u.is_owner for u in users.values())

    def write(self, fn, *args, **kwargs):
        """Run `fn(con, ...)` on the store, then reload; returns what fn returned."""
        with self._write_lock:
            con = self.connect()
            try:
                result = fn(con, *args, **kwargs)
            finally:
                con.close()
            self.reload()
        return result

    def key(self, token: str) -> KeyInfo | None:
        info = self.keys.get(tokens.token_hash(token))
        now = time.time()
        if info is None or not info.usable(now):
            return None
        self.used[info.id] = now
        return info

    def link(self, token: str) -> LinkInfo | None:
        info = self.links.get(tokens.token_hash(token))
        return info if info is not None and info.usable(time.time()) else None

    def flush(self) -> None:
        used, self.used = self.used, {}
        if not used:
            return
        try:
            con = self.connect()
            try:
                store.touch_keys(con, used)
            finally:
                con.close()
        except Exception:  # last-used times are a convenience; never let them fail a request or a shutdown
            log.exception("could not store API keys' last-used times")
