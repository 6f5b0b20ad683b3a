"""UTM parameters and ad click ids; every other query parameter is dropped unless allow-listed.

`utm_source` falls back to `source` and `ref` (as Plausible does). A click id
(gclid, fbclid, msclkid, ...) marks the visit as paid traffic for
`put_referrer`; only its name is stored, never its value, which is unique
per click and so identifies a person.
"""

from __future__ import annotations

from urllib.parse import urlencode

from collector.events import Hit

UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
CLICK_IDS = ("gclid", "gbraid", "wbraid", "dclid", "fbclid", "msclkid", "ttclid", "twclid", "li_fat_id",
             "yclid", "epik", "rdt_cid", "sccid", "ScCid", "irclickid", "_kx", "mc_cid")
MAX_VALUE = 300


class PutCampaign:
    def __init__(self, query_allow: list[str] | tuple[str, ...] = ()):
        self.allow = tuple(query_allow)

    def __call__(self, hit: Hit) -> str | None:
        params = hit.params
        if not params:
            return None
        for key in UTM_KEYS:
            value = params.get(key)
            if value:
                setattr(hit, key, value.strip()[:MAX_VALUE])
        if hit.utm_source is None:
            fallback = params.get("source") or params.get("ref")
            if fallback:
                hit.utm_source = fallback.strip()[:MAX_VALUE]
        for key in CLICK_IDS:
            if key in params:
                hit.click_id = key
                break
        if self.allow:
            kept = [(k, params[k]) for k in self.allow if k in params]
            if kept:
                hit.query = urlencode(kept)[:MAX_VALUE * 2]
        return None
