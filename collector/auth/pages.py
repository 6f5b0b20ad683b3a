"""The server-rendered pages: login, logout, first-owner setup, shared and embedded dashboard links.

Jinja2 templates beside this module, no inline scripts or styles (the CSP
forbids them), one stylesheet. Every form carries the double-submit CSRF
token (`_csrf`, checked against the `strana_csrf` cookie). Argon2 runs in a
worker thread so a login never stalls the event loop.
"""

from __future__ import annotations

import hmac
from pathlib import Path

import anyio
from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie

from collector.auth import passwords
from collector.auth.service import CSRF_COOKIE, LINK_COOKIE, SESSION_COOKIE
from collector.auth.store import AuthError
from collector.sources.http import Request as RawRequest

HERE = Path(__file__).resolve().parent / "templates"
ENV = Environment(loader=FileSystemLoader(HERE), autoescape=select_autoescape(["html"]))
DASHBOARD = "/{site}"  # where a shared link lands: the dashboard's page for one site
CSS = (HERE / "auth.css").read_bytes()


def _page(request: Request, template: str, status: int = 200, **context) -> Response:
    html = ENV.get_template(template).render(csrf=request.scope.get("strana.csrf", ""), **context)
    return Response(html, status_code=status, media_type="text/html",
                    headers={"cache-control": "no-store"})


def _csrf_ok(request: Request, form) -> bool:
    sent = str(form.get("_csrf") or "")
    cookie = request.cookies.get(CSRF_COOKIE) or ""
    return bool(sent) and hmac.compare_digest(sent.encode(), cookie.encode())


def _next(value) -> str:
    value = str(value or "/")
    return value if value.startswith("/") and not value.startswith("//") and "\\" not in value else "/"


def _raw(request: Request) -> RawRequest:
    return RawRequest(request.scope, None)


def _cookie(request: Request, key: str, value: str, max_age: int | None) -> Cookie:
    return Cookie(key=key, value=value, path="/", httponly=True, samesite="lax", max_age=max_age,
                  secure=request.scope["strana.auth"].secure(_raw(request)))


@get("/auth/static/auth.css", include_in_schema=False, sync_to_thread=False)
def stylesheet() -> Response:
    return Response(CSS, media_type="text/css", headers={"cache-control": "public, max-age=3600"})


@get("/login", include_in_schema=False, sync_to_thread=False)
def login_page(request: Request, next: str = "/") -> Response:
    principal = request.scope["strana.principal"]
    if principal.kind == "user":
        return _page(request, "message.html", title="Strana", user=principal.user.email)
    return _page(request, "login.html", title="Log in", next=_next(next), email="")


@post("/login", include_in_schema=False)
async def login_submit(request: Request) -> Response:
    auth = request.scope["strana.auth"]
    form = await request.form()
    email, target = str(form.get("email") or ""), _next(form.get("next"))
    if not _csrf_ok(request, form):
        return _page(request, "login.html", 403, title="Log in", next=target, email=email,
                     error="The form expired. Please try again.")
    user, message, wait = await anyio.to_thread.run_sync(
        auth.login, _raw(request), email, str(form.get("password") or ""), str(form.get("code") or ""))
    if user is None:
        response = _page(request, "login.html", 429 if wait else 401, title="Log in", next=target, email=email,
                         error=message)
        if wait:
            response.headers["retry-after"] = str(max(1, int(wait)))
        return response
    return Response(b"", status_code=303, headers={"location": target},
                    cookies=[_cookie(request, SESSION_COOKIE, auth.session_value(user), auth.session_seconds)])


