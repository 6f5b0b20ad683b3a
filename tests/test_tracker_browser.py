"""The JS tracker in a real browser (Debian's chromium via Playwright), against a real `strana serve`.

Pages are served by a small loopback server on another port than the collector, so every request the tracker
makes is cross-origin, as on a real site. The script tag loads the tracker from the collector's /js/ route,
so the committed dist/ files are what is tested. Every test asserts on what reached the store: it polls the
stats API until the events are committed, then stops the collector and reads its DuckDB file.

Starting a collector costs seconds, so each test runs several scenarios against one collector, each scenario
under its own site (`data-site`), and reads the rows back per site.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import httpx
import pytest

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing: apt-get install chromium")

# A plain desktop Chrome UA: the collector drops "HeadlessChrome" as a bot, and this suite tests the tracker.
# It is set on the command line, not per context: requests that outlive their page (the engagement beacon sent
# while navigating away) go out from the browser process with its own UA, not the context's override.
DESKTOP_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", f"--user-agent={DESKTOP_UA}"]
# Playwright sets navigator.webdriver and the pages are on 127.0.0.1: both would make the tracker stand down.
LOCAL = "data-allow-local data-allow-automation"
DIST = Path(__file__).resolve().parent.parent / "trackers" / "js" / "dist"


class Pages:
    """A loopback site: path → HTML. Unknown /files/ paths answer 204 (a download link that goes nowhere)."""

    def __init__(self):
        self.html: dict[str, str] = {}
        pages = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path.split("?")[0]
                body = pages.html.get(path)
                if body is None:
                    self.send_response(204 if path.startswith("/files/") else 404)
                    self.end_headers()
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        Thread(target=self.httpd.serve_forever, daemon=True).start()

    def add(self, path: str, body: str, *, collector: str, site: str, attrs: str = LOCAL,
            script: str = "strana.js", head: str = "") -> str:
        self.html[path] = (f"<!doctype html><html><head><title>{path}</title>{head}"
                           f'<script defer data-site="{site}" {attrs} src="{collector}/js/{script}"></script>'
                           f"</head><body>{body}</body></html>")
        return self.url + path


@pytest.fixture(scope="module")
def pages():
    site = Pages()
    yield site
    site.httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield browser
        browser.close()


@contextmanager
def new_page(browser):
    """A fresh context (no shared storage) and page; page.sent collects the bodies the tracker posted."""
    context = browser.new_context()
    page = context.new_page()
    page.sent = []
    page.on("request", lambda r: page.sent.append(r.post_data_json) if r.url.endswith("/api/event") else None)
    try:
        yield page
    finally:
        context.close()


def loaded(page) -> None:
    """The tracker ran: the global is the real function, not the queue stub."""
    page.wait_for_function("typeof strana == 'function' && !strana.q")


def wait_events(server, site: str, n: int, timeout: float = 15) -> None:
    """Poll the stats API until the site has n events stored (a 202 from the collector means committed)."""
    deadline = time.monotonic() + timeout
    with server.client() as c:
        while True:
            results = c.get("/api/v1/stats/aggregate", params={"site": site, "period": "day"}).json()["results"]
            if results["events"] >= n or time.monotonic() > deadline:
                assert results["events"] == n, (site, results)
                return
            time.sleep(0.05)


def stored(server, columns: str) -> dict[str, list[tuple]]:
    """Stop the collector, read its DuckDB file: site → rows, sorted (the tracker's requests may race)."""
    server.stop()
    with server.db() as db:
        found = db.execute(f"SELECT site, {columns} FROM events").fetchall()
    by_site: dict[str, list[tuple]] = {}
    for site, *row in found:
        by_site.setdefault(site, []).append(tuple(row))
    return {site: rows(*found) for site, found in by_site.items()}


def rows(*expected: tuple) -> list[tuple]:
    return sorted(expected, key=repr)


def call(page, name: str, options: str = "{}"):
    """strana(name, options) with a callback; resolves when the collector answered (at once if ignored)."""
    return page.evaluate(f"() => new Promise(done => strana({name!r}, {{...{options}, callback: done}}))")


def test_pageviews_plain_spa_and_hash_routing(server, pages, browser):
    with httpx.Client(base_url=server.url) as c:  # the tag's src: the committed build, cross-origin readable
        r = c.get("/js/strana.js")
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
    assert r.content == (DIST / "strana.js").read_bytes()

    # A plain page: one pageview, the body as Plausible's Events API, nothing written to the browser.
    url = pages.add("/plain", "<h1>hello</h1>", collector=server.url, site="plain.test")
    with new_page(browser) as page:
        page.goto(url + "?utm_source=news", referer="https://news.ycombinator.com/item?id=1")
        wait_events(server, "plain.test", 1)
        assert page.evaluate("[document.cookie, localStorage.length, sessionStorage.length]") == ["", 0, 0]
        assert page.context.cookies() == []
        # The collector has no put_referrer step yet, so the referrer is checked as sent.
        assert page.sent == [{"n": "pageview", "u": url + "?utm_source=news", "d": "plain.test",
                              "r": "https://news.ycombinator.com/item?id=1"}]

    # An SPA: pushState and a replaceState to a new path count, re-renders of the same path do not, popstate does.
    url = pages.add("/app", "<main>app</main>", collector=server.url, site="spa.test")
    with new_page(browser) as page:
        page.goto(url)
        loaded(page)
        page.evaluate("history.pushState({}, '', '/app/settings')")
        page.evaluate("history.replaceState({tab: 2}, '', '/app/settings')")  # a re-render: same URL
        page.evaluate("history.replaceState({}, '', '/app/settings?tab=2')")  # same path
        page.evaluate("history.replaceState({}, '', '/app/profile')")  # a redirect to a new path
        wait_events(server, "spa.test", 3)
        page.evaluate("history.back()")  # popstate → /app
        wait_events(server, "spa.test", 4)
        assert call(page, "done") == {"status": 202}

    # Hash routing with data-hash: each new fragment is a page, the same one again is not.
    url = pages.add("/h", "<nav>hash app</nav>", collector=server.url, site="hash.test", attrs=LOCAL + " data-hash")
    with new_page(browser) as page:
        page.goto(url + "#/home")
        loaded(page)
        page.evaluate("location.hash = '#/about'")
        wait_events(server, "hash.test", 2)
        page.evaluate("location.hash = '#/pricing'")
        wait_events(server, "hash.test", 3)
        page.evaluate("history.replaceState(null, '', '#/pricing')")
        page.go_back()
        wait_events(server, "hash.test", 4)
        assert call(page, "done") == {"status": 202}

    found = stored(server, "name, hostname, pathname, utm_source, via, interactive")
    assert found["plain.test"] == [("pageview", "127.0.0.1", "/plain", "news", "event", True)]
    assert rows(*(row[:3] for row in found["spa.test"])) == rows(
        ("pageview", "127.0.0.1", "/app"), ("pageview", "127.0.0.1", "/app/settings"),
        ("pageview", "127.0.0.1", "/app/profile"), ("pageview", "127.0.0.1", "/app"), ("done", "127.0.0.1", "/app"))
    assert rows(*((row[0], row[2]) for row in found["hash.test"])) == rows(
        ("pageview", "/h#/home"), ("pageview", "/h#/about"), ("pageview", "/h#/pricing"), ("pageview", "/h#/about"),
        ("done", "/h#/about"))


def test_custom_events_and_the_queue_stub(server, pages, browser):
    # strana(name, {props, revenue, interactive, callback}); the callback gets the collector's status.
    with new_page(browser) as page:
        page.goto(pages.add("/pricing", "<button>buy</button>", collector=server.url, site="custom.test"))
        loaded(page)
        props = "{props: {plan: 'pro', seats: 3}, revenue: {amount: 9.5, currency: 'EUR'}}"
        assert call(page, "signup", props) == {"status": 202}
        assert call(page, "autoplay", "{interactive: false}") == {"status": 202}

    # Calls made before the script loads wait in the documented one-line stub and are sent once it runs.
    stub = ("<script>window.strana=window.strana||function(){(strana.q=strana.q||[]).push(arguments)};"
            "strana('early', {props: {when: 'before load'}});"
            "strana('paid', {revenue: {amount: 20, currency: 'usd'}})</script>")
    with new_page(browser) as page:
        page.goto(pages.add("/early", "<p>queued</p>", collector=server.url, site="queue.test", head=stub))
        wait_events(server, "queue.test", 3)

    found = stored(server, "name, pathname, props, revenue_amount, revenue_currency, interactive")
    assert found["custom.test"] == rows(
        ("pageview", "/pricing", None, None, None, True),
        ("signup", "/pricing", {"plan": "pro", "seats": "3"}, 9.5, "EUR", True),
        ("autoplay", "/pricing", None, None, None, False))
    assert found["queue.test"] == rows(
        ("pageview", "/early", None, None, None, True),
        ("early", "/early", {"when": "before load"}, None, None, True),
        ("paid", "/early", None, 20.0, "USD", True))


def test_extensions_links_404_and_engagement(server, pages, browser):
    # Outbound links and file downloads (strana.full.js); a same-site link is neither.
    body = ('<a id="dl" href="/files/report.pdf?token=secret">report</a>'
            '<a id="in" href="/links#top">inside</a>'
            '<a id="out" href="https://elsewhere.example/page?x=1">elsewhere</a>')
    url = pages.add("/links", body, collector=server.url, site="links.test", script="strana.full.js")
    with new_page(browser) as page:
        page.route("https://elsewhere.example/**", lambda route: route.fulfill(body="bye", content_type="text/html"))
        page.goto(url)
        loaded(page)
        page.click("#dl")
        page.click("#in")
        wait_events(server, "links.test", 2)
        page.click("#out")  # leaves the page: the outbound click, then the engagement event, outlive it
        page.wait_for_url("https://elsewhere.example/**")
        wait_events(server, "links.test", 4)

    # data-download-extensions replaces the list (and the downloads-only build does just that).
    body = '<a id="pdf" href="/files/a.pdf">pdf</a><a id="svg" href="/files/logo.svg">svg</a>'
    attrs = LOCAL + ' data-download-extensions="svg, woff2"'
    url = pages.add("/assets", body, collector=server.url, site="ext.test", script="strana.downloads.js",
                    attrs=attrs)
    with new_page(browser) as page:
        page.goto(url)
        loaded(page)
        page.click("#pdf")
        page.click("#svg")
        wait_events(server, "ext.test", 2)
        assert call(page, "done") == {"status": 202}

    # A 404 page marked with data-404.
    url = pages.add("/missing", "<h1>Not found</h1>", collector=server.url, site="404.test", script="strana.full.js",
                    attrs=LOCAL + " data-404")
    with new_page(browser) as page:
        page.goto(url)
        wait_events(server, "404.test", 2)

    # Engagement: scroll to the bottom of a long page, move on within the SPA (the old page's engagement goes
    # out before the new pageview), then leave the site.
    url = pages.add("/long", '<div style="height: 6000px">long read</div>', collector=server.url,
                    site="long.test", script="strana.full.js")
    pages.html["/next"] = "<p>no tracker here</p>"
    with new_page(browser) as page:
        page.set_viewport_size({"width": 800, "height": 600})
        page.goto(url)
        loaded(page)
        wait_events(server, "long.test", 1)
        # Scroll, and return once the scroll event was dispatched: the tracker's listener (added first) has seen
        # it then. Waiting for scrollY > 0 raced it: scrollY moves a frame before the event fires.
        page.evaluate("new Promise(r => { addEventListener('scroll', () => r(), {once: true}); "
                      "scrollTo(0, document.body.scrollHeight) })")
        page.evaluate("history.pushState({}, '', '/long/chapter-2')")
        wait_events(server, "long.test", 3)
        page.goto(pages.url + "/next")  # hides the page: its engagement event goes out by beacon
        wait_events(server, "long.test", 4)

    found = stored(server, "name, pathname, props, scroll_depth, engagement_ms, interactive")
    engagement = [row for row in found["links.test"] if row[0] == "engagement"]
    assert rows(*(row[:3] for row in found["links.test"])) == rows(
        ("pageview", "/links", None),
        ("File Download", "/links", {"url": pages.url + "/files/report.pdf"}),  # without its query
        ("Outbound Link: Click", "/links", {"url": "https://elsewhere.example/page?x=1"}),
        ("engagement", "/links", None))
    assert engagement[0][3] > 0 and engagement[0][5] is False
    assert rows(*(row[:3] for row in found["ext.test"])) == rows(
        ("pageview", "/assets", None), ("File Download", "/assets", {"url": pages.url + "/files/logo.svg"}),
        ("done", "/assets", None))
    # (closing the page may send an engagement event too, or not yet: it is left out here)
    assert rows(*(row[:3] for row in found["404.test"] if row[0] != "engagement")) == rows(
        ("pageview", "/missing", None), ("404", "/missing", {"path": "/missing"}))
    assert rows(*(row[:2] for row in found["long.test"])) == rows(
        ("pageview", "/long"), ("engagement", "/long"), ("pageview", "/long/chapter-2"),
        ("engagement", "/long/chapter-2"))
    for name, path, props, depth, engaged_ms, interactive in found["long.test"]:
        if name == "pageview":
            assert (props, depth, engaged_ms, interactive) == (None, None, None, True)
        else:
            assert (props, depth, interactive) == (None, 100, False), path
            assert engaged_ms is not None and engaged_ms > 0, path


STAND_DOWN = [
    ("opt-out flag", LOCAL, "<script>localStorage.strana_ignore = 'true'</script>"),
    ("automated browser", "data-allow-local", ""),
    ("loopback host", "data-allow-automation", ""),
    ("do not track", LOCAL + " data-respect-dnt",
     "<script>Object.defineProperty(navigator, 'globalPrivacyControl', {value: true})</script>"),
]


def test_nothing_sent_when_the_tracker_stands_down(server, pages, browser):
    for case, attrs, head in STAND_DOWN:
        url = pages.add(f"/quiet/{len(case)}", "<p>shh</p>", collector=server.url, site="quiet.test",
                        script="strana.full.js", attrs=attrs, head=head)
        with new_page(browser) as page:
            page.goto(url)
            loaded(page)
            assert call(page, "signup") is None, case  # the callback still runs, so a form waiting on it goes on
            page.evaluate("history.pushState({}, '', '/quiet/more')")
            assert page.sent == [], case
            assert page.evaluate("Object.keys(localStorage)") == (["strana_ignore"] if head.count("strana") else [])
    # The same collector does take the next ordinary page, so nothing above was lost on the way.
    with new_page(browser) as page:
        page.goto(pages.add("/loud", "<p>hi</p>", collector=server.url, site="loud.test"))
        wait_events(server, "loud.test", 1)
    assert stored(server, "name") == {"loud.test": [("pageview",)]}
