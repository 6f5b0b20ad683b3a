"""UTM parameters and ad click ids; every other query parameter is dropped unless allow-listed.

`utm_source` falls back to `source` and `ref` (as Plausible does). A click id
(gclid, fbclid, msclkid, ...) marks the visit as paid traffic for
`put_referrer`; only its name is stored, never its value, which is unique
per click and so identifies a person. Results are cached on the query string.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import parse_qsl, urlencode

from collector.events import Hit

UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
CLICK_IDS = ("gclid", "gbraid", "wbraid", "dclid", "fbclid", "msclkid", "ttclid", "twclid", "li_fat_id",
             "yclid", "epik", "rdt_cid", "sccid", "ScCid", "irclickid", "_kx", "mc_cid")
MAX_VALUE = 300


class PutCampaign:
    def __init__(self, query_allow: list[str] | tuple[str, ...] = (), sites=None):
        self.allow = tuple(query_allow)
        self.sites = sites  # the site registry: a site's own query_allow replaces the server-wide one
        self.campaign = lru_cache(maxsize=16384)(self._campaign)

    def _campaign(self, query: str, allow: tuple[str, ...]) -> tuple[tuple[str | None, ...], str | None, str | None]:
        """(utm values in UTM_KEYS order, click id name, kept query string)."""
        params: dict[str, str] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            params.setdefault(key, value)
        utm = [(params.get(key) or "").strip()[:MAX_VALUE] or None for key in UTM_KEYS]
        if utm[0] is None:
            utm[0] = (params.get("source") or params.get("ref") or "").strip()[:MAX_VALUE] or None
        click_id = next((key for key in CLICK_IDS if key in params), None)
        kept = [(k, params[k]) for k in allow if k in params]
        return tuple(utm), click_id, (urlencode(kept)[: MAX_VALUE * 2] if kept else None)

    def _allow(self, site: str) -> tuple[str, ...]:
        if self.sites is not None:
            view = self.sites.get(site)
            if view is not None and view.query_allow is not None:
                return view.query_allow
        return self.allow

    def __call__(self, hit: Hit) -> str | None:
        if not hit.params:
            return None
        utm, hit.click_id, hit.query = self.campaign(hit.params, self._allow(hit.site))
        hit.utm_source, hit.utm_medium, hit.utm_campaign, hit.utm_term, hit.utm_content = utm
        return None

    def many(self, hits: list[Hit]) -> tuple:
        """The batch form (collector/pipeline.py): each site's allow-list looked up once."""
        allows: dict[str, tuple[str, ...]] = {}
        for hit in hits:
            if hit.params:
                allow = allows.get(hit.site)
                if allow is None:
                    allow = allows[hit.site] = self._allow(hit.site)
                utm, hit.click_id, hit.query = self.campaign(hit.params, allow)
                hit.utm_source, hit.utm_medium, hit.utm_campaign, hit.utm_term, hit.utm_content = utm
        return ()
