"""Users, roles, API keys and shared links in the DuckDB store (tables from migrations/004).

Plain functions over a connection, used by the server (through the
directory, which re-reads after every change) and by the CLI (while the
server is stopped: DuckDB allows one process per file). Secrets are only
ever stored hashed; a key's or link's token is returned once, at creation.
"""

from __future__ import annotations

import datetime as dt

from collector.auth import passwords, tokens

ROLES = ("owner", "admin", "viewer")
SCOPES = ("read", "write")
KEY_PREFIX = "strana_"


class AuthError(ValueError):
    """Bad input for a user, key or link; `key` names the field."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(value) -> str | None:
    """Timestamps are read as epoch seconds (`epoch(col)`): DuckDB's TIMESTAMPTZ objects would need pytz."""
    return dt.datetime.fromtimestamp(value, dt.UTC).isoformat() if value is not None else None


def _expiry(days) -> float | None:
    if days is None:
        return None
    if isinstance(days, bool) or not isinstance(days, int | float) or not 0 < days <= 36500:
        raise AuthError("expires_in_days", "must be a number of days from 1 to 36500")
    return (_now() + dt.timedelta(days=days)).timestamp()


# ---- server state ----

def state_get(con, name: str) -> str | None:
    row = con.execute("SELECT value FROM auth_state WHERE name = ?", [name]).fetchone()
    return row[0] if row else None


