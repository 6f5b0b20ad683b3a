"""The dashboard in a real browser (Debian's chromium via Playwright) over a seeded store, against the stats API.

One server and one browser for the module. Every page a test opens collects console errors and page errors
(a Content-Security-Policy violation is one), and the test fails if there are any. Screenshots go to
test-artifacts/ (desktop 1280x800 and phone 390x844, light and dark).
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from dashboard_support import BROWSER_UA, DATE, HEADLINE, SITE, XSS_EVENT, XSS_PAGE, XSS_PROP, XSS_SOURCE, ask, start
from playwright.sync_api import expect

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
AXE = ROOT / "reports" / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "test-artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing: apt-get install chromium")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start(tmp_path_factory.mktemp("dash-browser"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


class Pages:
    """Opens pages that record console errors; `check()` fails the test on any."""

    def __init__(self, browser, base: str):
        self.browser, self.base, self.errors, self.contexts = browser, base, [], []

    def open(self, path: str, width: int = 1280, height: int = 800, scheme: str = "light", **options):
        ctx = self.browser.new_context(viewport={"width": width, "height": height}, color_scheme=scheme, **options)
        self.contexts.append(ctx)
        page = ctx.new_page()
        page.on("console", lambda m: m.type == "error" and self.errors.append(f"{page.url}: {m.text}"))
        page.on("pageerror", lambda e: self.errors.append(f"{page.url}: {e}"))
        page.goto(self.base + path)
        return page

    def close(self):
        for ctx in self.contexts:
            ctx.close()
        assert not self.errors, self.errors


@pytest.fixture
def pages(browser, server):
    p = Pages(browser, server.url)
    yield p
    p.close()


def headline(page) -> dict[str, float | None]:
    out = {}
    for m in HEADLINE:
        raw = page.locator(f'.stat[data-metric="{m}"]').get_attribute("data-value")
        out[m] = float(raw) if raw not in ("", None) else None
    return out


def api_headline(client, body: dict) -> dict[str, float]:
    result = ask(client, {"metrics": HEADLINE, **body})
    return dict(zip(HEADLINE, (None if v is None else float(v) for v in result["results"][0]["metrics"]), strict=True))


def first_rows(page, card: str) -> list[tuple[str, str]]:
    rows = page.locator(f"#card-{card} tbody tr")
    return [(rows.nth(i).locator("td").first.inner_text().strip(), rows.nth(i).locator("td.num").first.inner_text())
            for i in range(min(rows.count(), 3))]


def test_headline_matches_the_api_and_the_period_picker_changes_it(pages, server):
    page = pages.open(f"/{SITE}?date={DATE}")
    with server.client() as client:
        thirty = api_headline(client, {"date_range": "30d"})
        assert headline(page) == thirty
        # the visible text says the same (small numbers are shown in full)
        assert page.locator('.stat[data-metric="visitors"] .stat-value').inner_text() == f"{int(thirty['visitors']):,}"
        page.locator("#period-menu summary").click()
        page.get_by_role("link", name="Last 7 days").click()
        page.wait_for_url("**period=7d**")
        seven = api_headline(client, {"date_range": "7d"})
        assert headline(page) == seven and seven != thirty
        page.keyboard.press("a")  # keyboard shortcut: all time
        page.wait_for_url("**period=all**")
        assert headline(page) == api_headline(client, {"date_range": "all"})
        page.keyboard.press("d")
        page.wait_for_url("**period=day**")
        assert headline(page) == api_headline(client, {"date_range": "day"})


def test_clicking_a_source_filters_every_card_and_the_url_reproduces_the_view(pages, server):
    page = pages.open(f"/{SITE}?date={DATE}")
    page.locator("#card-sources a.row-link", has_text="Google").click()
    page.wait_for_url("**visit%3Asource**")
    query = parse_qs(urlsplit(page.url).query)
    assert query["f"] == ["is,visit:source,Google"]
    chip = page.locator(".chip")
    assert chip.count() == 1 and "Source is Google" in " ".join(chip.inner_text().split())
    filters = [["is", "visit:source", ["Google"]]]
    with server.client() as client:
        assert headline(page) == api_headline(client, {"date_range": "30d", "filters": filters})
        for card, dim in (("pages", "event:page"), ("sources", "visit:source"), ("locations", "visit:country"),
                          ("devices", "visit:browser")):
            api = ask(client, {"metrics": ["visitors"], "date_range": "30d", "dimensions": [dim],
                               "filters": filters, "pagination": {"limit": 3}})
            shown = first_rows(page, card)
            assert [int(v) for _, v in shown] == [r["metrics"][0] for r in api["results"]], card
        events = ask(client, {"metrics": ["visitors"], "date_range": "30d", "dimensions": ["event:name"],
                              "filters": [*filters, ["is_not", "event:name", ["pageview", "engagement"]]]})
        assert [int(v) for _, v in first_rows(page, "events")] == [r["metrics"][0] for r in events["results"][:3]]
        # stack a second filter (a country), then the URL alone reproduces the view in a fresh page
        page.locator("#card-locations a.row-link").first.click()
        page.wait_for_url("**visit%3Acountry**")
        assert page.locator(".chip").count() == 2
        shared = page.url
        before = (headline(page), page.locator("main").inner_text())
        again = pages.open(shared.removeprefix(server.url))
        assert (headline(again), again.locator("main").inner_text()) == before
        country = parse_qs(urlsplit(shared).query)["f"][1].split(",", 2)[2]
        assert headline(again) == api_headline(client, {"date_range": "30d", "filters": [
            *filters, ["is", "visit:country", [country]]]})
        # removing a chip drops that filter only
        again.get_by_role("link", name="Remove filter: Source is Google").click()
        again.wait_for_url(lambda url: "visit%3Asource" not in url)
        assert parse_qs(urlsplit(again.url).query)["f"] == [f"is,visit:country,{country}"]


def test_realtime_card_updates_when_a_hit_arrives(pages, server):
    page = pages.open("/live.example")
    counter = page.locator(".realtime-count")
    assert counter.inner_text() == "0"
    r = httpx.post(server.url + "/api/event", headers={"user-agent": BROWSER_UA},
                   json={"n": "pageview", "u": "https://live.example/now", "d": "live.example"})
    assert r.status_code == 202, r.text
    expect(counter).to_have_text("1", timeout=20_000)  # polls the DOM until the deadline; the page polls the API
    expect(page.locator(".realtime-label")).to_have_text("current visitor")


def test_stored_xss_renders_as_text(pages):
    page = pages.open(f"/{SITE}?date={DATE}&period=all&f=is,event:page,{XSS_PAGE}&events=props")
    assert page.locator("#card-pages a.row-link", has_text=XSS_PAGE).count() == 1
    assert XSS_PAGE in page.locator(".chip").inner_text()
    assert page.locator("#card-events .subtabs a", has_text="<b>k</b>").count() == 1
    assert page.locator("#card-events td", has_text=XSS_PROP).count() == 1
    page = pages.open(f"/{SITE}?date={DATE}&period=all&f=is,event:page,{XSS_PAGE}")
    assert page.locator("#card-events td", has_text=XSS_EVENT).count() == 1
    assert page.locator("#card-sources td", has_text=XSS_SOURCE).count() == 1
    page.locator("#card-sources .tabs a", has_text="Referrers").click()
    page.wait_for_url("**sources=referrers**")
    assert page.locator("#card-sources td", has_text="<script>window.__xss=5").count() == 1
    assert page.evaluate("window.__xss") is None
    assert page.locator("main script, main img, main [onload], main [onerror]").count() == 0


def test_funnel_and_filtered_cards_show_the_api_numbers(pages, server):
    page = pages.open(f"/{SITE}?date={DATE}")
    with server.client() as client:
        funnel = client.post("/api/v1/funnel", json={"site_id": SITE, "date": DATE, "date_range": "30d",
                                                     "steps": ["Visit /blog/**", "signup"]}).json()
        dropped = client.get("/api/v1/filtered", params={"site": SITE, "date": DATE, "date_range": "30d"}).json()
    steps = page.locator("#card-funnels .steps li")
    assert steps.count() == 2
    for i, step in enumerate(funnel["steps"]):
        assert f"{step['visitors']:,}" in steps.nth(i).inner_text()
    assert page.locator("[data-filtered-total]").get_attribute("data-filtered-total") == str(dropped["total"])
    assert "bot_ua" in page.locator("#card-filtered").inner_text()


@pytest.mark.parametrize("width,height,scheme", [(1280, 800, "light"), (1280, 800, "dark"), (390, 844, "light"),
                                                 (390, 844, "dark")])
def test_screenshots_fit_the_screen_and_pass_axe(pages, width, height, scheme):
    if not AXE.exists():
        pytest.skip(f"{AXE} is missing: run `npm ci` in reports/frontend")
    path = f"/{SITE}?date={DATE}&f=is,visit:country,DE"
    # axe is injected as a script, which the page's CSP rightly refuses: this one context bypasses the CSP.
    page = pages.open(path, width, height, scheme, bypass_csp=True)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{width}x{height}-{scheme}.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "the page scrolls sideways"
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    bad = [(v["id"], v["impact"], v["help"], [n["target"] for n in v["nodes"][:3]])
           for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, json.dumps(bad, indent=1)
    if width == 390 and scheme == "light":
        site_list = pages.open("/", width, height, scheme)
        site_list.screenshot(path=str(ARTIFACTS / "sites-390x844-light.png"), full_page=True)
