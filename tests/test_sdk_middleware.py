"""Pageview middleware on real apps served on loopback: Litestar under Granian (ASGI), a plain WSGI app
under wsgiref, and Django when it is installed. The SDK sends through a recording proxy to a real collector.

Each test ends with a "sentinel" page: the sender is first-in first-out, so once the sentinel's pageview
has reached the collector, any page that should have been skipped would have arrived before it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx
import pytest
import strana_sdk
from conftest import free_port
from strana_sdk.middleware import StranaWSGIMiddleware
from test_sdk_support import FIREFOX, SAFARI, FlakyProxy, wait_for

GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

LITESTAR_APP = textwrap.dedent("""
    import os
    from litestar import Litestar, MediaType, Response, get
    from litestar.middleware import DefineMiddleware
    from strana_sdk import AsyncClient
    from strana_sdk.middleware import StranaASGIMiddleware

    client = AsyncClient(os.environ["TEST_STRANA_URL"], site="example.com", flush_interval=0.05)

    @get("/", media_type=MediaType.HTML)
    async def home() -> str:
        return "<h1>home</h1>"

    @get("/about", media_type=MediaType.HTML)
    async def about() -> str:
        return "<h1>about</h1>"

    @get("/api/data")
    async def data() -> dict:
        return {"json": True}

    @get("/static/app.css", media_type="text/css")
    async def css() -> str:
        return "body {}"

    @get("/healthz", media_type=MediaType.HTML)
    async def health() -> str:
        return "ok"

    @get("/gone", media_type=MediaType.HTML)
    async def gone() -> Response:
        return Response("<h1>not here</h1>", status_code=404, media_type=MediaType.HTML)

    async def stop() -> None:
        await client.shutdown(timeout=5)

    app = Litestar(
        route_handlers=[home, about, data, css, health, gone],
        middleware=[DefineMiddleware(StranaASGIMiddleware, client=client, trusted_proxies=["127.0.0.1"])],
        on_shutdown=[stop],
    )