def state_set(con, name: str, value: str | None) -> None:
    if value is None:
        con.execute("DELETE FROM auth_state WHERE name = ?", [name])
    else:
        con.execute("INSERT INTO auth_state VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    [name, value])


def cookie_secret(con) -> bytes:
    secret = state_get(con, "cookie_secret")
    if secret is None:
        secret = tokens.new_token()
        state_set(con, "cookie_secret", secret)
    return secret.encode()


# ---- users ----

def _clean_email(email) -> str:
    if not isinstance(email, str) or "@" not in email or len(email) > 320 or email.strip() != email or not email:
        raise AuthError("email", "must be an e-mail address")
    return email.lower()


def create_user(con, email: str, password: str, *, owner: bool = False) -> str:
    email = _clean_email(email)
    problem = passwords.check_new(password)
    if problem:
        raise AuthError("password", problem)
    if con.execute("SELECT count(*) FROM users WHERE email = ?", [email]).fetchone()[0]:
        raise AuthError("email", "a user with this e-mail exists")
    user_id = tokens.new_id()
    con.execute("INSERT INTO users (id, email, password_hash, is_owner) VALUES (?, ?, ?, ?)",
                [user_id, email, passwords.hash_password(password), owner])
    return user_id


def owner_exists(con) -> bool:
    return bool(con.execute("SELECT count(*) FROM users WHERE is_owner").fetchone()[0])


def list_users(con) -> list[dict]:
    rows = con.execute("SELECT id, email, is_owner, totp_secret IS NOT NULL, epoch(created_at) FROM users "
                       "ORDER BY created_at").fetchall()
    roles: dict[str, dict] = {}
    for user_id, site, role in con.execute("SELECT user_id, site, role FROM memberships").fetchall():
        roles.setdefault(user_id, {})[site] = role
    return [{"id": r[0], "email": r[1], "owner": r[2], "totp": r[3], "created_at": _iso(r[4]),
             "roles": roles.get(r[0], {})} for r in rows]


def user_by_email(con, email: str) -> tuple | None:
    """(id, password_hash, totp_secret) or None."""
    return con.execute("SELECT id, password_hash, totp_secret FROM users WHERE email = ?",
                       [str(email).strip().lower()]).fetchone()


def set_password(con, user_id: str, password: str) -> None:
    problem = passwords.check_new(password)
    if problem:
        raise AuthError("password", problem)
    con.execute("UPDATE users SET password_hash = ?, session_epoch = session_epoch + 1 WHERE id = ?",
                [passwords.hash_password(password), user_id])


def bump_epoch(con, user_id: str) -> None:
    """Log out everywhere: every session made before this is refused."""
    con.execute("UPDATE users SET session_epoch = session_epoch + 1 WHERE id = ?", [user_id])


def set_totp(con, user_id: str, secret: str | None) -> None:
    con.execute("UPDATE users SET totp_secret = ? WHERE id = ?", [secret, user_id])


def delete_user(con, user_id: str) -> bool:
    found = con.execute("SELECT count(*) FROM users WHERE id = ?", [user_id]).fetchone()[0]
    con.execute("DELETE FROM memberships WHERE user_id = ?", [user_id])
    con.execute("DELETE FROM users WHERE id = ?", [user_id])
    return bool(found)


def set_role(con, user_id: str, site: str, role: str | None) -> None:
    if role is None:
        con.execute("DELETE FROM memberships WHERE user_id = ? AND site = ?", [user_id, site])
        return
    if role not in ROLES:
        raise AuthError("role", f"must be one of {', '.join(ROLES)}")
    if not con.execute("SELECT count(*) FROM users WHERE id = ?", [user_id]).fetchone()[0]:
        raise AuthError("user", "no such user")
    con.execute("INSERT INTO memberships VALUES (?, ?, ?) ON CONFLICT (user_id, site) DO UPDATE SET "
                "role = excluded.role", [user_id, site, role])


# ---- API keys ----

def create_key(con, site: str, scope: str, name: str = "", expires_in_days=None) -> tuple[str, str]:
    """(key id, the token): the token is shown once and stored only as its sha256."""
    if scope not in SCOPES:
        raise AuthError("scope", f"must be one of {', '.join(SCOPES)}")
    if not isinstance(name, str) or len(name) > 200:
        raise AuthError("name", "must be a string of at most 200 characters")
    token = tokens.new_token(KEY_PREFIX)
    key_id = tokens.new_id()
    con.execute("INSERT INTO api_keys (id, token_hash, site, scope, name, expires_at) "
                "VALUES (?, ?, ?, ?, ?, to_timestamp(?))",
                [key_id, tokens.token_hash(token), site, scope, name, _expiry(expires_in_days)])
    return key_id, token


def list_keys(con, site: str | None = None) -> list[dict]:
    rows = con.execute("SELECT id, site, scope, name, epoch(created_at), epoch(expires_at), epoch(revoked_at), "
                       "epoch(last_used_at) FROM api_keys "
                       "WHERE ? IS NULL OR site = ? ORDER BY created_at", [site, site]).fetchall()
    return [{"id": r[0], "site": r[1], "scope": r[2], "name": r[3], "created_at": _iso(r[4]),
             "expires_at": _iso(r[5]), "revoked_at": _iso(r[6]), "last_used_at": _iso(r[7])} for r in rows]


def revoke_key(con, key_id: str, site: str | None = None) -> bool:
    found = con.execute("SELECT count(*) FROM api_keys WHERE id = ? AND (? IS NULL OR site = ?) AND revoked_at IS NULL",
                        [key_id, site, site]).fetchone()[0]
    con.execute("UPDATE api_keys SET revoked_at = now() WHERE id = ? AND (? IS NULL OR site = ?) "
                "AND revoked_at IS NULL", [key_id, site, site])
    return bool(found)


def touch_keys(con, used: dict[str, float]) -> None:
    """Lazy last-used times: one UPDATE per key per flush, not per request."""
    for key_id, when in used.items():
        con.execute("UPDATE api_keys SET last_used_at = to_timestamp(?) WHERE id = ?", [when, key_id])


# ---- shared links ----

def create_link(con, site: str, name: str = "", password: str | None = None, embed: bool = False,
                expires_in_days=None) -> tuple[str, str]:
    if not isinstance(name, str) or len(name) > 200:
        raise AuthError("name", "must be a string of at most 200 characters")
    if password is not None:
        if embed:
            raise AuthError("password", "an embed link cannot have a password (it has no page to type it on)")
        problem = passwords.check_new(password)
        if problem:
            raise AuthError("password", problem)
    token = tokens.new_token()
    link_id = tokens.new_id()
    con.execute("INSERT INTO shared_links (id, token_hash, site, name, password_hash, embed, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?, to_timestamp(?))",
                [link_id, tokens.token_hash(token), site, name,
                 passwords.hash_password(password) if password else None, bool(embed), _expiry(expires_in_days)])
    return link_id, token


def list_links(con, site: str | None = None) -> list[dict]:
    rows = con.execute("SELECT id, site, name, password_hash IS NOT NULL, embed, epoch(created_at), epoch(expires_at), "
                       "epoch(revoked_at) "
                       "FROM shared_links WHERE ? IS NULL OR site = ? ORDER BY created_at", [site, site]).fetchall()
    return [{"id": r[0], "site": r[1], "name": r[2], "password": r[3], "embed": r[4], "created_at": _iso(r[5]),
             "expires_at": _iso(r[6]), "revoked_at": _iso(r[7])} for r in rows]


def revoke_link(con, link_id: str, site: str | None = None) -> bool:
    found = con.execute("SELECT count(*) FROM shared_links WHERE id = ? AND (? IS NULL OR site = ?) "
                        "AND revoked_at IS NULL", [link_id, site, site]).fetchone()[0]
    con.execute("UPDATE shared_links SET revoked_at = now() WHERE id = ? AND (? IS NULL OR site = ?) "
                "AND revoked_at IS NULL", [link_id, site, site])
    return bool(found)
