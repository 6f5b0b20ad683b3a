"""Names, not numbers: which sites exist and which custom-property keys a site's events carry.

The stats API answers "how many" for a dimension it is given; these two
lookups find the dimensions to ask about (the site list on `/`, the property
keys in the custom-events card). Every count the dashboard shows still comes
from the query layer.
"""

from __future__ import annotations

import datetime as dt


def sites_with_events(con) -> list[str]:
    return [r[0] for r in con.execute("SELECT site FROM events GROUP BY site ORDER BY site").fetchall()]


def configured_sites(settings) -> list[str]:
    values = getattr(settings, "values", {}) or {}
    sites = values.get("sites", {})
    names = list(sites) if isinstance(sites, dict) else []
    names += list((values.get("ingest") or {}).get("sites") or [])
    return sorted({str(n).strip().lower() for n in names if str(n).strip()})


def has_events(con, site: str) -> bool:
    return con.execute("SELECT 1 FROM events WHERE site = $site LIMIT 1", {"site": site}).fetchone() is not None


def prop_keys(con, site: str, start: dt.datetime, end: dt.datetime, limit: int = 50) -> list[str]:
    rows = con.execute(
        'SELECT DISTINCT unnest(map_keys(props)) AS k FROM events WHERE site = $site AND "timestamp" >= $start '
        'AND "timestamp" < $end AND props IS NOT NULL AND cardinality(props) > 0 ORDER BY k LIMIT $limit',
        {"site": site, "start": start.astimezone(dt.UTC), "end": end.astimezone(dt.UTC), "limit": limit}).fetchall()
    return [r[0] for r in rows if r[0]]
