"""drop_bots: crawlers, monitors, scripted clients, headless browsers and junk UAs — and the people it must keep."""

from __future__ import annotations

import random
import re
import re._constants as K
import re._parser as parser

import pytest
import ua_parser_rs
from crawlerdetect import CrawlerDetect
from crawlerdetect.providers.crawlers import data as CRAWLERS

from collector.enhancers.drop_bots import _WORD, FOLD, CrawlerPatterns, DropBots, fold
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


# ---- the crawler patterns run as plain words (Aho-Corasick) + a few native alternations: same verdicts ----

def _sample(pattern: str, rnd: random.Random) -> str:
    """A string made to match `pattern` (Python syntax): first-found branches, short repeats."""

    def walk(items) -> str:
        out = []
        for op, av in items:
            if op is K.LITERAL:
                out.append(chr(av))
            elif op is K.NOT_LITERAL:
                out.append("q" if av != ord("q") else "z")
            elif op is K.ANY:
                out.append(rnd.choice("aZ9_ "))
            elif op is K.IN:
                allowed = [chr(a) if o is K.LITERAL else chr(rnd.randint(*a))
                           for o, a in av if o in (K.LITERAL, K.RANGE)]
                allowed += ["7" if a is K.CATEGORY_DIGIT else "k" for o, a in av if o is K.CATEGORY]
                if any(o is K.NEGATE for o, _ in av):
                    out.append(next(c for c in "qQz7 _-" if c not in allowed))
                else:
                    out.append(rnd.choice(allowed or ["a"]))
            elif op is K.BRANCH:
                out.append(walk(rnd.choice(av[1])))
            elif op is K.SUBPATTERN:
                out.append(walk(av[-1]))
            elif op in (K.MAX_REPEAT, K.MIN_REPEAT):
                low, high, sub = av
                out.append("".join(walk(sub) for _ in range(rnd.randint(low, min(high, low + 2)))))
            elif op is K.CATEGORY:
                out.append("7")
        return "".join(out)

    return walk(parser.parse(pattern))


def test_same_verdicts_as_crawlerdetect_on_strings_made_from_every_pattern(step):
    detect, rnd = CrawlerDetect(), random.Random(7)
    made = 0
    for pattern in CRAWLERS:
        text = _sample(pattern, rnd)
        if not re.search(pattern, text, re.I):
            continue  # the sampler's guess missed (a look-around, say): nothing to compare
        made += 1
        for ua in (text, f"Mozilla/5.0 (compatible; {text}/2.1; +https://example.com/bot)",
                   f"{CHROME} {text.upper()}", f"Mozilla/5.0 (X11; Linux x86_64) {text.swapcase()} Gecko"):
            assert step.is_crawler(ua.strip()) == detect.is_crawler(ua), ua
    assert made > 0.95 * len(CRAWLERS)


def test_every_pattern_is_a_word_or_a_regex():
    patterns = CrawlerPatterns(CRAWLERS)
    words = [p for p in CRAWLERS if _WORD.fullmatch(p)]
    assert len(words) > 1000  # most are plain words: the Aho-Corasick automaton, not a regex each
    assert len(words) + sum(1 for p in CRAWLERS if not _WORD.fullmatch(p)) == len(CRAWLERS)
    for p in words:  # a word is its own unescaped text, matched case-insensitively
        word = re.sub(r"\\(.)", r"\1", p)
        assert re.fullmatch(p, word) and patterns.matches(f"x {word.upper()} y")


def test_fold_is_what_the_native_case_insensitive_match_takes_for_a_letter():
    """Every code point that the native `(?i)` regex matches for an ASCII letter folds to that letter, no other
    does: so searching the folded UA for lower-case words agrees with `(?i)word` on any text, Unicode too."""
    letters = ua_parser_rs.UserAgentExtractor((f"(?i)^{c}$", c, None, None, None, None)
                                              for c in "abcdefghijklmnopqrstuvwxyz")
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        found = letters.extract(chr(cp))
        expected = found.family if found is not None else chr(cp)
        assert fold(chr(cp)) == expected, hex(cp)
    assert len(FOLD) == 26 + 2  # A-Z, KELVIN SIGN, LONG S
