"""The event record: the one definition of what Strana stores.

`FIELDS` is the single source of truth. The Arrow schema, the DuckDB table
(see migrations/) and the Parquet files all follow it, and a test checks that
they agree. `Hit` is the in-flight record the pipeline passes from step to
step: the stored fields plus a few transient ones (the visitor's IP and user
agent, privacy signals) that the edge steps use and that never leave the
process that took the request.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import secrets
import time

import msgspec
import pyarrow as pa

# (name, arrow type, what it holds). Order is the column order on disk.
FIELDS: list[tuple[str, pa.DataType, str]] = [
    ("event_id", pa.uuid(), "client-supplied id (idempotency) or one made at ingest"),
    ("site", pa.string(), "the site's domain, as configured"),
    ("name", pa.string(), "'pageview', 'engagement' or a custom event name"),
    ("timestamp", pa.timestamp("us", tz="UTC"), "when it happened (client time for batches, else received_at)"),
    ("received_at", pa.timestamp("us", tz="UTC"), "when the collector took it"),
    ("via", pa.string(), "the way in: event, pixel, batch, webhook"),
    ("hostname", pa.string(), "host of the page URL, lower-case, no www."),
    ("pathname", pa.string(), "path of the page URL (with #fragment in hash mode)"),
    ("query", pa.string(), "the allow-listed query parameters that were kept"),
    ("referrer", pa.string(), "referrer URL without query string; empty for direct/internal"),
    ("referrer_host", pa.string(), "host of the referrer"),
    ("source", pa.string(), "classified source: Google, Hacker News, ... or a host"),
    ("channel", pa.string(), "Direct, Organic Search, Social, Referral, Email, Paid, AI Assistants, ..."),
    ("utm_source", pa.string(), ""),
    ("utm_medium", pa.string(), ""),
    ("utm_campaign", pa.string(), ""),
    ("utm_term", pa.string(), ""),
    ("utm_content", pa.string(), ""),
    ("click_id", pa.string(), "name of the ad click id present (gclid, fbclid, msclkid, ...)"),
    ("country", pa.string(), "ISO 3166-1 alpha-2"),
    ("region", pa.string(), "ISO 3166-2 subdivision code"),
    ("city", pa.string(), "city name (English)"),
    ("browser", pa.string(), ""),
    ("browser_version", pa.string(), "major version"),
    ("os", pa.string(), ""),
    ("os_version", pa.string(), ""),
    ("device", pa.string(), "desktop, mobile, tablet, bot, other"),
    ("visitor_id", pa.uint64(), "keyed hash of (daily salt, site, IP, UA); null when anonymous (DNT/GPC)"),
    ("session_id", pa.uint64(), "per visitor, ends after 30 minutes of inactivity; null when anonymous"),
    ("interactive", pa.bool_(), "false for events that must not affect bounce rate"),
    ("props", pa.map_(pa.string(), pa.string()), "custom properties"),
    ("revenue_amount", pa.float64(), ""),
    ("revenue_currency", pa.string(), "ISO 4217"),
    ("scroll_depth", pa.uint8(), "percent of the page seen, for engagement events"),
    ("engagement_ms", pa.uint32(), "visible and focused time, for engagement events"),
    # Visit rollups in per-event form, set by put_session (migration 005): reports/METRICS.md, "Fast paths".
    ("visit_seq", pa.uint32(), "position in its session as put_session saw it (1 = the visit's first event)"),
    ("interaction_seq", pa.uint32(), "nth interactive non-engagement event of the session; null for the others"),
    ("duration_delta", pa.uint32(), "µs this event extended its session (before its start or after its end)"),
]

SCHEMA = pa.schema([pa.field(name, typ) for name, typ, _ in FIELDS])
FIELD_NAMES: tuple[str, ...] = tuple(name for name, _, _ in FIELDS)

# The closed list of reasons a hit is dropped. Every drop is counted per site,
# day and reason in the store, and each reason has a test of its own.
DROP_REASONS: dict[str, str] = {
    "bot_ua": "the user agent is a known crawler, monitor or scripted client",
    "headless": "a headless or automated browser",
    "junk_ua": "empty or nonsensical user agent",
    "spam_referrer": "the referrer is on the referrer-spam list",
    "invalid": "the hit could not be understood (bad URL, missing field)",
    "excluded_path": "the page is on the site's excluded-path list",
    "excluded_ip": "the visitor's address is on the site's excluded list",
    "foreign_host": "the page's host is not one of the site's hostnames",
    "dnt": "Do Not Track / Global Privacy Control, and the site drops such hits",
    "duplicate": "an event with this event_id was already stored",
    "unknown_site": "the site is not configured",
}


class Hit(msgspec.Struct, kw_only=True, gc=False):
    """One event on its way through the pipeline.

    Stored fields carry the names of FIELDS. The transient fields below them
    are for edge steps only: `to_arrow` and the bus never look at them, and
    `scrub_ip` clears them before a hit leaves the edge.
    """

    event_id: bytes | None = None  # 16 bytes (UUID)
    site: str = ""
    name: str = "pageview"
    timestamp: int = 0  # microseconds since the epoch, UTC
    received_at: int = 0
    via: str = "event"
    hostname: str = ""
    pathname: str = "/"
    query: str | None = None
    referrer: str | None = None
    referrer_host: str | None = None
    source: str | None = None
    channel: str | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_term: str | None = None
    utm_content: str | None = None
    click_id: str | None = None
    country: str | None = None
    region: str | None = None
    city: str | None = None
    browser: str | None = None
    browser_version: str | None = None
    os: str | None = None
    os_version: str | None = None
    device: str | None = None
    visitor_id: int | None = None
    session_id: int | None = None
    interactive: bool = True
    props: dict[str, str] | None = None
    revenue_amount: float | None = None
    revenue_currency: str | None = None
    scroll_depth: int | None = None
    engagement_ms: int | None = None
    visit_seq: int | None = None
    interaction_seq: int | None = None
    duration_delta: int | None = None

    # ---- transient: never stored, never published ----
    url: str = ""  # the page URL as sent; put_url splits it
    raw_referrer: str = ""  # the referrer URL as sent; put_referrer classifies it
    hash_mode: bool = False  # Plausible's `h`: keep the #fragment in the path
    params: str | None = None  # the page URL's raw query string, for put_campaign
    visitor_key: str | None = None  # a server-side sender's user key: hashed into visitor_id, never kept
    ip: str | None = None  # the visitor's address: GeoIP and visitor id only
    user_agent: str | None = None  # the visitor's UA: parsing, bots, visitor id only
    client_event_id: bool = False  # event_id came from the client: dedupe on it
    privacy_signal: bool = False  # DNT: 1 or Sec-GPC: 1 was sent
    prev_visitor_id: int | None = None  # id under yesterday's salt, to bridge midnight


def utc_day(us: int) -> str:
    """The UTC day (YYYY-MM-DD) of a timestamp in µs: the day a drop is counted under."""
    return dt.datetime.fromtimestamp(us / 1_000_000, dt.UTC).date().isoformat()


# Event ids made at ingest: a per-process prefix, then a counter. Consecutive events of the one process that
# writes the store get consecutive ids, which DuckDB bit-packs to almost nothing, where a random or
# time-plus-random id (UUIDv7) costs 12-16 bytes per event on disk, a third of the storage budget
# (bench/storage.py). Layout (RFC 9562 UUIDv8, a custom layout): 48 bits of the process start in ms | version 8 |
# 12 random bits | variant | 22 random bits | 40-bit counter. Ids sort by process start, then in the order the
# process made them; two processes share a prefix only if they started in the same ms and drew the same 34
# random bits. A forked child draws a prefix of its own.
_COUNTER_BITS = 40
_ids = itertools.count()
_prefix = 0


def _new_prefix() -> None:
    global _ids, _prefix
    rand = secrets.randbits(34)
    ms = time.time_ns() // 1_000_000 & (2**48 - 1)
    _prefix = ms << 80 | 0x8 << 76 | (rand >> 22) << 64 | 0b10 << 62 | (rand & (2**22 - 1)) << _COUNTER_BITS
    _ids = itertools.count()


_new_prefix()
os.register_at_fork(after_in_child=_new_prefix)


def new_event_id() -> bytes:
    """A fresh event id (16 bytes) for an event whose client sent none."""
    n = next(_ids)
    if n >> _COUNTER_BITS:  # 10^12 ids made by one process: start a new prefix
        _new_prefix()
        n = next(_ids)
    return (_prefix | n).to_bytes(16)


_astuple = msgspec.structs.astuple
# float columns are never taken as constant: -0.0 == 0.0, yet they are different values
_SAME_OK = tuple(not pa.types.is_floating(typ) and name != "props" for name, typ, _ in FIELDS)
_UUID_STORAGE = pa.binary(16)


def _uuids(values: tuple) -> pa.Array:
    """16-byte ids joined into one buffer (~8 instead of ~50 ns an id); pa.array when one is missing or odd."""
    try:
        data = b"".join(values)
    except TypeError:  # a None
        data = b""
    if len(data) != 16 * len(values):
        return pa.array(values, type=pa.uuid())
    storage = pa.Array.from_buffers(_UUID_STORAGE, len(values), [None, pa.py_buffer(data)])
    return pa.ExtensionArray.from_storage(pa.uuid(), storage)


def to_arrow(hits: list[Hit]) -> pa.RecordBatch:
    """Column-wise: every hit as a tuple (in C), transposed by zip, one array per stored field (~2x cheaper
    than a getattr per field per hit, itself ~5x cheaper than row dicts)."""
    return _columns(zip(*map(_astuple, hits), strict=True), len(hits))


_STORED = len(FIELDS)


class Rows(list):
    """Events as tuples of their stored fields, in FIELDS' order: what the spool keeps and logs.

    A group commit of the tracker's path holds a few dozen events, and an Arrow batch costs ~10 µs a column
    whatever its length (~0.35 ms for 24 rows here), so the spool takes rows and makes one batch per load."""


def stored_rows(hits: list[Hit]) -> Rows:
    return Rows([_astuple(hit)[:_STORED] for hit in hits])


def rows_to_arrow(rows: list) -> pa.RecordBatch:
    """The batch of `Rows` (tuples or lists of the stored fields, as `stored_rows` makes them)."""
    return _columns(zip(*rows, strict=True), len(rows))


def _columns(transposed, n: int) -> pa.RecordBatch:
    """pa.array costs 25-45 ns a value whatever the type, so columns with one value throughout (all null, or
    the same site, name, day...) are made from that value without converting each."""
    if not n:
        return pa.RecordBatch.from_arrays([pa.array([], type=typ) for _, typ, _ in FIELDS], schema=SCHEMA)
    columns = []
    middle = n // 2
    for (name, typ, _), same_ok, values in zip(FIELDS, _SAME_OK, transposed, strict=False):
        first = values[0]
        # the last and middle values first: most columns that vary say so there, before a full count
        if first is None and values[-1] is None and values[middle] is None and values.count(None) == n:
            columns.append(pa.nulls(n, typ))
        elif same_ok and values[-1] == first and values[middle] == first and values.count(first) == n:
            columns.append(pa.repeat(pa.scalar(first, type=typ), n))
        elif name == "event_id":
            columns.append(_uuids(values))
        elif name == "props":
            columns.append(pa.array([list(v.items()) if v else None for v in values], type=typ))
        else:
            columns.append(pa.array(values, type=typ))
    return pa.RecordBatch.from_arrays(columns, schema=SCHEMA)


# to_arrow reads the stored fields by position: they must come first in Hit, in FIELDS' order
assert Hit.__struct_fields__[:len(FIELDS)] == FIELD_NAMES, "Hit's stored fields must lead, in FIELDS' order"
