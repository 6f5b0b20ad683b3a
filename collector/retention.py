"""Per-site retention: events older than a site's `retention_days` are deleted, once a night.

Sites without `retention_days` (or with 0) keep everything. Runs as a job
(collector/jobs.py) in the server process, through a cursor on the store.
"""

from __future__ import annotations

import logging

log = logging.getLogger("strana.retention")


def apply_retention(runtime) -> dict[str, int]:
    """Deletes expired events per site; returns {site: rows deleted}."""
    deleted: dict[str, int] = {}
    con = runtime.sink.reader()
    try:
        for domain, view in list(runtime.sites.views.items()):
            days = view.config.get("retention_days")
            if not days:
                continue
            n = con.execute('DELETE FROM events WHERE site = ? AND "timestamp" < now() - to_days(?)',
                            [domain, int(days)]).fetchone()[0]
            if n:
                deleted[domain] = n
                log.info("retention: %d events of %s older than %d days deleted", n, domain, days)
    finally:
        con.close()
    return deleted