""")


def pageviews(proxy: FlakyProxy) -> list[dict]:
    return [e for e in proxy.events() if e["n"] == "pageview"]


def sentinel_arrived(proxy: FlakyProxy):
    return any("sentinel" in e["u"] for e in pageviews(proxy))


def test_asgi_middleware_on_litestar_under_granian(server, tmp_path):
    (tmp_path / "strana_test_app.py").write_text(LITESTAR_APP)
    port = free_port()
    with FlakyProxy(server.url) as proxy:
        env = {**os.environ, "TEST_STRANA_URL": proxy.url, "PYTHONPATH": str(tmp_path)}
        log = open(tmp_path / "granian.log", "wb")
        app = subprocess.Popen([sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
                                "--port", str(port), "--workers", "1", "strana_test_app:app"], cwd=tmp_path, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            base = f"http://127.0.0.1:{port}"

            def up():
                try:
                    return httpx.get(base + "/healthz", timeout=1).status_code == 200
                except httpx.HTTPError:
                    assert app.poll() is None, (tmp_path / "granian.log").read_text()
                    return False

            wait_for(up, what="the Litestar app under Granian")
            with httpx.Client(base_url=base, timeout=10) as c:
                # counted: a page, with the visitor's address from X-Forwarded-For (the peer is trusted)
                assert c.get("/", headers={"user-agent": FIREFOX, "referer": "https://news.ycombinator.com/",
                                           "x-forwarded-for": "198.51.100.7"}).status_code == 200
                assert c.get("/about?utm_source=newsletter", headers={"user-agent": SAFARI}).status_code == 200
                # skipped: JSON, a static file, a health check, a 404, a bot, a Do Not Track visitor, a HEAD
                assert c.get("/api/data", headers={"user-agent": FIREFOX}).status_code == 200
                assert c.get("/static/app.css", headers={"user-agent": FIREFOX}).status_code == 200
                assert c.get("/healthz", headers={"user-agent": FIREFOX}).status_code == 200
                assert c.get("/gone", headers={"user-agent": FIREFOX}).status_code == 404
                assert c.get("/", headers={"user-agent": GOOGLEBOT}).status_code == 200
                assert c.get("/", headers={"user-agent": FIREFOX, "dnt": "1"}).status_code == 200
                c.head("/", headers={"user-agent": FIREFOX})
                assert c.get("/about?sentinel=1", headers={"user-agent": FIREFOX}).status_code == 200
            wait_for(lambda: sentinel_arrived(proxy), what="the pageviews to reach the collector")
        finally:
            app.send_signal(signal.SIGTERM)
            try:
                app.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(app.pid, signal.SIGKILL)
                app.wait()
            log.close()
        seen = pageviews(proxy)

    assert [e["u"] for e in seen] == [f"{base}/", f"{base}/about?utm_source=newsletter", f"{base}/about?sentinel=1"]
    home, about, _ = seen
    assert (home["ip"], home["user_agent"], home["r"], home["d"]) == (
        "198.51.100.7", FIREFOX, "https://news.ycombinator.com/", "example.com")
    assert (about["ip"], about["user_agent"], about.get("r")) == ("127.0.0.1", SAFARI, None)

    server.stop()
    with server.db() as db:
        rows = db.execute("SELECT pathname, utm_source, via FROM events WHERE name = 'pageview' "
                          "ORDER BY timestamp").fetchall()
    assert rows == [("/", None, "batch"), ("/about", "newsletter", "batch"), ("/about", None, "batch")]


def wsgi_app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/error":
        start_response("500 Internal Server Error", [("Content-Type", "text/html; charset=utf-8")])
        return [b"<h1>oops</h1>"]
    if path == "/plain":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"plain"]
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [b"<h1>page</h1>"]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def test_wsgi_middleware_on_wsgiref(server):
    with FlakyProxy(server.url) as proxy:
        client = strana_sdk.Client(proxy.url, site="example.com", flush_interval=0.05)
        httpd = make_server("127.0.0.1", 0, StranaWSGIMiddleware(wsgi_app, client), handler_class=QuietHandler)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        try:
            with httpx.Client(base_url=base, timeout=10) as c:
                # counted; X-Forwarded-For is ignored: no proxy is trusted, the peer is the visitor
                c.get("/pricing", headers={"user-agent": FIREFOX, "x-forwarded-for": "198.51.100.7",
                                           "referer": "https://www.google.com/"})
                c.get("/caf%C3%A9", headers={"user-agent": SAFARI})
                # skipped: an error page, a non-HTML answer, a favicon, a bot, a curl
                c.get("/error", headers={"user-agent": FIREFOX})
                c.get("/plain", headers={"user-agent": FIREFOX})
                c.get("/favicon.ico", headers={"user-agent": FIREFOX})
                c.get("/", headers={"user-agent": GOOGLEBOT})
                c.get("/", headers={"user-agent": "curl/8.5.0"})
                c.get("/sentinel", headers={"user-agent": FIREFOX})
            wait_for(lambda: sentinel_arrived(proxy), what="the pageviews to reach the collector")
        finally:
            httpd.shutdown()
            httpd.server_close()
        assert client.shutdown(timeout=10)
        seen = pageviews(proxy)

    assert [e["u"] for e in seen] == [f"{base}/pricing", f"{base}/caf%C3%A9", f"{base}/sentinel"]
    assert (seen[0]["ip"], seen[0]["user_agent"], seen[0]["r"]) == ("127.0.0.1", FIREFOX, "https://www.google.com/")
    server.stop()
    with server.db() as db:
        paths = [r[0] for r in db.execute("SELECT pathname FROM events ORDER BY timestamp").fetchall()]
    assert paths[0] == "/pricing" and paths[2] == "/sentinel" and len(paths) == 3


def test_django_middleware(server):
    pytest.importorskip("django", reason="Django is not installed here (and is not a dependency of the SDK)")
    import django
    from django.conf import settings

    with FlakyProxy(server.url) as proxy:
        settings.configure(
            DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, SECRET_KEY="test",
            MIDDLEWARE=["strana_sdk.django.StranaMiddleware"],
            STRANA={"URL": proxy.url, "SITE": "example.com", "FLUSH_INTERVAL": 0.05},
        )
        django.setup()
        from django.test import Client as DjangoClient

        c = DjangoClient()
        c.get("/page", HTTP_USER_AGENT=FIREFOX, HTTP_REFERER="https://news.ycombinator.com/")
        c.get("/static/x.css", HTTP_USER_AGENT=FIREFOX)
        c.get("/page", HTTP_USER_AGENT=GOOGLEBOT)
        c.get("/page?sentinel=1", HTTP_USER_AGENT=FIREFOX)
        wait_for(lambda: sentinel_arrived(proxy), what="the pageviews to reach the collector")
        seen = pageviews(proxy)
    assert [e["u"].split("/", 3)[3] for e in seen] == ["page", "page?sentinel=1"]
    assert seen[0]["user_agent"] == FIREFOX and seen[0]["r"] == "https://news.ycombinator.com/"


def _django_page(request):
    from django.http import HttpResponse

    return HttpResponse("<h1>page</h1>", content_type="text/html")


def _urlpatterns():
    try:
        from django.urls import re_path
    except ImportError:
        return []
    return [re_path(r"^.*$", _django_page)]


urlpatterns = _urlpatterns()