@post("/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    form = await request.form()
    if not _csrf_ok(request, form):
        return _page(request, "message.html", 403, title="Log out", error="The form expired. Please try again.")
    principal = request.scope["strana.principal"]
    if form.get("everywhere") and principal.kind == "user":
        from collector.auth import store

        await anyio.to_thread.run_sync(request.scope["strana.auth"].directory.write, store.bump_epoch,
                                       principal.user.id)
    return Response(b"", status_code=303, headers={"location": "/login"},
                    cookies=[_cookie(request, SESSION_COOKIE, "", 0), _cookie(request, LINK_COOKIE, "", 0)])


@get("/setup/{token:str}", include_in_schema=False, sync_to_thread=False)
def setup_page(request: Request, token: str) -> Response:
    if not request.scope["strana.auth"].setup_valid(token):
        return _page(request, "message.html", 404, title="Setup link not valid",
                     error="This setup link was used already or is out of date. See the server log for a fresh one, "
                           "or run `strana users create-owner`.")
    return _page(request, "setup.html", title="Welcome to Strana", token=token, email="")


@post("/setup/{token:str}", include_in_schema=False)
async def setup_submit(request: Request, token: str) -> Response:
    auth = request.scope["strana.auth"]
    form = await request.form()
    email = str(form.get("email") or "")
    if not await anyio.to_thread.run_sync(auth.setup_valid, token):
        return _page(request, "message.html", 404, title="Setup link not valid", error="This setup link is not valid.")
    if not _csrf_ok(request, form):
        return _page(request, "setup.html", 403, title="Welcome to Strana", token=token, email=email,
                     error="The form expired. Please try again.")
    try:
        user = await anyio.to_thread.run_sync(auth.create_owner, email, str(form.get("password") or ""))
    except AuthError as exc:
        return _page(request, "setup.html", 422, title="Welcome to Strana", token=token, email=email, error=str(exc))
    return Response(b"", status_code=303, headers={"location": "/"},
                    cookies=[_cookie(request, SESSION_COOKIE, auth.session_value(user), auth.session_seconds)])


def _link(request: Request, token: str):
    return request.scope["strana.auth"].directory.link(token)


@get("/share/{token:str}", include_in_schema=False, sync_to_thread=False)
def share_page(request: Request, token: str) -> Response:
    link = _link(request, token)
    if link is None:
        return _page(request, "message.html", 404, title="Link not valid",
                     error="This link does not exist, has expired or was revoked.")
    if link.password_hash is not None:
        return _page(request, "share.html", title="This dashboard is password protected", token=token)
    auth = request.scope["strana.auth"]
    return Response(b"", status_code=303, headers={"location": DASHBOARD.format(site=link.site)},
                    cookies=[_cookie(request, LINK_COOKIE, auth.link_value(link), 86400)])


@post("/share/{token:str}", include_in_schema=False)
async def share_submit(request: Request, token: str) -> Response:
    auth = request.scope["strana.auth"]
    form = await request.form()
    link = _link(request, token)
    if link is None:
        return _page(request, "message.html", 404, title="Link not valid", error="This link is not valid.")
    raw = _raw(request)
    wait = auth.throttle.wait("ip:" + auth.client_ip(raw), "link:" + link.id)
    if wait:
        return _page(request, "share.html", 429, title="Too many attempts", token=token,
                     error="Too many wrong passwords. Wait a few minutes and try again.")
    ok = _csrf_ok(request, form) and await anyio.to_thread.run_sync(
        passwords.verify, link.password_hash, str(form.get("password") or ""))
    if not ok:
        auth.throttle.fail("ip:" + auth.client_ip(raw), "link:" + link.id)
        return _page(request, "share.html", 401, title="This dashboard is password protected", token=token,
                     error="Wrong password.")
    return Response(b"", status_code=303, headers={"location": DASHBOARD.format(site=link.site)},
                    cookies=[_cookie(request, LINK_COOKIE, auth.link_value(link), 86400)])


@get("/embed/{token:str}", include_in_schema=False, sync_to_thread=False)
def embed_page(request: Request, token: str) -> Response:
    """An embed link opens the dashboard with the token in the URL (`?auth=`): iframes often get no cookies."""
    link = _link(request, token)
    if link is None or not link.embed:
        return _page(request, "message.html", 404, title="Link not valid", error="This embed link is not valid.")
    return Response(b"", status_code=303, headers={"location": DASHBOARD.format(site=link.site) +
                                                   f"?auth={token}&embed=true"})


ROUTES = [stylesheet, login_page, login_submit, logout, setup_page, setup_submit, share_page, share_submit,
          embed_page]
