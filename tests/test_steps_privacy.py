"""Step tables for the steps that carry privacy: visitor ids, salts, DNT, sessions, client address, URL/campaign."""

from __future__ import annotations

import datetime as dt

import pytest

from collector.enhancers.drop_dnt import DropDnt
from collector.enhancers.put_campaign import PutCampaign
from collector.enhancers.put_session import TIMEOUT_US, PutSession
from collector.enhancers.put_url import put_url
from collector.enhancers.put_visitor_id import PutVisitorId
from collector.enhancers.scrub_ip import scrub_ip
from collector.events import Hit
from collector.salts import DuckDBSaltStore, SaltKeeper, day_date
from collector.sinks.duckdb import DuckDBSink
from collector.sources.http import Request, client_address, parse_networks

DAY = 20_000  # a day number (days since 1970-01-01)
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@pytest.fixture
def store(tmp_path):
    sink = DuckDBSink(tmp_path / "s.duckdb")
    yield sink
    sink.close()


@pytest.fixture
def keeper(store):
    return SaltKeeper(DuckDBSaltStore(store.reader))


def visitor(keeper, day, **kw):
    step = PutVisitorId(keeper, clock=lambda: day * 86400 + 3600)
    hit = Hit(site=kw.get("site", "example.com"), ip=kw.get("ip", "203.0.113.7"), user_agent=kw.get("ua", UA),
              privacy_signal=kw.get("signal", False), visitor_key=kw.get("key"))
    assert step(hit) is None
    return hit


# ---- visitor ids and salts


def test_visitor_id_is_stable_within_a_day_and_differs_across_days(keeper):
    a, b = visitor(keeper, DAY), visitor(keeper, DAY)
    assert a.visitor_id == b.visitor_id and a.visitor_id is not None
    assert visitor(keeper, DAY, ip="203.0.113.8").visitor_id != a.visitor_id
    assert visitor(keeper, DAY, ua=UA + " X").visitor_id != a.visitor_id
    assert visitor(keeper, DAY, site="other.org").visitor_id != a.visitor_id
    nxt = visitor(keeper, DAY + 1)
    assert nxt.visitor_id != a.visitor_id
    assert nxt.prev_visitor_id == a.visitor_id  # bridges midnight for put_session


def test_server_side_user_key_replaces_ip_and_ua(keeper):
    a = visitor(keeper, DAY, key="user-1", ip="1.1.1.1")
    b = visitor(keeper, DAY, key="user-1", ip="2.2.2.2", ua="other")
    assert a.visitor_id == b.visitor_id
    assert visitor(keeper, DAY, key="user-2").visitor_id != a.visitor_id


def test_rotation_deletes_old_salts_for_good(store, keeper):
    first = visitor(keeper, DAY).visitor_id
    visitor(keeper, DAY + 1)
    keeper.rotate(DAY + 2)
    days = {row[0] for row in store.reader().execute("SELECT day FROM salts").fetchall()}
    assert days == {day_date(DAY + 1), day_date(DAY + 2)}
    # Nothing left can recompute the first day's id.
    assert all(visitor(keeper, d).visitor_id != first for d in (DAY + 1, DAY + 2))
    assert visitor(keeper, DAY + 2).prev_visitor_id != first


def test_salts_are_random_per_store(tmp_path):
    ids = []
    for name in ("a", "b"):
        sink = DuckDBSink(tmp_path / f"{name}.duckdb")
        ids.append(visitor(SaltKeeper(DuckDBSaltStore(sink.reader)), DAY).visitor_id)
        sink.close()
    assert ids[0] != ids[1]


class LaggingListStore:
    """A shared store whose listing misses a salt written a moment ago (NATS KV's keys() can), and which
    already holds another process's salt for the day, so a create keeps that one."""

    def __init__(self, winner: bytes):
        self.salts = {day_date(DAY): winner}

    def load(self):
        return {}

    def create(self, day, salt):
        return self.salts.setdefault(day, salt)

    def delete_before(self, day):
        return 0


def test_a_listing_that_lags_a_write_still_gives_the_salt_the_store_kept():
    # CI once failed here: the server died at start with KeyError(today) after a NATS listing came back empty.
    store = LaggingListStore(b"W" * 32)
    assert SaltKeeper(store).pair(DAY) == (b"W" * 32, None)
    assert visitor(SaltKeeper(store), DAY).visitor_id == visitor(SaltKeeper(store), DAY).visitor_id


