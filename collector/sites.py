"""Sites: what a site's settings may hold, how they are checked, and how they are kept in the `sites` table.

A site is a domain plus a small JSON object of settings. The same keys work in
the TOML file (`[sites."example.com"] timezone = "Europe/Berlin"`) and in the
table (`strana sites set`, `PATCH /api/v1/sites/{domain}`); for a site in
both, each key set in the table wins over the file (a per-key merge).
`validate` turns loose input (CLI strings, JSON, TOML) into a clean config
or raises `SiteError` naming the key at fault, so nothing invalid is stored.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import zoneinfo
from typing import Any

DNT_POLICIES = ("ignore", "anonymous", "drop")

# key -> (kind, help). Kinds: str, list, int, bool, goals, tz, dnt.
KEYS: dict[str, tuple[str, str]] = {
    "timezone": ("tz", "IANA time zone the reports use for days (default UTC)"),
    "hostnames": ("list", "page hosts accepted for the site (`*.example.com` allowed); others are dropped as "
                  "foreign_host; empty: any host"),
    "excluded_paths": ("list", "glob patterns (`/admin/*`, `/preview/**`) of pages not counted (excluded_path)"),
    "excluded_ips": ("list", "addresses or CIDRs whose hits are not counted (excluded_ip)"),
    "dnt_policy": ("dnt", "DNT / Sec-GPC for this site: ignore, anonymous or drop (default: [privacy] dnt_policy)"),
    "retention_days": ("int", "events older than this many days are deleted nightly (0: keep forever)"),
    "query_allow": ("list", "query parameters kept besides campaign keys (default: [ingest] query_allow)"),
    "goals": ("goals", "conversion goals: [{event = \"signup\"}, {page = \"/blog/*\"}]"),
    "require_key": ("bool", "the batch API needs a `write` API key for this site"),
}

_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9.\-_]{0,251}[a-z0-9])?(:[0-9]{1,5})?$")


class SiteError(ValueError):
    """Bad site input; `key` names the setting at fault."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key


def clean_domain(raw: Any) -> str:
    if not isinstance(raw, str):
        raise SiteError("domain", "must be a string like example.com")
    domain = raw.strip().lower()
    if domain.startswith("www."):
        domain = domain[4:]
    if not _DOMAIN.match(domain) or ".." in domain:
        raise SiteError("domain", f"{raw!r} is not a site domain like example.com")
    return domain


def _as_list(key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise SiteError(key, "is not a JSON list") from None
        else:
            value = [p.strip() for p in text.split(",") if p.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise SiteError(key, "must be a list of non-empty strings")
    if len(value) > 1000:
        raise SiteError(key, "at most 1000 entries")
    return [v.strip() for v in value]


def _check_one(key: str, kind: str, value: Any) -> Any:
    if kind == "tz":
        if not isinstance(value, str) or not value.strip():
            raise SiteError(key, "must be an IANA time zone like Europe/Berlin")
        try:
            zoneinfo.ZoneInfo(value.strip())
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise SiteError(key, f"unknown time zone {value!r}") from None
        return value.strip()
    if kind == "dnt":
        if value not in DNT_POLICIES:
            raise SiteError(key, f"must be one of {', '.join(DNT_POLICIES)}")
        return value
    if kind == "int":
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 36500:
            raise SiteError(key, "must be a whole number of days from 0 to 36500")
        return value
    if kind == "bool":
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if not isinstance(value, bool):
            raise SiteError(key, "must be true or false")
        return value
    if kind == "goals":
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise SiteError(key, "is not a JSON list of goals") from None
        if not isinstance(value, list):
            raise SiteError(key, 'must be a list like [{"event": "signup"}, {"page": "/blog/*"}]')
        for goal in value:
            if not isinstance(goal, dict) or set(goal) - {"event", "page", "display_name"} or \
                    len({"event", "page"} & set(goal)) != 1 or not all(isinstance(v, str) for v in goal.values()):
                raise SiteError(key, f"invalid goal {goal!r}: give exactly one of event or page (strings)")
            if "page" in goal and not goal["page"].startswith("/"):
                raise SiteError(key, f"invalid goal {goal!r}: page must start with /")
        return value
    items = _as_list(key, value)
    if key == "excluded_ips":
        for item in items:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise SiteError(key, f"{item!r} is not an address or CIDR") from None
    if key == "excluded_paths" and any(not p.startswith("/") for p in items):
        raise SiteError(key, "patterns must start with /")
    if key == "hostnames":
        items = [h.lower().removeprefix("www.") for h in items]
    return items


def validate(changes: Any, base: dict | None = None) -> dict:
    """`base` with `changes` applied; a value of None removes the key. Unknown keys are refused."""
    if not isinstance(changes, dict):
        raise SiteError("body", "must be an object of site settings")
    out = dict(base or {})
    for key, value in changes.items():
        if key not in KEYS:
            raise SiteError(key, f"unknown site setting (known: {', '.join(KEYS)})")
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _check_one(key, KEYS[key][0], value)
    return out


# ---- the table ----

def _row(domain, config, origin, created) -> dict:
    when = dt.datetime.fromtimestamp(created, dt.UTC).isoformat() if created is not None else None
    return {"domain": domain, "origin": origin, "created_at": when,
            "settings": json.loads(config) if isinstance(config, str) else config}


def list_sites(con) -> list[dict]:
    rows = con.execute("SELECT domain, config, origin, epoch(created_at) FROM sites ORDER BY domain").fetchall()
    return [_row(*r) for r in rows]


def get_site(con, domain: str) -> dict | None:
    row = con.execute("SELECT domain, config, origin, epoch(created_at) FROM sites WHERE domain = ?",
                      [domain]).fetchone()
    return _row(*row) if row else None


def put_site(con, domain: str, config: dict, origin: str = "operator") -> dict:
    """Create or replace a site (an operator's write turns an auto-created site into a configured one)."""
    domain = clean_domain(domain)
    config = validate(config)
    con.execute("INSERT INTO sites (domain, config, origin) VALUES (?, ?, ?) ON CONFLICT (domain) DO UPDATE SET "
                "config = excluded.config, origin = excluded.origin", [domain, json.dumps(config), origin])
    return get_site(con, domain)


def add_auto_site(con, domain: str) -> bool:
    """Open mode: the first hit of an unknown site makes it. False when it already existed."""
    before = con.execute("SELECT count(*) FROM sites WHERE domain = ?", [domain]).fetchone()[0]
    con.execute("INSERT INTO sites (domain, config, origin) VALUES (?, '{}', 'auto') ON CONFLICT DO NOTHING",
                [domain])
    return before == 0


def remove_site(con, domain: str) -> bool:
    """Deletes the site's row and its keys, links and memberships; its events stay (retention deletes them)."""
    domain = clean_domain(domain)
    found = con.execute("SELECT count(*) FROM sites WHERE domain = ?", [domain]).fetchone()[0]
    con.execute("DELETE FROM sites WHERE domain = ?", [domain])
    for table in ("api_keys", "shared_links", "memberships"):
        con.execute(f"DELETE FROM {table} WHERE site = ?", [domain])
    return bool(found)
