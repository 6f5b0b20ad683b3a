"""The in-memory view of every site, read by the ingest path on each hit (never a DB query per hit).

`SiteRegistry.reload()` reads the `sites` table, merges the TOML file's
`[sites."..."]` sections and `[ingest] sites` under it (the table wins, key by
key), compiles what the edge steps need (host matchers, one regex of excluded
paths, parsed networks) and swaps the result in atomically. It is called at
start and after every change made through the API; the CLI writes to the
table only while the server is stopped, so a start picks it up.

Open mode: while no site is configured by an operator (the table, or
`[ingest] sites`), or when `[ingest] open_mode = true`, any site is accepted
and an unknown one is created (origin `auto`) on its first hit, off the hot
path. Auto-created sites and the file's `[sites."..."]` settings sections do
not close open mode. Once an operator added a site, hits for unknown sites
are refused with 400 `unknown site`.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from collector import sites as site_rows

log = logging.getLogger("strana.sites")
MAX_AUTO_SITES = 1000  # open mode cannot be used to grow the table without bound


def glob_regex(patterns: list[str]) -> re.Pattern | None:
    """`*` matches within one path segment, `**` across segments, `?` one character."""
    if not patterns:
        return None
    parts = []
    for pattern in patterns:
        out, i = [], 0
        while i < len(pattern):
            if pattern.startswith("**", i):
                out.append(".*")
                i += 2
            elif pattern[i] == "*":
                out.append("[^/]*")
                i += 1
            elif pattern[i] == "?":
                out.append("[^/]")
                i += 1
            else:
                out.append(re.escape(pattern[i]))
                i += 1
        parts.append("".join(out))
    return re.compile("(?:" + "|".join(parts) + r")\Z")


@dataclass
class SiteView:
    """One site's settings, compiled for the edge steps."""

    domain: str
    config: dict
    origin: str = "operator"
    exact_hosts: frozenset[str] = frozenset()
    host_suffixes: tuple[str, ...] = ()
    excluded_path: re.Pattern | None = None
    excluded_nets: tuple = ()
    dnt_policy: str | None = None
    query_allow: tuple[str, ...] | None = None
    require_key: bool = False

    @classmethod
    def build(cls, domain: str, config: dict, origin: str) -> SiteView:
        hosts = config.get("hostnames") or []
        return cls(
            domain=domain, config=config, origin=origin,
            exact_hosts=frozenset(h for h in hosts if not h.startswith("*.")),
            host_suffixes=tuple(h[1:] for h in hosts if h.startswith("*.")),
            excluded_path=glob_regex(config.get("excluded_paths") or []),
            excluded_nets=tuple(ipaddress.ip_network(n, strict=False) for n in config.get("excluded_ips") or []),
            dnt_policy=config.get("dnt_policy"),
            query_allow=tuple(config["query_allow"]) if "query_allow" in config else None,
            require_key=bool(config.get("require_key")),
        )

    def host_allowed(self, host: str) -> bool:
        if not self.exact_hosts and not self.host_suffixes:
            return True
        return host in self.exact_hosts or any(host.endswith(s) for s in self.host_suffixes)


class SiteRegistry:
    """Not a dataclass on purpose: Litestar would try to convert it when Runtime is injected."""

    def __init__(self, settings, connect=None):
        self.settings = settings
        self.connect = connect  # () -> a DuckDB connection (cursor) on the store
        self.views: dict[str, SiteView] = {}
        self.configured = False
        self._auto_seen: set = set()
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self.listeners: list = []
        self.data_sites: set = set()  # sites that have stored events (read once at start)
        # the file's [sites] table, kept before reload() replaces settings.values["sites"] with the merged view
        self._file_table = dict(settings.values.get("sites", {}) or {})

    @property
    def open_mode(self) -> bool:
        return bool(self.settings.get("ingest", "open_mode")) or not self.configured

    def _file_sites(self) -> dict[str, tuple[dict, str]]:
        """Origin `list` for [ingest] sites (closes open mode), `file` for [sites."..."] settings (does not)."""
        out: dict[str, tuple[dict, str]] = {}
        if isinstance(self._file_table, dict):
            for name, conf in self._file_table.items():
                if isinstance(conf, dict):
                    config = site_rows.validate({k: v for k, v in conf.items() if k in site_rows.KEYS})
                    # keys other parts own (funnels, schemas, ...) pass through untouched
                    config.update({k: v for k, v in conf.items() if k not in site_rows.KEYS})
                    out[site_rows.clean_domain(name)] = (config, "file")
        for name in self.settings.get("ingest", "sites") or []:
            domain = site_rows.clean_domain(name)
            out[domain] = (out.get(domain, ({}, ""))[0], "list")
        return out

    def reload(self) -> None:
        merged = self._file_sites()
        rows = []
        if self.connect is not None:
            con = self.connect()
            try:
                rows = site_rows.list_sites(con)
                if not self.data_sites:
                    self.data_sites = {r[0] for r in con.execute("SELECT DISTINCT site FROM events").fetchall()}
            finally:
                con.close()
        for row in rows:
            base, file_origin = merged.get(row["domain"], ({}, "auto"))
            origin = file_origin if row["origin"] == "auto" else row["origin"]
            merged[row["domain"]] = ({**base, **row["settings"]}, origin)
        views = {d: SiteView.build(d, c, o) for d, (c, o) in merged.items()}
        with self._lock:
            self.views = views
            self.configured = any(v.origin in ("operator", "list") for v in views.values())
            self._auto_seen = set(views)
        # The reports read per-site settings (timezone, goals) from settings.values["sites"]: publish the merge.
        self.settings.values["sites"] = {d: dict(v.config) for d, v in views.items()}
        for listener in self.listeners:
            listener()

    def get(self, domain: str) -> SiteView | None:
        return self.views.get(domain)

    def domains(self) -> list[str]:
        return sorted(self.views)

    # ---- the ingest gate: `domain in registry` ----
    def __contains__(self, domain: str) -> bool:
        if domain in self.views:
            return True
        if not self.open_mode:
            return False
        if domain not in self._auto_seen and len(self._auto_seen) < MAX_AUTO_SITES and self.connect is not None:
            with self._lock:
                if domain in self._auto_seen:
                    return True
                self._auto_seen.add(domain)
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="strana-sites")
            self._pool.submit(self._create, domain)
        return True

    def _create(self, domain: str) -> None:
        try:
            con = self.connect()
            try:
                created = site_rows.add_auto_site(con, domain)
            finally:
                con.close()
            self.data_sites = self.data_sites | {domain}
            if created:
                log.info("open mode: site %s created on its first hit (configure sites to close open mode)", domain)
            self.reload()
        except Exception:  # a failed auto-create must never fail ingest
            log.exception("open mode: could not create site %s", domain)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
