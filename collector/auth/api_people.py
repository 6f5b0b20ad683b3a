"""JSON routes for people: the owner manages users; everyone manages their own password, TOTP and sessions.

`/api/v1/users` (owner only) and `/api/v1/me` (the logged-in person).
TOTP is set up in two steps so a typo cannot lock anyone out: `POST
/api/v1/me/totp` returns a new secret and its otpauth:// URI, and `POST
/api/v1/me/totp/confirm` with that secret and a current code turns it on.
Changing the password and "log out everywhere" bump the session epoch.
"""

from __future__ import annotations

import msgspec
import pyotp
from litestar import Request, Response, delete, get, post

from collector.auth import passwords, store
from collector.auth.api_sites import OPTS, Denied, error, guarded


class UserCreate(msgspec.Struct, forbid_unknown_fields=True):
    email: str
    password: str
    owner: bool = False


class PasswordChange(msgspec.Struct, forbid_unknown_fields=True):
    current: str
    new: str


class TotpConfirm(msgspec.Struct, forbid_unknown_fields=True):
    secret: str
    code: str


class TotpDisable(msgspec.Struct, forbid_unknown_fields=True):
    password: str


def _owner(request: Request):
    auth, principal = request.scope["strana.auth"], request.scope["strana.principal"]
    if not principal.is_owner:
        raise Denied(403, "only the owner manages people")
    return auth


def _me(request: Request):
    auth, principal = request.scope["strana.auth"], request.scope["strana.principal"]
    if principal.kind != "user":
        raise Denied(400, "no one is logged in (local mode): log in to manage your account")
    return auth, principal.user


@get("/api/v1/users", sync_to_thread=True, summary="Everyone with an account (owner)", **OPTS)
@guarded
def users_list(request: Request) -> list[dict]:
    return _owner(request).directory.write(store.list_users)


@post("/api/v1/users", sync_to_thread=True, summary="Create an account (owner); give it roles with PUT "
      "/api/v1/sites/{domain}/members", **OPTS)
@guarded
def users_create(request: Request, data: UserCreate) -> Response:
    auth = _owner(request)
    user_id = auth.directory.write(store.create_user, data.email, data.password, owner=data.owner)
    return Response({"id": user_id, "email": data.email.lower(), "owner": data.owner}, status_code=201)


@delete("/api/v1/users/{user_id:str}", sync_to_thread=True, status_code=200, summary="Delete an account (owner)",
        **OPTS)
@guarded
def users_delete(request: Request, user_id: str) -> Response:
    auth = _owner(request)
    principal = request.scope["strana.principal"]
    if principal.kind == "user" and principal.user.id == user_id:
        return error(409, "you cannot delete your own account")
    if not auth.directory.write(store.delete_user, user_id):
        return error(404, f"no user {user_id!r}")
    return Response({"deleted": user_id})


@get("/api/v1/me", sync_to_thread=False, summary="Who you are, and the CSRF token for changes", **OPTS)
def me(request: Request) -> dict:
    principal = request.scope["strana.principal"]
    return {**principal.describe(), "csrf_token": request.scope.get("strana.csrf")}


@post("/api/v1/me/logout-everywhere", sync_to_thread=True, status_code=200, summary="End all your sessions", **OPTS)
@guarded
def logout_everywhere(request: Request) -> dict:
    auth, user = _me(request)
    auth.directory.write(store.bump_epoch, user.id)
    return {"ok": True}


@post("/api/v1/me/password", sync_to_thread=True, status_code=200, summary="Change your password (ends all "
      "sessions)", **OPTS)
@guarded
def change_password(request: Request, data: PasswordChange) -> dict:
    auth, user = _me(request)
    if not passwords.verify(user.password_hash, data.current):
        raise Denied(403, "current: wrong password")
    auth.directory.write(store.set_password, user.id, data.new)
    return {"ok": True, "note": "log in again"}


@post("/api/v1/me/totp", sync_to_thread=False, status_code=200, summary="Start setting up a second factor", **OPTS)
@guarded
def totp_begin(request: Request) -> dict:
    _, user = _me(request)
    secret = pyotp.random_base32()
    return {"secret": secret, "uri": pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name="Strana")}


@post("/api/v1/me/totp/confirm", sync_to_thread=True, status_code=200, summary="Turn the second factor on", **OPTS)
@guarded
def totp_confirm(request: Request, data: TotpConfirm) -> dict:
    auth, user = _me(request)
    try:
        ok = len(data.secret) >= 16 and pyotp.TOTP(data.secret).verify(data.code.strip(), valid_window=1)
    except (ValueError, TypeError):  # not base32
        ok = False
    if not ok:
        raise Denied(422, "code: does not match the secret (check the device's clock)")
    auth.directory.write(store.set_totp, user.id, data.secret)
    return {"totp": True}


@post("/api/v1/me/totp/disable", sync_to_thread=True, status_code=200, summary="Turn the second factor off", **OPTS)
@guarded
def totp_disable(request: Request, data: TotpDisable) -> dict:
    auth, user = _me(request)
    if not passwords.verify(user.password_hash, data.password):
        raise Denied(403, "password: wrong password")
    auth.directory.write(store.set_totp, user.id, None)
    return {"totp": False}


ROUTES = [users_list, users_create, users_delete, me, logout_everywhere, change_password, totp_begin, totp_confirm,
          totp_disable]
