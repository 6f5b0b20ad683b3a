"""Retention: events older than a site's `retention_days` are deleted, from the lake or from DuckDB.

`[sites."example.com"] retention_days = 400` sets a site's own limit; other
sites take `[sink] retention_days`; 0 keeps forever. A day is kept while it is
less than `retention_days` days before today (UTC), so 1 keeps only today.

In the lake a whole partition goes: data files first, then its manifests (a
reader that still saw a merged output also sees its manifest, see
lake_reader.py), and readers already leave out expired partitions, so none
opens a file that is being deleted. In DuckDB it is a DELETE. Both are
idempotent; a crashed run is finished by the next.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from collector.rollups_today import forget

if TYPE_CHECKING:
    from collector.sinks.lake import Lake


log = logging.getLogger("strana.retention")


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


class RetentionPolicy:
    def __init__(self, default_days: int = 0, per_site: dict[str, int] | None = None):
        self.default_days = default_days
        self.per_site = per_site or {}

    @classmethod
    def from_settings(cls, settings) -> RetentionPolicy:
        per_site = {}
        for site, table in (settings.values.get("sites") or {}).items():
            if isinstance(table, dict) and "retention_days" in table:
                per_site[site.lower()] = int(table["retention_days"])
        return cls(int(settings.sink.retention_days), per_site)

    def days(self, site: str) -> int:
        return self.per_site.get(site, self.default_days)

    def cutoff(self, site: str, today: dt.date) -> dt.date | None:
        """The first day kept; None: everything is kept."""
        days = self.days(site)
        return today - dt.timedelta(days=days - 1) if days > 0 else None

    def keep(self, site: str, day: dt.date, today: dt.date | None = None) -> bool:
        cutoff = self.cutoff(site, today or utc_today())
        return cutoff is None or day >= cutoff


def expire_lake(lake: Lake, policy: RetentionPolicy, today: dt.date | None = None) -> int:
    """Delete the lake's partitions past their site's retention; returns how many went."""
    from collector.sinks.lake_reader import scan  # the lake's modules load with the lake, not in every server

    today = today or utc_today()
    gone = 0
    for part in scan(lake).values():
        if policy.keep(part.site, part.day, today):
            continue
        for rel in part.files:
            lake.delete(rel)
        for rel in part.manifests:
            lake.delete(rel)
        gone += 1
    if gone:
        log.info("retention: %d partition(s) deleted from the lake", gone)
    return gone


def expire_duckdb(con, policy: RetentionPolicy, today: dt.date | None = None, where_site: str | None = None) -> int:
    """DELETE rows past their site's retention from the DuckDB store; returns the events deleted.
    With `where_site`, only that site, by the policy's default."""
    today = today or utc_today()
    deleted = 0
    if where_site is not None:
        rules = [([where_site], "site = ?", policy.cutoff("\0default", today))]
    else:
        rules = [([site], "site = ?", policy.cutoff(site, today)) for site in policy.per_site]
        if policy.per_site:
            others = "site NOT IN (" + ", ".join("?" for _ in policy.per_site) + ")"
            rules.append((list(policy.per_site), others, policy.cutoff("\0default", today)))
        else:
            rules.append(([], "true", policy.cutoff("\0default", today)))
    for params, where, cutoff in rules:
        if cutoff is None:
            continue
        start = f"{cutoff}T00:00:00+00:00"
        deleted += con.execute(f'DELETE FROM events WHERE {where} AND "timestamp" < ?::TIMESTAMPTZ',
                               [*params, start]).fetchone()[0]
        con.execute(f"DELETE FROM drops WHERE {where} AND day < ?::DATE", [*params, str(cutoff)])
    if deleted:
        log.info("retention: %d event(s) deleted from DuckDB", deleted)
    return deleted


def effective_policy(runtime) -> RetentionPolicy:
    """The settings' policy, with each site's `retention_days` from the sites table (which wins)."""
    base = getattr(runtime, "retention", None) or RetentionPolicy()
    per_site = dict(base.per_site)
    sites = getattr(runtime, "sites", None)
    for domain, view in list(sites.views.items()) if sites is not None else ():
        days = view.config.get("retention_days")
        if days is not None:
            per_site[domain] = int(days)
    return RetentionPolicy(base.default_days, per_site)


def apply_retention(runtime, today: dt.date | None = None) -> dict[str, int]:
    """The nightly job: expire by the effective policy on whichever sink runs; returns {site: events deleted}
    for DuckDB (partitions are counted, not rows, in the lake: {"*": partitions})."""
    policy = effective_policy(runtime)
    lake = getattr(runtime.sink, "lake", None)
    if lake is not None:
        gone = expire_lake(lake, policy, today)
        runtime.sink.lake_reader.invalidate()
        return {"*": gone} if gone else {}
    con = runtime.sink.reader()
    try:
        deleted = {}
        sites = {row[0] for row in con.execute("SELECT DISTINCT site FROM events").fetchall()}
        for site in sorted(sites):
            n = expire_duckdb(con, RetentionPolicy(policy.days(site), {}), today, where_site=site)
            if n:
                deleted[site] = n
                forget(con, site)  # its rows are renumbered at a checkpoint: built again, not checked and refused
        return deleted
    finally:
        con.close()
