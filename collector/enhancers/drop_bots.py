"""Drop hits that no person made: crawlers, monitors, scripted clients, headless browsers and junk user agents.

Judged on the user agent of hits that come from browsers (the tracker, the
pixel, a batch event that carries a UA). A batch event with no UA at all is a
server-side event (an SDK reporting a purchase, say), not a bot; so is every
webhook event (via `webhook`): it comes from the sender's servers, whose
client (Stripe/1.0, GitHub-Hookshot) says nothing about a visitor.

The crawler list is crawlerdetect's (1,400+ patterns, kept up to date by the
CrawlerDetect project). crawlerdetect itself matches them as one Python
regex, ~170 µs a string, which would let a flood of never-seen UAs become a
denial of service. Here 1,383 of the patterns are plain words: they run as
one Aho-Corasick automaton (ahocorasick-rs) over the UA with its letters
case-folded (FOLD), and the other ~80 regexes as a few case-insensitive
alternations on the native regex engine that ua-parser uses (ua-parser-rs),
~2 µs a string in all. Each pattern compiled as its own native regex did as
well but held ~25 MB (and ~17 MB more of match caches once a bot flood had
exercised them); this holds ~2 MB. crawlerdetect's exclusion step (strip
browser tokens, then match again) runs only on UAs that match.
Our rules come first: headless/automation marks (`headless`), scripted
clients and link-preview fetchers crawlerdetect may lack (`bot_ua`), and
empty, tiny or nonsense strings (`junk_ua`). Verdicts are cached per UA in a
bounded LRU.
"""

from __future__ import annotations

import re
from functools import lru_cache

import ahocorasick_rs
import ua_parser_rs
from crawlerdetect.crawlerdetect import get_compiled_exclusions_regex
from crawlerdetect.providers.crawlers import data as CRAWLERS

from collector.events import Hit

# Automated browsers: checked first, on the raw UA.
HEADLESS = [
    r"HeadlessChrome", r"Headless", r"PhantomJS", r"SlimerJS", r"Puppeteer", r"Playwright", r"Selenium",
    r"WebDriver", r"Nightmare", r"HtmlUnit", r"jsdom", r"Zombie\.js", r"Cypress", r"Splash",
]
# Scripted clients, monitors and preview fetchers, in case crawlerdetect's list lacks one.
SCRIPTED = [
    r"^curl/", r"^Wget", r"python-requests", r"python-urllib", r"python-httpx", r"aiohttp", r"Go-http-client",
    r"^Java/", r"Apache-HttpClient", r"okhttp", r"axios/", r"node-fetch", r"undici", r"^got ", r"libwww-perl",
    r"HTTPie", r"PostmanRuntime", r"insomnia", r"Lighthouse", r"PageSpeed", r"GTmetrix", r"Pingdom", r"UptimeRobot",
    r"StatusCake", r"Site24x7", r"Better ?Uptime", r"Uptime-Kuma", r"Checkly", r"Datadog", r"NewRelicPinger",
    r"Slackbot", r"facebookexternalhit", r"facebookcatalog", r"Twitterbot", r"Discordbot", r"TelegramBot",
    r"WhatsApp/", r"LinkedInBot", r"SkypeUriPreview", r"Embedly", r"Iframely", r"redditbot", r"Mastodon/",
    r"bitlybot", r"Google-InspectionTool", r"Google-Read-Aloud", r"GoogleOther", r"Bytespider",
    r"GPTBot", r"ChatGPT-User", r"OAI-SearchBot", r"ClaudeBot", r"Claude-User", r"anthropic-ai",
    r"PerplexityBot", r"Perplexity-User", r"Applebot", r"CCBot", r"Amazonbot", r"meta-externalagent",
]
JUNK = frozenset({"-", "null", "none", "undefined", "unknown", "test", "user-agent", "useragent", "mozilla",
                  "mozilla/5.0", "mozilla/4.0", "agent", "browser"})
MIN_LENGTH = 10
MAX_LENGTH = 1500
_LETTERS = re.compile(r"[A-Za-z]{2}")


