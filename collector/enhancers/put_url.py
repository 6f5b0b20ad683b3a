"""Split the page URL into hostname and pathname (Plausible's rules).

The hostname is lower-cased with a leading `www.` removed (`(none)` when the
URL has no host); the pathname is percent-decoded, with the `#fragment`
appended in hash mode. The raw query string goes to `hit.params` for
`put_campaign`, which decides what of it is kept. Sites send the same few
hundred URLs over and over, so the split is cached on the URL.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import unquote, urlsplit

from collector.events import Hit


@lru_cache(maxsize=16384)
def split_url(url: str, hash_mode: bool) -> tuple[str, str, str] | None:
    """(hostname, pathname, query string), or None when the URL cannot be split."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return None
    host = host.strip().lower()
    if host.startswith("www."):
        host = host[4:]
    path = unquote(parts.path).rstrip() or "/"
    if hash_mode and parts.fragment:
        path = f"{path}#{unquote(parts.fragment)}"
    return host or "(none)", path, parts.query


def put_url(hit: Hit) -> str | None:
    split = split_url(hit.url, hit.hash_mode)
    if split is None:
        return "invalid"
    hit.hostname, hit.pathname, query = split
    if query:
        hit.params = query
    return None


def _put_url_many(hits: list[Hit]) -> list[tuple[int, str]]:
    drops = []
    for index, hit in enumerate(hits):
        split = split_url(hit.url, hit.hash_mode)
        if split is None:
            drops.append((index, "invalid"))
            continue
        hit.hostname, hit.pathname, query = split
        if query:
            hit.params = query
    return drops


put_url.many = _put_url_many  # the batch form (collector/pipeline.py): one loop, no call per hit
