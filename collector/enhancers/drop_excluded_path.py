"""Drop hits on pages the site excludes by glob pattern (reason `excluded_path`).

For admin areas, previews and staging paths an owner does not want counted.
`*` matches within a path segment, `**` across segments; all of a site's
patterns are one compiled regex, so the cost does not grow per pattern.
"""

from __future__ import annotations

from collector.events import Hit


class DropExcludedPath:
    def __init__(self, registry):
        self.registry = registry

    def __call__(self, hit: Hit) -> str | None:
        site = self.registry.get(hit.site)
        if site is not None and site.excluded_path is not None and site.excluded_path.match(hit.pathname or "/"):
            return "excluded_path"
        return None

    def many(self, hits: list[Hit]) -> list[tuple[int, str]]:
        """The batch form: the sites of the batch looked up once; none excludes paths, nothing to do."""
        get = self.registry.get
        ruled = {site: view.excluded_path for site in {hit.site for hit in hits}
                 if (view := get(site)) is not None and view.excluded_path is not None}
        if not ruled:
            return []
        return [(index, "excluded_path") for index, hit in enumerate(hits)
                if (pattern := ruled.get(hit.site)) is not None and pattern.match(hit.pathname or "/")]