# Case folding for the plain-word patterns (all ASCII): what the native regex's case-insensitive mode matches
# for an ASCII letter is that letter in either case, plus KELVIN SIGN for k and LONG S for s (Unicode simple
# case folding; tests/test_enhancer_drop_bots.py checks every code point), so a UA folded this way and searched
# for the lower-case words matches exactly where `(?i)word` would.
FOLD = {**{c: c + 32 for c in range(ord("A"), ord("Z") + 1)}, 0x212A: ord("k"), 0x017F: ord("s")}
# a pattern with no regex syntax but escaped punctuation (`Yahoo\!`) is a plain word
_WORD = re.compile(r"(?:[^\\.^$*+?()\[\]{}|]|\\[^A-Za-z0-9])*")
_REGEX_GROUP = 20  # crawler regexes per native alternation: ~1 µs a string for the ~80, and little memory


def _alternations(groups: list[tuple[str, list[str]]]) -> ua_parser_rs.UserAgentExtractor:
    """One case-insensitive native regex per (label, patterns) group; `extract` names (as the family) the first
    group in which any pattern matches. "Does any of these match" is all we ask, and one regex per group holds
    a fraction of the memory of one per pattern (each carries its own automata and match caches)."""
    return ua_parser_rs.UserAgentExtractor(
        ("(?i)(?:" + "|".join(f"(?:{regex})" for regex in patterns) + ")", label, None, None, None, None)
        for label, patterns in groups)


def _rust_compatible(regex: str) -> str:
    # The one look-ahead in crawlerdetect's list; Rust's regex has none, so spell it out.
    if regex == "Yandex(?!Search)":
        return "Yandex(?:$|[^S]|S(?:$|[^e]|e(?:$|[^a]|a(?:$|[^r]|r(?:$|[^c]|c(?:$|[^h]))))))"
    return regex


def fold(ua: str) -> str:
    return ua.lower() if ua.isascii() else ua.translate(FOLD)  # str.lower folds more than ASCII: not for these


class CrawlerPatterns:
    """crawlerdetect's patterns: `matches(ua)` is true when any of them matches the UA, case-insensitively."""

    def __init__(self, patterns: list[str]):
        words = [re.sub(r"\\(.)", r"\1", p) for p in patterns if _WORD.fullmatch(p)]
        regexes = [_rust_compatible(p) for p in patterns if not _WORD.fullmatch(p)]
        self.words = ahocorasick_rs.AhoCorasick(sorted({w.lower() for w in words}))
        self.regexes = _alternations([("bot_ua", regexes[i:i + _REGEX_GROUP])
                                      for i in range(0, len(regexes), _REGEX_GROUP)])

    def matches(self, ua: str) -> bool:
        return bool(self.words.find_matches_as_indexes(fold(ua))) or self.regexes.extract(ua) is not None


class DropBots:
    def __init__(self, cache_size: int = 10_000):
        self.ours = _alternations([("headless", HEADLESS), ("bot_ua", SCRIPTED)])
        self.crawlers = CrawlerPatterns(CRAWLERS)
        self.exclusions = get_compiled_exclusions_regex()
        self.judge = lru_cache(maxsize=cache_size)(self._judge)

    def __call__(self, hit: Hit) -> str | None:
        ua = hit.user_agent
        if ua is None and hit.via in ("batch", "webhook"):
            return None  # a server-side event, not a browser
        if not ua:
            return "junk_ua"
        return self.judge(ua)

    def many(self, hits: list[Hit]) -> list[tuple[int, str]]:
        """The batch form (collector/pipeline.py): the same verdicts, one loop."""
        judge = self.judge
        drops = []
        for index, hit in enumerate(hits):
            ua = hit.user_agent
            if ua:
                reason = judge(ua)
                if reason is not None:
                    drops.append((index, reason))
            elif ua is not None or hit.via not in ("batch", "webhook"):
                drops.append((index, "junk_ua"))
        return drops

    def _judge(self, ua: str) -> str | None:
        text = ua.strip()
        if len(text) < MIN_LENGTH or len(text) > MAX_LENGTH or text.lower() in JUNK:
            return "junk_ua"
        if not text.isprintable() or not _LETTERS.search(text):
            return "junk_ua"
        if (match := self.ours.extract(text)) is not None:
            return match.family
        return "bot_ua" if self.is_crawler(text) else None

    def is_crawler(self, ua: str) -> bool:
        """crawlerdetect's verdict. Its exclusion step (a Python regex, ~9 µs) only removes browser tokens so
        they cannot match; a UA whose raw text matches no crawler pattern (every browser) skips it."""
        if not self.crawlers.matches(ua):
            return False
        stripped = self.exclusions.sub("", ua)
        return bool(stripped) and self.crawlers.matches(stripped)