# ---- DNT / GPC policies


@pytest.mark.parametrize("policy,signal,dropped,anonymous", [
    ("ignore", True, False, False),
    ("anonymous", True, False, True),
    ("drop", True, True, False),
    # no signal: every policy counts the hit normally
    ("anonymous", False, False, False),
    ("drop", False, False, False),
])
def test_dnt_policies(keeper, policy, signal, dropped, anonymous):
    hit = Hit(site="example.com", ip="203.0.113.7", user_agent=UA, privacy_signal=signal)
    assert DropDnt(policy)(hit) == ("dnt" if dropped else None)
    if not dropped:
        PutVisitorId(keeper, policy, clock=lambda: DAY * 86400)(hit)
        assert (hit.visitor_id is None) == anonymous


# ---- sessions

MIN = 60 * 1_000_000


def session_of(step, visitor_id, minute, prev=None):
    hit = Hit(visitor_id=visitor_id, prev_visitor_id=prev, timestamp=minute * MIN)
    step(hit)
    return hit.session_id


def test_sessions_end_after_30_minutes_of_inactivity():
    step = PutSession()
    s1 = session_of(step, 1, 0)
    assert session_of(step, 1, 10) == s1
    assert session_of(step, 1, 39) == s1  # 29 minutes after the last event
    assert session_of(step, 1, 70) != s1  # 31 minutes of silence
    assert session_of(step, 2, 70) not in (s1, None)


def test_past_events_join_the_session_they_belong_to():
    step = PutSession()
    s = session_of(step, 1, 100)
    assert session_of(step, 1, 85) == s  # a batch event 15 minutes earlier
    assert session_of(step, 1, 20) != s  # far in the past: its own visit


def test_anonymous_hits_get_no_session():
    assert session_of(PutSession(), None, 0) is None


def test_visit_over_midnight_keeps_its_session_and_visitor():
    step = PutSession()
    s = session_of(step, 111, 0)
    hit = Hit(visitor_id=222, prev_visitor_id=111, timestamp=5 * MIN)
    step(hit)
    assert hit.session_id == s and hit.visitor_id == 111


def test_session_table_is_bounded():
    step = PutSession(max_visitors=100)
    for v in range(1000):
        session_of(step, v, 0)
    assert len(step.active) <= 100
    assert TIMEOUT_US == 30 * MIN


def test_reloaded_visits_keep_the_bound_and_the_latest_seen():
    step = PutSession(max_visitors=2)
    # (visitor, session, first, last, events, interactions), in no particular order
    step.seed([(1, 11, 0, 20 * MIN, 3, 2), (2, 22, 0, 5 * MIN, 1, 1), (3, 33, 0, 10 * MIN, 2, 1)])
    assert list(step.active) == [3, 1]  # visitor 2 was seen longest ago; dict order is least recently seen first
    assert session_of(step, 3, 30) == 33 and session_of(step, 2, 30) != 22
    assert list(step.active) == [3, 2]  # the table still holds 2: visitor 1, now the least recently seen, went


# ---- client address


class FakeRequest(Request):
    def __init__(self, peer, headers):
        super().__init__({"client": (peer, 5555), "headers": [(k.encode(), v.encode()) for k, v in headers.items()]},
                         None)


