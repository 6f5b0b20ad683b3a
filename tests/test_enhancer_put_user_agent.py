"""put_user_agent: browser, OS and device type from real user-agent strings."""

from __future__ import annotations

import pytest

from collector.enhancers.put_user_agent import PutUserAgent
from collector.events import Hit

WIN = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko)"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)"
IPAD = "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)"

CASES = [
    # ---- desktop: Windows ----
    (f"{WIN} Chrome/126.0.0.0 Safari/537.36", ("Chrome", "126", "Windows", "10", "desktop")),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
     ("Firefox", "127", "Windows", "10", "desktop")),
    (f"{WIN} Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.87", ("Edge", "126", "Windows", "10", "desktop")),
    (f"{WIN} Chrome/125.0.0.0 Safari/537.36 OPR/111.0.0.0", ("Opera", "111", "Windows", "10", "desktop")),
    ("Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36",
     ("Chrome", "109", "Windows", "7", "desktop")),
    # ---- desktop: macOS (an iPad in desktop mode looks exactly like this) ----
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
     "Safari/605.1.15", ("Safari", "17", "macOS", "10.15", "desktop")),
    (f"{MAC} Chrome/126.0.0.0 Safari/537.36", ("Chrome", "126", "macOS", "10.15", "desktop")),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:127.0) Gecko/20100101 Firefox/127.0",
     ("Firefox", "127", "macOS", "14.5", "desktop")),
    # ---- desktop: Linux, ChromeOS ----
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
     ("Chrome", "126", "Linux", None, "desktop")),
    ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
     ("Firefox", "127", "Ubuntu", None, "desktop")),
    ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
     ("Chrome", "126", "ChromeOS", "14541.0", "desktop")),
    # ---- mobile: Android phones ----
    ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile "
     "Safari/537.36", ("Chrome", "126", "Android", "10", "mobile")),
    ("Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 "
     "Chrome/121.0.0.0 Mobile Safari/537.36", ("Samsung Internet", "25", "Android", "14", "mobile")),
    ("Mozilla/5.0 (Android 14; Mobile; rv:127.0) Gecko/127.0 Firefox/127.0",
     ("Firefox", "127", "Android", "14", "mobile")),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 Mobile "
     "Safari/537.36 OPR/83.0.4254.70", ("Opera", "83", "Android", "14", "mobile")),
    ("Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile "
     "Safari/537.36 EdgA/126.0.2592.80", ("Edge", "126", "Android", "14", "mobile")),
    # ---- mobile: iPhone ----
    (f"{IPHONE} Version/17.5 Mobile/15E148 Safari/604.1", ("Safari", "17", "iOS", "17.5", "mobile")),
    (f"{IPHONE} CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1", ("Chrome", "126", "iOS", "17.5", "mobile")),
    (f"{IPHONE} FxiOS/127.0 Mobile/15E148 Safari/605.1.15", ("Firefox", "127", "iOS", "17.5", "mobile")),
    (f"{IPHONE} EdgiOS/126.2592.86 Version/17.0 Mobile/15E148 Safari/604.1", ("Edge", "126", "iOS", "17.5", "mobile")),
    (f"{IPHONE} Mobile/15E148 Instagram 338.0.0.14.89", ("Instagram", "338", "iOS", "17.5", "mobile")),
    # ---- tablets: iPad, Android tablets, Kindle ----
    (f"{IPAD} Version/17.5 Mobile/15E148 Safari/604.1", ("Safari", "17", "iPadOS", "17.5", "tablet")),
    ("Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0.6478.54 "
     "Mobile/15E148 Safari/604.1", ("Chrome", "126", "iPadOS", "16.6", "tablet")),
    ("Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
     ("Chrome", "126", "Android", "13", "tablet")),
    ("Mozilla/5.0 (Linux; Android 12; SM-T870) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 "
     "Chrome/117.0.0.0 Safari/537.36", ("Samsung Internet", "24", "Android", "12", "tablet")),
    ("Mozilla/5.0 (Android 13; Tablet; rv:127.0) Gecko/127.0 Firefox/127.0",
     ("Firefox", "127", "Android", "13", "tablet")),
    ("Mozilla/5.0 (Linux; Android 11; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/126.1.1 like "
     "Chrome/126.0.6478.71 Safari/537.36", ("Amazon Silk", "126", "Android", "11", "tablet")),
    # ---- bots that reach this step (drop_bots normally stops them first) ----
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", ("Googlebot", "2", None, None, "bot")),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", ("bingbot", "2", None, None, "bot")),
    # ---- other: TVs, consoles, scripted clients ----
    ("Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/79.0.3945.79 Safari/537.36 "
     "WebAppManager", ("Chrome", "79", "Web0S", None, "other")),
    ("curl/8.5.0", ("curl", "8", None, None, "other")),
    ("Mozilla/5.0 (SomethingNew 1.0) Whatever/2", (None, None, None, None, "other")),
]


@pytest.fixture(scope="module")
def step() -> PutUserAgent:
    return PutUserAgent(cache_size=64)


@pytest.mark.parametrize(("ua", "expected"), CASES, ids=[c[0][:60] for c in CASES])
def test_user_agent_table(step, ua, expected):
    hit = Hit(user_agent=ua)
    assert step(hit) is None
    assert (hit.browser, hit.browser_version, hit.os, hit.os_version, hit.device) == expected


@pytest.mark.parametrize("ua", [None, ""])
def test_no_user_agent_leaves_fields_unknown(step, ua):
    hit = Hit(user_agent=ua, via="batch")
    assert step(hit) is None
    assert (hit.browser, hit.os, hit.device) == (None, None, None)


def test_cache_is_bounded_and_answers_the_same(step):
    ua = CASES[0][0]
    first, second = Hit(user_agent=ua), Hit(user_agent=ua)
    step(first)
    step(second)
    assert first == second
    for i in range(200):
        step(Hit(user_agent=f"{ua} X/{i}"))
    assert step.parse.cache_info().currsize <= 64
