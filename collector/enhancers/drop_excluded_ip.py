"""Drop hits from addresses the site excludes: the owner's office, a monitoring host (reason `excluded_ip`).

Needs the visitor's IP, so it runs before `scrub_ip` (which forgets it). The
parsed address is cached per hit only; sites without exclusions cost one dict
lookup.
"""

from __future__ import annotations

import ipaddress

from collector.events import Hit


class DropExcludedIp:
    def __init__(self, registry):
        self.registry = registry

    def many(self, hits: list[Hit]) -> list[tuple[int, str]]:
        """The batch form: the sites of the batch looked up once; none excludes addresses, nothing to do."""
        get = self.registry.get
        if not any((view := get(site)) is not None and view.excluded_nets for site in {hit.site for hit in hits}):
            return []
        return [(index, reason) for index, hit in enumerate(hits) if (reason := self(hit)) is not None]

    def __call__(self, hit: Hit) -> str | None:
        site = self.registry.get(hit.site)
        if site is None or not site.excluded_nets or not hit.ip:
            return None
        try:
            addr = ipaddress.ip_address(hit.ip)
        except ValueError:
            return None
        if any(addr.version == net.version and addr in net for net in site.excluded_nets):
            return "excluded_ip"
        return None
