"""Drop hits whose page host is not one of the site's hostnames (reason `foreign_host`).

Someone who copies a site's snippet onto another domain, or a scraped copy
of the site, would otherwise count in its stats. Sites without `hostnames`
accept any host. Reads the in-memory site registry, never the store.
"""

from __future__ import annotations

from collector.events import Hit


class DropForeignHost:
    def __init__(self, registry):
        self.registry = registry

    def __call__(self, hit: Hit) -> str | None:
        site = self.registry.get(hit.site)
        if site is not None and not site.host_allowed(hit.hostname):
            return "foreign_host"
        return None

    def many(self, hits: list[Hit]) -> list[tuple[int, str]]:
        """The batch form: the sites of the batch looked up once; none with `hostnames`, nothing to do."""
        get = self.registry.get
        ruled = {site: view for site in {hit.site for hit in hits}
                 if (view := get(site)) is not None and (view.exact_hosts or view.host_suffixes)}
        if not ruled:
            return []
        return [(index, "foreign_host") for index, hit in enumerate(hits)
                if (view := ruled.get(hit.site)) is not None and not view.host_allowed(hit.hostname)]
