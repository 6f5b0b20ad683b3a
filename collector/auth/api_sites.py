"""JSON routes for the dashboard's settings: sites, their API keys, shared links and members.

`/api/v1/sites[/{domain}[/keys|/links|/members]]`. The gate lets only
logged-in people (or local mode) through; each handler checks the role on
the site: viewers read, admins change settings, keys and links, the owner
adds and removes sites and members. A key's or link's token is in the
creation answer only. Every change reloads the in-memory registries.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, delete, get, patch, post, put
from litestar.exceptions import HTTPException

from collector import sites as site_rows
from collector.auth import store
from collector.auth.store import AuthError


class SiteCreate(msgspec.Struct, forbid_unknown_fields=True):
    domain: str
    settings: dict[str, Any] = {}


class KeyCreate(msgspec.Struct, forbid_unknown_fields=True):
    scope: str
    name: str = ""
    expires_in_days: int | None = None


class LinkCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: str = ""
    password: str | None = None
    embed: bool = False
    expires_in_days: int | None = None


class MemberPut(msgspec.Struct, forbid_unknown_fields=True):
    email: str
    role: str


def error(status: int, message: str) -> Response:
    return Response({"error": message}, status_code=status)


class Denied(HTTPException):
    """A 4xx with a plain message: `{"error": message}`."""

    def __init__(self, status: int, message: str):
        super().__init__(status_code=status, detail=message)
        self.message = message


def on_http_error(_: Request, exc: HTTPException) -> Response:
    if isinstance(exc, Denied):
        return error(exc.status_code, exc.message)
    extra = exc.extra if isinstance(exc.extra, list) and exc.extra and isinstance(exc.extra[0], dict) else None
    if extra:
        return error(exc.status_code, f"{extra[0].get('key') or 'body'}: {extra[0].get('message', exc.detail)}")
    return error(exc.status_code, f"body: {exc.detail}")


HANDLERS = {HTTPException: on_http_error}
OPTS = {"exception_handlers": HANDLERS, "tags": ["sites, people and keys"]}


def _ctx(request: Request):
    return request.scope["strana.auth"], request.scope["strana.principal"]


def _site(request: Request, domain: str, need: str) -> str:
    """The cleaned domain, if it exists and the principal has `need` (read/admin/owner) on it."""
    auth, principal = _ctx(request)
    try:
        domain = site_rows.clean_domain(domain)
    except site_rows.SiteError as exc:
        raise Denied(400, str(exc)) from None
    allowed = {"read": principal.can_read, "admin": principal.can_admin,
               "owner": lambda _: principal.is_owner}[need](domain)
    if domain not in auth.sites.views:
        raise Denied(404 if principal.can_read(domain) or principal.is_owner else 403, f"no site {domain!r}")
    if not allowed:
        raise Denied(403, f"your role on {domain!r} does not allow this")
    return domain


def guarded(fn):
    """Turn SiteError / AuthError (bad input found by the store layer) into 422 answers."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (site_rows.SiteError, AuthError) as exc:
            raise Denied(422, str(exc)) from None

    return wrapper


def _view(auth, principal, domain: str) -> dict:
    view = auth.sites.views[domain]
    return {"domain": domain, "origin": view.origin, "settings": view.config, "role": principal.role(domain)}


@get("/api/v1/sites", sync_to_thread=False, summary="Sites you can see", **OPTS)
def sites_list(request: Request) -> list[dict]:
    auth, principal = _ctx(request)
    return [_view(auth, principal, d) for d in auth.sites.domains() if principal.can_read(d)]


@post("/api/v1/sites", sync_to_thread=True, summary="Add a site (owner)", **OPTS)
@guarded
def sites_add(request: Request, data: SiteCreate) -> Response:
    auth, principal = _ctx(request)
    if not principal.is_owner:
        return error(403, "only the owner adds sites")
    domain = site_rows.clean_domain(data.domain)
    if domain in auth.sites.views and auth.sites.views[domain].origin != "auto":
        return error(409, f"site {domain!r} exists; change it with PATCH /api/v1/sites/{domain}")
    auth.directory.write(site_rows.put_site, domain, site_rows.validate(data.settings))
    auth.sites.reload()
    return Response(_view(auth, principal, domain), status_code=201)


@get("/api/v1/sites/{domain:str}", sync_to_thread=False, summary="One site's settings", **OPTS)
@guarded
def sites_get(request: Request, domain: str) -> dict:
    auth, principal = _ctx(request)
    return _view(auth, principal, _site(request, domain, "read"))


@patch("/api/v1/sites/{domain:str}", sync_to_thread=True, summary="Change a site's settings (admin)", **OPTS)
@guarded
def sites_patch(request: Request, domain: str, data: dict[str, Any]) -> dict:
    auth, principal = _ctx(request)
    domain = _site(request, domain, "admin")

    def change(con):
        row = site_rows.get_site(con, domain)
        return site_rows.put_site(con, domain, site_rows.validate(data, row["settings"] if row else {}))

    auth.directory.write(change)
    auth.sites.reload()
    return _view(auth, principal, domain)


