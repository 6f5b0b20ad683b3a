"""put_geolocation: country, region and city from the IP, against a database made here — and never an error.

`write_city_db` is also used by the end-to-end privacy test.
"""

from __future__ import annotations

import random
from pathlib import Path

import maxminddb
import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from collector.enhancers.put_geolocation import PutGeolocation, bundled_database
from collector.events import Hit

# network → (country, subdivision, city); addresses are from documentation / test ranges and real blocks
PLACES = {
    "81.2.69.0/24": ("GB", "ENG", "London"),
    "89.160.20.0/24": ("SE", "E", "Linköping"),
    "93.184.0.0/16": ("DE", "BE", "Berlin"),
    "175.16.199.0/24": ("CN", "22", "Changchun"),
    "2001:db8:1::/48": ("FR", "IDF", "Paris"),
    "2a02:8108::/32": ("DE", "HH", "Hamburg"),
    "2a01:4f8::/32": ("DE", None, None),
}


def record(country: str, subdivision: str | None, city: str | None) -> dict:
    out: dict = {"country": {"iso_code": country, "names": {"en": country}}}
    if subdivision:
        out["subdivisions"] = [{"iso_code": subdivision, "names": {"en": subdivision}}]
    if city:
        out["city"] = {"names": {"en": city, "de": f"{city} (de)"}}
    return out


def write_city_db(path: Path) -> Path:
    writer = MMDBWriter(ip_version=6, database_type="GeoIP2-City", ipv4_compatible=True,
                        description={"en": "Strana test City database", "de": "Strana-Test"},
                        languages=["en", "de"])
    for network, place in PLACES.items():
        writer.insert_network(IPSet([network]), record(*place))
    writer.to_db_file(str(path))
    return path


@pytest.fixture(scope="module")
def step(tmp_path_factory) -> PutGeolocation:
    path = write_city_db(tmp_path_factory.mktemp("geo") / "city.mmdb")
    geo = PutGeolocation(str(path), cache_size=16)
    yield geo
    geo.close()


@pytest.mark.parametrize(("ip", "expected"), [
    # ---- IPv4 ----
    ("81.2.69.160", ("GB", "GB-ENG", "London")),
    ("89.160.20.112", ("SE", "SE-E", "Linköping")),
    ("93.184.216.34", ("DE", "DE-BE", "Berlin")),
    ("175.16.199.1", ("CN", "CN-22", "Changchun")),
    # ---- IPv6 ----
    ("2001:db8:1::1", ("FR", "FR-IDF", "Paris")),
    ("2a02:8108:1234:5678::9", ("DE", "DE-HH", "Hamburg")),
    ("2A02:8108::ABCD", ("DE", "DE-HH", "Hamburg")),
    # ---- country only ----
    ("2a01:4f8:1:2::3", ("DE", None, None)),
    # ---- not in the database ----
    ("8.8.8.8", (None, None, None)),
    ("2001:db8:2::1", (None, None, None)),
    # ---- private, loopback, link-local, unspecified ----
    ("127.0.0.1", (None, None, None)),
    ("10.1.2.3", (None, None, None)),
    ("192.168.0.10", (None, None, None)),
    ("::1", (None, None, None)),
    ("fe80::1", (None, None, None)),
    ("0.0.0.0", (None, None, None)),
    # ---- junk never raises ----
    ("", (None, None, None)),
    (None, (None, None, None)),
    ("not an ip", (None, None, None)),
    ("999.1.1.1", (None, None, None)),
    ("81.2.69.160:443", (None, None, None)),
    ("x" * 5000, (None, None, None)),
])
def test_geolocation_table(step, ip, expected):
    hit = Hit(ip=ip)
    assert step(hit) is None
    assert (hit.country, hit.region, hit.city) == expected


def test_neighbours_in_a_remembered_network_are_exact(step):
    """A /24 answer must not be remembered for its /16, nor a miss next door for the /24 beside it."""
    for ip, expected in [("81.2.69.160", "GB"), ("81.2.70.1", None), ("81.2.69.5", "GB"), ("81.2.68.255", None),
                         ("93.184.216.34", "DE"), ("93.184.1.1", "DE"), ("93.185.0.1", None)]:
        hit = Hit(ip=ip)
        step(hit)
        assert hit.country == expected, ip


def test_lookups_by_path_agree_with_whole_records():
    """20,000 random addresses (many sharing networks), twice, through the step's LRU: the same place that
    MaxMind's C reader gives from the whole record."""
    path = bundled_database()
    if path is None:
        pytest.skip("maxminddb-geolite2 is not installed")
    rnd = random.Random(11)
    ips = [f"{rnd.randint(1, 223)}.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}"
           for _ in range(10_000)]
    ips += [ip.rsplit(".", 1)[0] + f".{rnd.randint(0, 255)}" for ip in ips]  # neighbours: the caches answer
    step = PutGeolocation(str(path), cache_size=64)
    reader = maxminddb.open_database(str(path))
    for ip in ips + ips:
        hit = Hit(ip=ip)
        step(hit)
        record = reader.get(ip) or {}
        country = (record.get("country") or {}).get("iso_code")
        subdivisions = record.get("subdivisions") or [{}]
        region = f"{country}-{subdivisions[0]['iso_code']}" if country and subdivisions[0].get("iso_code") else None
        city = ((record.get("city") or {}).get("names") or {}).get("en") if country else None
        assert (hit.country, hit.region, hit.city) == (country, region, city), ip
    step.close()
    reader.close()


def test_bundled_geolite2_is_used_with_an_empty_path():
    path = bundled_database()
    if path is None:
        pytest.skip("maxminddb-geolite2 is not installed")
    geo = PutGeolocation("")
    hit = Hit(ip="81.2.69.160")  # MaxMind's own test address, in the 2018 GeoLite2 file too
    geo(hit)
    assert hit.country == "GB"
    geo.close()


def test_a_missing_file_fails_at_startup(tmp_path):
    with pytest.raises(FileNotFoundError):
        PutGeolocation(str(tmp_path / "nope.mmdb"))
