"""Split the page URL into hostname and pathname (Plausible's rules).

The hostname is lower-cased with a leading `www.` removed (`(none)` when the
URL has no host); the pathname is percent-decoded, with the `#fragment`
appended in hash mode. Query parameters go to `hit.params` for
`put_campaign`, which decides what of them is kept.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlsplit

from collector.events import Hit


def put_url(hit: Hit) -> str | None:
    try:
        parts = urlsplit(hit.url)
        host = parts.hostname or ""
    except ValueError:
        return "invalid"
    host = host.strip().lower()
    if host.startswith("www."):
        host = host[4:]
    hit.hostname = host or "(none)"
    path = unquote(parts.path).rstrip() or "/"
    if hit.hash_mode and parts.fragment:
        path = f"{path}#{unquote(parts.fragment)}"
    hit.pathname = path
    if parts.query:
        params: dict[str, str] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            params.setdefault(key, value)
        hit.params = params
    return None
