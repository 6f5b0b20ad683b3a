"""Where a visit came from: referrer, source and channel, and referrer spam dropped.

`referrer` is the referrer URL without query string or fragment (these can
carry search terms, tokens and emails); `referrer_host` its host, lower-case,
without `www.`. `source` names the origin: a campaign's utm_source (or `ref`,
which put_campaign already folded into it) wins over the referrer; known
hosts and utm values get a name ("Google", "Hacker News"), unknown ones
stay as they are. `channel` follows GA4's default channel group as Plausible
applies it (paid before organic; utm_medium and click ids shape it).

A referrer from the site itself (the page's host or the site's domain, after
`www.` is removed) is internal: neither a referrer nor a source. Garbage
("not a url", a javascript: or file: URL) counts as no referrer.
Classification data lives in data/referrers.toml and data/referrer_spam.txt,
read once; host lookups are cached.
"""

from __future__ import annotations

import re
import tomllib
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from collector.events import Hit

DATA = Path(__file__).resolve().parent / "data"
MAX_REFERRER = 1000
_HOST = re.compile(r"^[\w.-]+$")
_SPACE = re.compile(r"\s")
Known = tuple[str, str | None]  # (source name, category)


def _load(path: Path) -> dict:
    with path.open("rb") as f:
        return tomllib.load(f)


def load_spam(path: Path) -> frozenset[str]:
    lines = (line.strip().lower() for line in path.read_text(encoding="utf-8").splitlines())
    return frozenset(line for line in lines if line and not line.startswith("#"))


def _strip_www(host: str) -> str:
    return host[4:] if host.startswith("www.") else host


def _tld_tail(labels: list[str]) -> bool:
    """True for a country/generic suffix such as com, de, co.uk, com.br: what "name.*" in the data allows."""
    return 0 < len(labels) <= 2 and all(0 < len(label) <= 3 for label in labels)


