"""drop_bots: crawlers, monitors, scripted clients, headless browsers and junk UAs — and the people it must keep."""

from __future__ import annotations

import pytest
from crawlerdetect import CrawlerDetect

from collector.enhancers.drop_bots import DropBots
from collector.events import Hit

CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
          "Safari/537.36")

PEOPLE = [
    # ---- desktop browsers ----
    CHROME,
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
    CHROME + " Edg/126.0.2592.87",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
    "Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    # ---- phones and tablets ----
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 "
    "Chrome/121.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
    "Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
    "Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Android 13; Tablet; rv:127.0) Gecko/127.0 Firefox/127.0",
    # ---- in-app browsers (people, not preview fetchers) ----
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 "
    "Instagram 338.0.0.14.89",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 "
    "[FBAN/FBIOS;FBAV/470.0.0.41.109;]",
    # ---- Yandex's own browser app is not its crawler ----
    "Mozilla/5.0 (Linux; arm_64; Android 12; SM-A525F) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
    "YaBrowser/24.1.2.86.00 SA/3 Mobile Safari/537.36",
]

BOTS = [
    # ---- search crawlers ----
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot_ua"),
    ("Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/126.0.6478.126 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
     "bot_ua"),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "bot_ua"),
    ("Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)", "bot_ua"),
    ("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", "bot_ua"),
    # ---- AI crawlers and fetchers ----
    ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
     "bot_ua"),
    ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)",
     "bot_ua"),
    # ---- scripted clients ----
    ("curl/8.5.0", "bot_ua"),
    ("Wget/1.21.4", "bot_ua"),
    ("python-requests/2.32.3", "bot_ua"),
    ("python-httpx/0.28.1", "bot_ua"),
    ("Go-http-client/1.1", "bot_ua"),
    ("Java/17.0.2", "bot_ua"),
    ("okhttp/4.12.0", "bot_ua"),
    ("axios/1.7.2", "bot_ua"),
    ("node-fetch/1.0 (+https://github.com/bitinn/node-fetch)", "bot_ua"),
    ("PostmanRuntime/7.39.0", "bot_ua"),
    # ---- monitors and audits ----
    ("Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)", "bot_ua"),
    ("Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)", "bot_ua"),
    ("Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
     "Mobile Safari/537.36 Chrome-Lighthouse", "bot_ua"),
    # ---- link-preview fetchers ----
    ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "bot_ua"),
    ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", "bot_ua"),
    ("Twitterbot/1.0", "bot_ua"),
    ("Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)", "bot_ua"),
    ("TelegramBot (like TwitterBot)", "bot_ua"),
    ("WhatsApp/2.23.20.0", "bot_ua"),
    ("LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)", "bot_ua"),
    # ---- headless and automated browsers ----
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0.0.0 "
     "Safari/537.36", "headless"),
    ("Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1",
     "headless"),
    (CHROME + " Puppeteer", "headless"),
    (CHROME + " Playwright/1.45", "headless"),
    (CHROME + " Selenium", "headless"),
    # ---- junk ----
    ("", "junk_ua"),
    ("   ", "junk_ua"),
    ("-", "junk_ua"),
    ("null", "junk_ua"),
    ("undefined", "junk_ua"),
    ("Mozilla/5.0", "junk_ua"),
    ("abc", "junk_ua"),
    ("1234567890123", "junk_ua"),
    ("%%%%%%%%%%%%%%%%", "junk_ua"),
    ("Mozilla/5.0\x00\x01 (Windows NT 10.0)", "junk_ua"),
    ("Mozilla/5.0 " + "A" * 2000, "junk_ua"),
]


@pytest.fixture(scope="module")
def step() -> DropBots:
    return DropBots(cache_size=128)


@pytest.mark.parametrize("ua", PEOPLE, ids=[u[:60] for u in PEOPLE])
def test_people_are_kept(step, ua):
    assert step(Hit(user_agent=ua, via="event")) is None


@pytest.mark.parametrize(("ua", "reason"), BOTS, ids=[u[:60] or "empty" for u, _ in BOTS])
def test_bots_are_dropped(step, ua, reason):
    assert step(Hit(user_agent=ua, via="event")) == reason


@pytest.mark.parametrize(("via", "ua", "reason"), [
    # ---- a server-side batch event has no UA and is no bot ----
    ("batch", None, None),
    # ---- a batch event that carries a UA is judged like any other ----
    ("batch", "curl/8.5.0", "bot_ua"),
    ("batch", "", "junk_ua"),
    # ---- from a browser, no UA is junk ----
    ("event", None, "junk_ua"),
    ("event", "", "junk_ua"),
    ("pixel", None, "junk_ua"),
])
def test_missing_user_agent_by_way_in(step, via, ua, reason):
    assert step(Hit(user_agent=ua, via=via)) == reason


def test_same_verdicts_as_crawlerdetect_on_the_table(step):
    """Our native matcher runs crawlerdetect's own patterns: it must agree with crawlerdetect on every case."""
    detect = CrawlerDetect()
    for ua in PEOPLE + [u for u, reason in BOTS if reason == "bot_ua"]:
        assert step.is_crawler(ua.strip()) == detect.is_crawler(ua), ua


def test_cache_is_bounded(step):
    for i in range(500):
        step(Hit(user_agent=f"{CHROME} Build/{i}"))
    assert step.judge.cache_info().currsize <= 128