@delete("/api/v1/sites/{domain:str}", sync_to_thread=True, status_code=200, summary="Remove a site (owner)", **OPTS)
@guarded
def sites_remove(request: Request, domain: str) -> dict:
    auth, _ = _ctx(request)
    domain = _site(request, domain, "owner")
    removed = auth.directory.write(site_rows.remove_site, domain)
    auth.sites.reload()
    note = "" if domain not in auth.sites.views else " (it is still configured in the settings file)"
    return {"removed": removed, "domain": domain, "note": note.strip()}


@get("/api/v1/sites/{domain:str}/keys", sync_to_thread=True, summary="A site's API keys (admin)", **OPTS)
@guarded
def keys_list(request: Request, domain: str) -> list[dict]:
    auth, _ = _ctx(request)
    domain = _site(request, domain, "admin")
    auth.directory.flush()
    return auth.directory.write(store.list_keys, domain)


@post("/api/v1/sites/{domain:str}/keys", sync_to_thread=True, summary="Create an API key; its token is shown once",
      **OPTS)
@guarded
def keys_create(request: Request, domain: str, data: KeyCreate) -> Response:
    auth, _ = _ctx(request)
    domain = _site(request, domain, "admin")
    key_id, token = auth.directory.write(store.create_key, domain, data.scope, data.name, data.expires_in_days)
    return Response({"id": key_id, "key": token, "site": domain, "scope": data.scope,
                     "note": "shown once: store it now"}, status_code=201)


@delete("/api/v1/sites/{domain:str}/keys/{key_id:str}", sync_to_thread=True, status_code=200,
        summary="Revoke an API key", **OPTS)
@guarded
def keys_revoke(request: Request, domain: str, key_id: str) -> Response:
    auth, _ = _ctx(request)
    domain = _site(request, domain, "admin")
    if not auth.directory.write(store.revoke_key, key_id, domain):
        return error(404, f"no active key {key_id!r} on {domain!r}")
    return Response({"revoked": key_id})


@get("/api/v1/sites/{domain:str}/links", sync_to_thread=True, summary="A site's shared links (admin)", **OPTS)
@guarded
def links_list(request: Request, domain: str) -> list[dict]:
    auth, _ = _ctx(request)
    return auth.directory.write(store.list_links, _site(request, domain, "admin"))


@post("/api/v1/sites/{domain:str}/links", sync_to_thread=True, summary="Create a shared (or embed) link", **OPTS)
@guarded
def links_create(request: Request, domain: str, data: LinkCreate) -> Response:
    auth, _ = _ctx(request)
    domain = _site(request, domain, "admin")
    link_id, token = auth.directory.write(store.create_link, domain, data.name, data.password, data.embed,
                                          data.expires_in_days)
    path = f"/embed/{token}" if data.embed else f"/share/{token}"
    return Response({"id": link_id, "token": token, "path": path, "site": domain, "embed": data.embed},
                    status_code=201)


@delete("/api/v1/sites/{domain:str}/links/{link_id:str}", sync_to_thread=True, status_code=200,
        summary="Revoke a shared link", **OPTS)
@guarded
def links_revoke(request: Request, domain: str, link_id: str) -> Response:
    auth, _ = _ctx(request)
    domain = _site(request, domain, "admin")
    if not auth.directory.write(store.revoke_link, link_id, domain):
        return error(404, f"no active link {link_id!r} on {domain!r}")
    return Response({"revoked": link_id})


@get("/api/v1/sites/{domain:str}/members", sync_to_thread=False, summary="Who has a role on a site (admin)", **OPTS)
@guarded
def members_list(request: Request, domain: str) -> list[dict]:
    auth, _ = _ctx(request)
    domain = _site(request, domain, "admin")
    return [{"id": u.id, "email": u.email, "role": "owner" if u.is_owner else u.roles.get(domain)}
            for u in auth.directory.users.values() if u.is_owner or domain in u.roles]


@put("/api/v1/sites/{domain:str}/members", sync_to_thread=True, summary="Give a person a role on a site (owner)",
     **OPTS)
@guarded
def members_put(request: Request, domain: str, data: MemberPut) -> dict:
    auth, _ = _ctx(request)
    domain = _site(request, domain, "owner")
    user = auth.directory.by_email.get(data.email.strip().lower())
    if user is None:
        raise Denied(404, f"no user {data.email!r}: create them with POST /api/v1/users")
    if data.role not in ("admin", "viewer"):
        raise Denied(422, "role: must be admin or viewer (owners see every site)")
    auth.directory.write(store.set_role, user.id, domain, data.role)
    return {"id": user.id, "email": user.email, "site": domain, "role": data.role}


@delete("/api/v1/sites/{domain:str}/members/{user_id:str}", sync_to_thread=True, status_code=200,
        summary="Take a person's role on a site away (owner)", **OPTS)
@guarded
def members_remove(request: Request, domain: str, user_id: str) -> dict:
    auth, _ = _ctx(request)
    domain = _site(request, domain, "owner")
    auth.directory.write(store.set_role, user_id, domain, None)
    return {"id": user_id, "site": domain, "role": None}


ROUTES = [sites_list, sites_add, sites_get, sites_patch, sites_remove, keys_list, keys_create, keys_revoke,
          links_list, links_create, links_revoke, members_list, members_put, members_remove]