class PutReferrer:
    def __init__(self, data_path: Path = DATA / "referrers.toml", spam_path: Path = DATA / "referrer_spam.txt",
                 cache_size: int = 10_000):
        data = _load(data_path)
        self.hosts: dict[str, Known] = {}
        self.brands: dict[str, Known] = {}  # "google" for "google.*"
        self.apps: dict[str, Known] = {}
        self.utm: dict[str, Known] = {}
        for entry in data["source"]:
            known = (entry["name"], entry.get("category"))
            for host in entry.get("hosts", ()):
                if host.endswith(".*"):
                    self.brands[host[:-2]] = known
                else:
                    self.hosts[host] = known
            for app in entry.get("apps", ()):
                self.apps[app] = known
            for alias in entry.get("utm", ()):
                self.utm[alias] = known
            self.utm.setdefault(entry["name"].lower(), known)
        mediums = data["mediums"]
        self.paid = re.compile(mediums["paid"])
        self.display = frozenset(mediums["display"])
        self.social = frozenset(mediums["social"])
        self.email = re.compile(mediums["email"])
        self.affiliate = frozenset(mediums["affiliate"])
        self.referral = frozenset(mediums["referral"])
        self.organic = frozenset(mediums["organic"])
        self.video = re.compile(mediums["video"])
        self.cross_network = re.compile(mediums["cross_network"])
        self.click_ids: dict[str, str] = data["click_ids"]
        self.spam = load_spam(spam_path)
        self.known_host = lru_cache(maxsize=cache_size)(self._known_host)
        self.inspect = lru_cache(maxsize=cache_size)(self._inspect)

    def __call__(self, hit: Hit) -> str | None:
        referrer = host = known = None
        if hit.raw_referrer:
            referrer, host, known, spam = self.inspect(hit.raw_referrer)
            if spam:
                return "spam_referrer"
            if host is not None and (host == hit.hostname or host == hit.site):
                referrer = host = known = None  # internal: a click within the site
        hit.referrer, hit.referrer_host = referrer, host

        utm_source = hit.utm_source
        if utm_source:
            utm_known = self._known_utm(utm_source)
            source, category = utm_known if utm_known else (utm_source, None)
        elif host:
            source, category = known if known else (host, None)
        else:
            source = category = None
        hit.source = source
        hit.channel = self._channel(hit, category, host is not None)
        return None

    def many(self, hits: list[Hit]) -> list[tuple[int, str]]:
        """The batch form (collector/pipeline.py). What this step writes depends only on the inputs in `key`,
        and a batch repeats a few referrers and campaigns: each distinct combination is worked out once, by
        `__call__`, and copied to the others."""
        memo: dict[tuple, tuple] = {}
        drops = []
        for index, hit in enumerate(hits):
            key = (hit.raw_referrer, hit.hostname, hit.site, hit.utm_source, hit.utm_medium, hit.utm_campaign,
                   hit.click_id)
            done = memo.get(key)
            if done is None:
                reason = self(hit)
                done = memo[key] = (reason, hit.referrer, hit.referrer_host, hit.source, hit.channel)
            else:
                reason = done[0]
                if reason is None:
                    _, hit.referrer, hit.referrer_host, hit.source, hit.channel = done
            if reason is not None:
                drops.append((index, reason))
        return drops

    def _inspect(self, raw: str) -> tuple[str | None, str | None, Known | None, bool]:
        """(referrer without query, host, known source, is spam) of a raw referrer; cached, as they repeat."""
        parsed = _parse(raw)
        if parsed is None:
            return None, None, None, False
        referrer, host, is_app = parsed
        if self._is_spam(host):
            return None, None, None, True
        return referrer, host, self.apps.get(host) if is_app else self.known_host(host), False

    def _known_host(self, host: str) -> Known | None:
        labels = host.split(".")
        for i in range(len(labels)):
            known = self.hosts.get(".".join(labels[i:]))
            if known is None and _tld_tail(labels[i + 1:]):
                known = self.brands.get(labels[i])
            if known is not None:
                return known
        return None

    def _known_utm(self, value: str) -> Known | None:
        key = value.strip().lower()
        known = self.utm.get(key)
        if known is None and "." in key and _HOST.match(key):
            known = self.known_host(_strip_www(key))
        return known

    def _is_spam(self, host: str) -> bool:
        labels = host.split(".")
        return any(".".join(labels[i:]) in self.spam for i in range(len(labels) - 1))

    def _channel(self, hit: Hit, category: str | None, has_referrer: bool) -> str:
        medium = (hit.utm_medium or "").strip().lower()
        campaign = (hit.utm_campaign or "").lower()
        utm_source = (hit.utm_source or "").lower()
        clicked = self.click_ids.get(hit.click_id) if hit.click_id else None
        paid = bool(medium) and self.paid.match(medium) is not None
        if campaign and self.cross_network.search(campaign):
            return "Cross-network"
        if (category == "search" and paid) or clicked == "Paid Search":
            return "Paid Search"
        if (category == "social" and paid) or clicked == "Paid Social":
            return "Paid Social"
        if medium in self.display or clicked == "Display":
            return "Display"
        if paid:
            return "Paid Other"  # paid video and shopping too: the channel list has no row of their own
        if category == "ai":
            return "AI Assistants"
        if category == "social" or medium in self.social:
            return "Organic Social"
        if category == "video" or (medium and self.video.search(medium)):
            return "Organic Video"
        if category == "search" or medium in self.organic:
            return "Organic Search"
        if (category == "email" or clicked == "Email" or (medium and self.email.search(medium))
                or (utm_source and self.email.search(utm_source))):
            return "Email"
        if medium in self.affiliate or clicked == "Affiliates":
            return "Affiliates"
        if medium in self.referral or has_referrer:
            return "Referral"
        if utm_source or medium or campaign or hit.click_id:
            return "Other"
        return "Direct"


def _parse(raw: str) -> tuple[str, str, bool] | None:
    """(referrer without query/fragment, host without www., is an Android app) — None for junk."""
    text = raw.strip()
    if not text or len(text) > 4096 or _SPACE.search(text):
        return None
    try:
        parts = urlsplit(text)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not host or not _HOST.match(host):
        return None
    if scheme == "android-app":
        return f"android-app://{host}", host, True
    if scheme not in ("http", "https") or ("." not in host and host != "localhost"):
        return None
    netloc = f"{host}:{port}" if port else host
    referrer = f"{scheme}://{netloc}{parts.path or '/'}"[:MAX_REFERRER]
    return referrer, _strip_www(host), False