@pytest.mark.parametrize("peer,headers,trusted,expected", [
    # no trusted proxies: the peer, whatever the headers say
    ("198.51.100.1", {"x-forwarded-for": "1.2.3.4"}, [], "198.51.100.1"),
    # a trusted proxy: the client it names
    ("10.0.0.1", {"x-forwarded-for": "1.2.3.4"}, ["10.0.0.0/8"], "1.2.3.4"),
    ("10.0.0.1", {"x-forwarded-for": "2001:db8::5"}, ["10.0.0.0/8"], "2001:db8::5"),
    # a client cannot spoof: the rightmost untrusted address wins
    ("10.0.0.1", {"x-forwarded-for": "6.6.6.6, 1.2.3.4"}, ["10.0.0.0/8"], "1.2.3.4"),
    ("10.0.0.1", {"x-forwarded-for": "6.6.6.6, 1.2.3.4, 10.0.0.7"}, ["10.0.0.0/8"], "1.2.3.4"),
    # an untrusted peer sending the header is ignored
    ("198.51.100.1", {"x-forwarded-for": "1.2.3.4"}, ["10.0.0.0/8"], "198.51.100.1"),
    # RFC 7239 Forwarded, with quotes, ports and IPv6 brackets
    ("10.0.0.1", {"forwarded": 'for="[2001:db8::1]:4711";proto=https'}, ["10.0.0.0/8"], "2001:db8::1"),
    ("10.0.0.1", {"forwarded": "for=192.0.2.60:443, for=10.0.0.2"}, ["10.0.0.0/8"], "192.0.2.60"),
    # junk in the header: stop at the proxy
    ("10.0.0.1", {"x-forwarded-for": "not-an-ip"}, ["10.0.0.0/8"], "10.0.0.1"),
    ("::1", {"x-forwarded-for": "1.2.3.4"}, ["::1"], "1.2.3.4"),
    # IPv6 proxies in the chain, a port on an IPv4 client, a single trusted host, leading zeros are not addresses
    ("2001:db8::1", {"x-forwarded-for": "1.2.3.4, 2001:db8::9"}, ["2001:db8::/32"], "1.2.3.4"),
    ("10.0.0.1", {"x-forwarded-for": "1.2.3.4:5678, 10.255.255.255"}, ["10.0.0.0/8"], "1.2.3.4"),
    ("10.0.0.1", {"x-forwarded-for": "1.2.3.4, 10.0.0.2"}, ["10.0.0.1"], "10.0.0.2"),
    ("10.0.0.1", {"x-forwarded-for": "1.2.3.4, 010.0.0.2"}, ["10.0.0.0/8"], "10.0.0.1"),
])
def test_client_address(peer, headers, trusted, expected):
    assert client_address(FakeRequest(peer, headers), parse_networks(trusted)) == expected


def test_bad_trusted_proxy_setting_is_named():
    with pytest.raises(ValueError, match="trusted_proxies"):
        parse_networks(["10.0.0.0/33"])


# ---- URL and campaign


@pytest.mark.parametrize("url,hash_mode,hostname,pathname", [
    ("https://www.Example.com/a/b?x=1", False, "example.com", "/a/b"),
    ("https://example.com", False, "example.com", "/"),
    ("https://example.com/caf%C3%A9", False, "example.com", "/café"),
    ("https://example.com/app#/settings", True, "example.com", "/app#/settings"),
    ("https://example.com/app#/settings", False, "example.com", "/app"),
    ("https://example.com:8443/x", False, "example.com", "/x"),
    ("http://[2001:db8::1]/x", False, "2001:db8::1", "/x"),
])
def test_put_url(url, hash_mode, hostname, pathname):
    hit = Hit(url=url, hash_mode=hash_mode)
    assert put_url(hit) is None
    assert (hit.hostname, hit.pathname) == (hostname, pathname)


@pytest.mark.parametrize("query,allow,expected", [
    ("utm_source=news&utm_medium=email&utm_campaign=launch&secret=1", (),
     {"utm_source": "news", "utm_medium": "email", "utm_campaign": "launch", "query": None, "click_id": None}),
    ("ref=producthunt", (), {"utm_source": "producthunt"}),
    ("source=hn&utm_source=twitter", (), {"utm_source": "twitter"}),
    ("gclid=abc123&utm_term=shoes", (), {"click_id": "gclid", "utm_term": "shoes"}),
    ("fbclid=xyz", (), {"click_id": "fbclid", "query": None}),
    ("q=shoes&page=2&email=a@b.c", ("q", "page"), {"query": "q=shoes&page=2"}),
    ("email=a@b.c", ("q",), {"query": None}),
])
def test_put_campaign(query, allow, expected):
    hit = Hit(params=query)
    assert PutCampaign(allow)(hit) is None
    for key, value in expected.items():
        assert getattr(hit, key) == value, key
    assert "abc123" not in repr(hit.__struct_fields__ and [getattr(hit, f) for f in ("query", "click_id")])


def test_scrub_ip_forgets_everything_identifying():
    hit = Hit(ip="203.0.113.7", user_agent=UA, url="https://example.com/?email=a@b.c", raw_referrer="https://x/?q=1",
              params="email=a@b.c", visitor_key="user@example.com")
    scrub_ip(hit)
    assert (hit.ip, hit.user_agent, hit.url, hit.raw_referrer, hit.params, hit.visitor_key) == (
        None, None, "", "", None, None)


def test_day_date():
    assert day_date(0) == dt.date(1970, 1, 1)
