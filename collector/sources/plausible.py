"""Plausible's Events API body, turned into hits; shared by /api/event, the pixel and the batch API.

Follows Plausible's request parsing (lib/plausible/ingestion/request.ex):
short and long keys (`n`/`name`, `u`/`url`, `d`/`domain`, `r`/`referrer`,
`p`/`props`/`m`/`meta`, `$`/`revenue`, `h`/`hashMode`, `i`/`interactive`,
`sd`/`e` for engagement), an integer name becomes a string, props may arrive
as a JSON string and lose list/object/blank values, `d` may list several
domains, and with no `d` the domain is the URL's host. Where Strana is
stricter it is on purpose and says so: a URL must be absolute, and more props
than allowed is an error rather than a silent cut.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import socket
import uuid
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

import msgspec

from collector.events import Hit, new_event_id
from collector.sources.http import BadRequest

_NS = uuid.UUID("6f1c3a52-8d0e-4a43-9a55-2f0e7c1b9d11")  # namespace for non-UUID client event ids


@dataclass(frozen=True)
class Limits:
    max_url: int = 2048
    max_name: int = 120
    max_props: int = 30
    max_key: int = 300
    max_value: int = 2000
    max_past_us: int = 7 * 86400 * 1_000_000
    max_future_us: int = 300 * 1_000_000
    sites: frozenset[str] | None = None  # or the site registry (collector/site_registry.py): anything with `in`
    site_rate: object = None  # per-site rate limit (collector/ratelimit.py): called with the domains, may raise 429

    @classmethod
    def from_settings(cls, settings) -> Limits:
        ing = settings.ingest
        return cls(
            max_url=ing.max_url_length, max_name=ing.max_name_length, max_props=ing.max_props,
            max_key=ing.max_prop_key_length, max_value=ing.max_prop_value_length,
            max_past_us=ing.max_past_days * 86400 * 1_000_000, max_future_us=ing.max_future_seconds * 1_000_000,
            sites=frozenset(s.strip().lower() for s in ing.sites) if ing.sites else None,
        )


def _pick(obj: dict, *keys: str):
    for key in keys:
        value = obj.get(key)
        if value is not None:
            return key, value
    return keys[0], None


def scalar_text(value) -> str | None:
    """A JSON scalar as the text a prop holds (Elixir's to_string: true → \"true\"); None for anything else."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    return None


def parse_props(raw, field: str, limits: Limits) -> dict[str, str] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            raw = msgspec.json.decode(raw)
        except (msgspec.DecodeError, RecursionError):
            raise BadRequest(422, "must be an object (or a JSON string of one)", field) from None
    if not isinstance(raw, dict):
        raise BadRequest(422, "must be an object of names to values", field)
    props: dict[str, str] = {}
    for key, value in raw.items():
        text = scalar_text(value)
        if text is None or not key.strip() or not text.strip():
            continue  # Plausible drops list/object/blank values
        if len(key.encode()) > limits.max_key:
            raise BadRequest(422, f"property names must be at most {limits.max_key} bytes", field)
        if len(text.encode()) > limits.max_value:
            raise BadRequest(422, f"property values must be at most {limits.max_value} bytes ({key!r})", field)
        props[key] = text
    if len(props) > limits.max_props:
        raise BadRequest(422, f"at most {limits.max_props} properties per event, got {len(props)}", field)
    return props or None


def parse_revenue(raw, field: str) -> tuple[float, str] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            raw = msgspec.json.decode(raw)
        except (msgspec.DecodeError, RecursionError):
            raise BadRequest(422, "must be an object like {\"amount\": 9.5, \"currency\": \"EUR\"}", field) from None
    if not isinstance(raw, dict):
        raise BadRequest(422, "must be an object like {\"amount\": 9.5, \"currency\": \"EUR\"}", field)
    amount, currency = raw.get("amount"), raw.get("currency")
    if isinstance(amount, str):
        try:
            amount = float(amount)
        except ValueError:
            raise BadRequest(422, "amount must be a number", field) from None
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        raise BadRequest(422, "amount must be a number", field)
    if abs(amount) > 1e15:  # before isfinite: an integer like 2**2000 has no float
        raise BadRequest(422, "amount is out of range", field)
    if not math.isfinite(amount):
        raise BadRequest(422, "amount is out of range", field)
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
        raise BadRequest(422, "currency must be a three-letter ISO 4217 code", field)
    return float(amount), currency.upper()


def normal_ip(text: str) -> str:
    """The address in its canonical text form; ValueError if it is none. inet_pton is ~10x ipaddress here."""
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    try:
        return socket.inet_ntop(family, socket.inet_pton(family, text))
    except OSError:
        raise ValueError(text) from None


@lru_cache(maxsize=16384)
def _check_url(url: str) -> tuple[str | None, str | None]:
    """(host, None) for a usable page URL, (None, what is wrong) otherwise. Cached: pages repeat."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 -- raises ValueError on a port out of range
    except ValueError:
        return None, "must be a valid URL"
    if parts.scheme.lower() in ("data", "javascript", "blob"):
        return None, "scheme is not allowed"
    if not parts.scheme or not host or any(c.isspace() or c in "<>\"{}|\\^`\x00" for c in host):
        return None, "must be an absolute URL like https://example.com/page"
    return host, None


def parse_url(raw, field: str, limits: Limits) -> tuple[str, str]:
    """(url, its host) or BadRequest."""
    if raw is None:
        raise BadRequest(422, "is required", field)
    if not isinstance(raw, str):
        raise BadRequest(422, "must be a string", field)
    if len(raw) > limits.max_url:
        raise BadRequest(422, f"must be at most {limits.max_url} characters", field)
    url = raw.strip()
    host, problem = _check_url(url)
    if problem:
        raise BadRequest(422, problem, field)
    return url, host


_BAD_DOMAIN = re.compile(r"[\s/?#\x00]")


@lru_cache(maxsize=4096)
def _split_domains(raw: str) -> tuple[str, ...] | str:
    """The domains in `d` (lower-case, no www.), or what is wrong with it. Cached: sites send the same `d`."""
    domains = []
    for part in raw.split(","):
        part = part.strip().lower()
        if part.startswith("www."):
            part = part[4:]
        if part:
            domains.append(part)
    if not domains:
        return "can't be blank"
    if any(len(d) > 253 or _BAD_DOMAIN.search(d) for d in domains):
        return "must be a site domain like example.com"
    return tuple(dict.fromkeys(domains))


def parse_domains(raw, field: str, host: str, limits: Limits) -> list[str]:
    if raw is None:
        raw = host
    elif not isinstance(raw, str):
        raise BadRequest(422, "must be a string", field)
    split = _split_domains(raw)
    if isinstance(split, str):
        raise BadRequest(422, split, field)
    domains = list(split)
    if limits.sites is not None:
        known = [d for d in domains if d in limits.sites]
        if not known:
            raise BadRequest(400, f"unknown site {', '.join(domains)!r}: not configured (strana sites add, "
                             "or [ingest] sites / open_mode)", field, reason="unknown_site")
        domains = known
    if limits.site_rate is not None:
        limits.site_rate(domains)
    return domains


def parse_timestamp(raw, field: str, now_us: int, limits: Limits) -> int:
    if isinstance(raw, str):
        try:
            when = dt.datetime.fromisoformat(raw.strip())
        except ValueError:
            raise BadRequest(422, "must be an ISO 8601 date-time like 2026-11-23T10:00:00Z", field) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        try:
            us = int(when.timestamp() * 1_000_000)
        except (OverflowError, OSError, ValueError):
            raise BadRequest(422, "is out of range", field) from None
    else:
        raise BadRequest(422, "must be an ISO 8601 date-time string", field)
    if us < now_us - limits.max_past_us:
        raise BadRequest(422, f"is older than {limits.max_past_us // 86_400_000_000} days", field)
    if us > now_us + limits.max_future_us:
        raise BadRequest(422, f"is more than {limits.max_future_us // 1_000_000} seconds in the future", field)
    return us


def parse_event_id(raw, field: str) -> bytes:
    if not isinstance(raw, str) or not raw or len(raw) > 128:
        raise BadRequest(422, "must be a non-empty string of at most 128 characters", field)
    try:
        return uuid.UUID(raw).bytes
    except ValueError:
        return uuid.uuid5(_NS, raw).bytes


def _engagement(obj: dict, hit: Hit, prefix: str) -> None:
    def as_int(value):
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                return None
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    sd, e = as_int(obj.get("sd")), as_int(obj.get("e"))
    if sd is not None and sd >= 0:
        hit.scroll_depth = min(sd, 100)
    if e is not None and 0 <= e < 30 * 86400 * 1000:
        hit.engagement_ms = e
    if hit.scroll_depth is None and hit.engagement_ms is None:
        raise BadRequest(422, "engagement event requires a valid integer value for at least one of 'sd' or 'e'",
                         prefix + "n")


def hits_from_payload(obj, limits: Limits, *, now_us: int, via: str, server_fields: bool = False,
                      prefix: str = "") -> list[Hit]:
    """One payload → one hit per domain. Raises BadRequest naming the field at fault."""
    if not isinstance(obj, dict):
        raise BadRequest(400, "must be a JSON object", prefix.rstrip(".") or None)
    key, name = _pick(obj, "n", "name")
    if isinstance(name, int) and not isinstance(name, bool):
        name = str(name)
    if name is None or (isinstance(name, str) and not name.strip()):
        raise BadRequest(422, "is required (e.g. \"pageview\")", prefix + key)
    if not isinstance(name, str):
        raise BadRequest(422, "must be a string", prefix + key)
    if len(name) > limits.max_name or "\x00" in name:
        raise BadRequest(422, f"must be at most {limits.max_name} characters, without NUL", prefix + key)

    key, raw_url = _pick(obj, "u", "url")
    url, host = parse_url(raw_url, prefix + key, limits)
    key, raw_domain = _pick(obj, "d", "domain")
    domains = parse_domains(raw_domain, prefix + key, host, limits)

    key, raw_ref = _pick(obj, "r", "referrer")
    referrer = raw_ref[: limits.max_url] if isinstance(raw_ref, str) else ""
    key, raw_props = _pick(obj, "p", "props", "m", "meta")
    props = parse_props(raw_props, prefix + key, limits)
    key, raw_rev = _pick(obj, "$", "revenue")
    revenue = parse_revenue(raw_rev, prefix + key)
    _, hash_mode = _pick(obj, "h", "hashMode")
    _, interactive = _pick(obj, "i", "interactive")

    hit = Hit(
        name=name, url=url, raw_referrer=referrer, props=props, via=via,
        hash_mode=hash_mode in (1, True, "1"),
        interactive=interactive if isinstance(interactive, bool) else True,
        timestamp=now_us, received_at=now_us,
    )
    if revenue:
        hit.revenue_amount, hit.revenue_currency = revenue
    if name == "engagement":
        _engagement(obj, hit, prefix)
        hit.interactive = False

    if server_fields:
        if obj.get("event_id") is not None:
            hit.event_id = parse_event_id(obj["event_id"], prefix + "event_id")
            hit.client_event_id = True
        if obj.get("timestamp") is not None:
            hit.timestamp = parse_timestamp(obj["timestamp"], prefix + "timestamp", now_us, limits)
        ip = obj.get("ip")
        if ip is not None:
            try:
                hit.ip = normal_ip(ip) if isinstance(ip, str) else None
            except ValueError:
                hit.ip = None
            if hit.ip is None:
                raise BadRequest(422, "must be an IPv4 or IPv6 address", prefix + "ip")
        ua = obj.get("user_agent")
        if ua is not None:
            if not isinstance(ua, str) or len(ua) > 2048:
                raise BadRequest(422, "must be a string of at most 2048 characters", prefix + "user_agent")
            hit.user_agent = ua
        visitor = obj.get("visitor")
        if visitor is not None:
            if not isinstance(visitor, str) or not visitor or len(visitor) > 256:
                raise BadRequest(422, "must be a non-empty string of at most 256 characters", prefix + "visitor")
            hit.visitor_key = visitor
        dnt = obj.get("dnt")
        if dnt is not None:
            if not isinstance(dnt, bool):
                raise BadRequest(422, "must be true or false (the visitor sent DNT or Sec-GPC)", prefix + "dnt")
            hit.privacy_signal = dnt

    if hit.event_id is None:
        hit.event_id = new_event_id()
    hits = [hit]
    for extra in domains[1:]:
        twin = msgspec.structs.replace(hit, event_id=new_event_id() if not hit.client_event_id
                                       else uuid.uuid5(uuid.UUID(bytes=hit.event_id), extra).bytes)
        twin.site = extra
        hits.append(twin)
    hit.site = domains[0]
    return hits
