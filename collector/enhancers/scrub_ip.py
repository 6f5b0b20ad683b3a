"""Forget what identifies a person: the last edge step, after everything that needs the IP or UA.

After this, the hit holds only derived, anonymous fields; nothing later (bus,
worker, store) ever sees the address, the user-agent string, the raw URLs or
a server-side sender's user key.
"""

from __future__ import annotations

from collector.events import Hit


def scrub_ip(hit: Hit) -> str | None:
    hit.ip = None
    hit.user_agent = None
    hit.visitor_key = None
    hit.params = None
    hit.url = ""
    hit.raw_referrer = ""
    return None


def _scrub_many(hits: list[Hit]) -> tuple:
    for hit in hits:
        hit.ip = None
        hit.user_agent = None
        hit.visitor_key = None
        hit.params = None
        hit.url = ""
        hit.raw_referrer = ""
    return ()


scrub_ip.many = _scrub_many  # the batch form (collector/pipeline.py)
