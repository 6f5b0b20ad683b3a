"""The batch fast path gives what the per-event code gives: the same hits, or it steps aside.

`batch_parse.parse_batch` either returns hits or raises `Slow` (and the
per-event code answers). These tests hold it against `hits_from_payload`
over batches mixing valid and broken values of every key, and hold the
steps' batch methods (`Step.many`, collector/pipeline.py) against running
each step hit by hit.
"""

from __future__ import annotations

import datetime as dt
import ipaddress

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from collector.events import Hit
from collector.ratelimit import SiteLimiter
from collector.sources.batch_parse import Slow, parse_batch, site_rate_errors
from collector.sources.http import BadRequest
from collector.sources.plausible import Limits, hits_from_payload

NOW = 1_790_000_000_000_000  # µs


def iso(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).isoformat()


VALID = {
    "n": ["pageview", "signup", "engagement", 42, "Ünïcode ✓"],
    "name": ["pageview", "Outbound Link: Click"],
    "u": ["https://example.com/a?utm_source=x&gclid=1#frag", "https://www.Example.com/", "  https://example.com/p  ",
          "http://other.example/x/y?ref=hn", "https://example.com/%E2%9C%93"],
    "url": ["https://example.com/long-key"],
    "d": ["example.com", "www.example.com", "example.com,other.example", "Example.COM , other.example, ,"],
    "domain": ["other.example"],
    "r": ["", "https://www.google.com/search?q=x", "https://news.ycombinator.com/", "not a url", 5, ["x"]],
    "referrer": ["https://t.co/abc"],
    "p": [{"plan": "pro"}, {"a": 1, "b": True, "c": None, "d": [1], "e": 1.5, " ": "x"}, '{"a": "b"}', {}],
    "props": [{"k": "v"}],
    "m": [{"m": "1"}],
    "meta": [{"meta": "2"}],
    "$": [{"amount": 9.5, "currency": "eur"}, {"amount": "3", "currency": "USD"}, '{"amount": 1, "currency": "EUR"}'],
    "revenue": [{"amount": 0, "currency": "CHF"}],
    "h": [1, True, "1", 0, False, "true", 1.0],
    "hashMode": [1, False],
    "i": [True, False, "false", 0],
    "interactive": [False, True],
    "sd": [50, "30", -1, 1000, "x"],
    "e": [1200, "5", -5, 30 * 86400 * 1000],
    "event_id": ["order-1", "6f1c3a52-8d0e-4a43-9a55-2f0e7c1b9d11", "{6F1C3A52-8D0E-4A43-9A55-2F0E7C1B9D11}",
                 "x" * 128, "6F1C3A528D0E4A439A552F0E7C1B9D11", "6f1c3a52-8d0e-4a43-9a55-2f0e7c1b9d1g",
                 "6f1c3a52-8d0e-4a43-9a55-2f0e7c1b9d 1", "6f-1c3a528d0e4a439a552f0e7c1b9d11--",
                 "urn:uuid:6f1c3a52-8d0e-4a43-9a55-2f0e7c1b9d11", " 6f1c3a528d0e4a439a552f0e7c1b9d11"],
    "timestamp": [iso(NOW - 3_600_000_000), iso(NOW - 6 * 86_400_000_000), "2026-09-21T10:00:00",
                  iso(NOW + 60_000_000)],
    "ip": ["203.0.113.9", "2001:DB8::1", "::ffff:1.2.3.4", "0.0.0.0", "2a02:8100::ab"],
    "user_agent": ["Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0", "", "curl/8.0"],
    "visitor": ["user-1", "x" * 256],
    "dnt": [True, False],
}
BROKEN = {
    "n": ["", " ", True, "x" * 121, "a\x00b", 1.5, ["x"], {"a": 1}],
    "u": ["example.com/no-scheme", "javascript:alert(1)", "https://example.com:99999/", 5, "https://" + "a" * 3000,
          "https://ex ample.com/", ""],
    "d": ["", ",", "a/b", 5, "x" * 300],
    "p": ["notjson", 5, {"k" * 400: "v"}, {str(i): "v" for i in range(40)}, {"k": "v" * 3000}],
    "$": [{"amount": "x", "currency": "EUR"}, {"amount": 1, "currency": "EURO"}, 5, {"amount": True, "currency": "EUR"},
          {"amount": 1e16, "currency": "EUR"}, "{"],
    "sd": ["x"],
    "event_id": ["", "x" * 129, 5, "-" * 100 + "6f1c3a528d0e4a439a552f0e7c1b9d11"],
    "timestamp": ["garbage", iso(NOW - 30 * 86_400_000_000), iso(NOW + 3_600_000_000), 5, "2026-13-01T00:00:00Z"],
    "ip": ["01.2.3.4", "nonsense", 5, "1.2.3.4\x00", "1.2.3", "", "::g"],
    "user_agent": ["x" * 3000, 5],
    "visitor": ["", 5, "x" * 300],
    "dnt": ["1", 1],
    "unknown_key": [1, "x"],
}


def events(values: dict) -> st.SearchStrategy:
    return st.fixed_dictionaries({}, optional={k: st.sampled_from(v) for k, v in values.items()})


def complete(ev: dict) -> dict:
    """What a valid event needs: a name, a URL, and for an engagement a usable `sd` or `e`."""
    if "n" not in ev and "name" not in ev:
        ev["n"] = "pageview"
    if "u" not in ev and "url" not in ev:
        ev["u"] = "https://example.com/"
    if ev.get("n", ev.get("name")) == "engagement":
        ev["sd"] = 50
    return ev


GOOD = events(VALID).map(complete)
ANY = events({k: VALID.get(k, []) + BROKEN.get(k, []) for k in VALID.keys() | BROKEN.keys()})


def slow(items: list, limits: Limits) -> tuple[list[Hit], list[int], list]:
    hits, owners, errors = [], [], []
    for index, item in enumerate(items):
        try:
            made = hits_from_payload(item, limits, now_us=NOW, via="batch", server_fields=True,
                                     prefix=f"events[{index}].")
        except BadRequest as exc:
            errors.append({"index": index, "field": exc.field, "message": exc.message})
            continue
        hits.extend(made)
        owners.extend([index] * len(made))
    return hits, owners, errors


def comparable(hit: Hit) -> dict:
    """A hit as a dict; ids made at ingest are random, so only client-derived ones are compared."""
    out = msgspec.structs.asdict(hit)
    if not hit.client_event_id:
        assert len(hit.event_id) == 16 and hit.event_id[6] >> 4 == 8  # a UUIDv8 (events.new_event_id)
        out["event_id"] = None
    return out


def check(items: list, limits: Limits = Limits()) -> bool:
    """True when the fast path took the batch (and then agrees with the per-event code)."""
    body = msgspec.json.encode({"events": items})
    try:
        fast_hits, fast_owners = parse_batch(body, limits, NOW, 500)
    except Slow:
        return False
    hits, owners, errors = slow(msgspec.json.decode(body)["events"], limits)
    assert errors == [], "the fast path accepted a batch the per-event code rejects"
    assert fast_owners == owners
    assert [comparable(h) for h in fast_hits] == [comparable(h) for h in hits]
    return True


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.lists(GOOD, min_size=1, max_size=6))
def test_valid_batches_take_the_fast_path_and_agree(items):
    assert check(items)


@settings(max_examples=600, deadline=None)
@given(st.lists(ANY, min_size=1, max_size=4))
def test_any_batch_agrees_or_goes_the_slow_way(items):
    check(items)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.lists(GOOD, min_size=1, max_size=6))
def test_site_gate_agrees(items):
    check(items, Limits(sites=frozenset({"example.com"})))


@pytest.mark.parametrize("body", [
    b"", b"[]", b"{}", b'{"events": []}', b'{"events": {}}', b'{"events": [1]}', b'{"events": [{}]}',
    b'{"events": [{"n": "a", "u": "https://e.com/"}], "x": 1}',
    b'{"events": [{"n": "a", "u": "https://e.com/", "x": "\xff"}]}',  # msgspec would not check a skipped value
    b'{"events": [{"n": "a", "u": "https://e.com/", "r": 1e999}]}',
    b'{"events": [{"n": "a", "u": "https://e.com/", "r": "\xff"}]}',
    b'{"events": [' + b",".join([b'{"n": "a", "u": "https://e.com/"}'] * 501) + b"]}",
])
def test_what_the_fast_path_leaves_to_the_slow_one(body):
    with pytest.raises(Slow):
        parse_batch(body, Limits(), NOW, 500)


def test_duplicate_keys_last_one_wins_in_both():
    body = b'{"events": [{"n": "first", "n": "second", "u": "https://e.com/", "d": "a.example", "d": "b.example"}]}'
    hits, _ = parse_batch(body, Limits(), NOW, 500)
    slow_hits, _, _ = slow(msgspec.json.decode(body)["events"], Limits())
    assert (hits[0].name, hits[0].site) == (slow_hits[0].name, slow_hits[0].site) == ("second", "b.example")


def test_ipv4_is_kept_as_sent_only_when_canonical():
    for text in ("1.2.3.4", "255.255.255.255", "0.0.0.0", "10.0.0.1"):
        assert str(ipaddress.ip_address(text)) == text
        hits, _ = parse_batch(msgspec.json.encode({"events": [{"n": "a", "u": "https://e.com/", "ip": text}]}),
                              Limits(), NOW, 500)
        assert hits[0].ip == text


def test_site_rate_limit_takes_the_same_tokens_and_names_the_same_events():
    page = {"n": "a", "u": "https://e.com/"}
    items = [{**page, "d": "a.example"}, {**page, "domain": "b.example"}, {**page, "d": "a.example,b.example"},
             {"n": "a", "u": "https://a.example/"}, {**page, "d": "a.example"}]

    def limiter():
        made = SiteLimiter(rate=1, burst=2)  # two tokens per site, and no time passes
        made.buckets.clock = lambda: 100.0
        return made

    fast_limits, slow_limits = Limits(site_rate=limiter()), Limits(site_rate=limiter())
    body = msgspec.json.encode({"events": items})
    hits, owners = parse_batch(body, fast_limits, NOW, 500)
    assert fast_limits.site_rate.buckets.state == {}  # no token taken before every event passed
    errors = site_rate_errors(hits, owners, fast_limits)
    _, _, expected = slow(items, slow_limits)
    assert errors == expected and [e["index"] for e in errors] == [3, 4]
    assert fast_limits.site_rate.buckets.state == slow_limits.site_rate.buckets.state


# ---- the steps' batch forms (Step.many) against the steps hit by hit ----

UAS = ["Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
       "Safari/537.36", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
       "Gecko) Version/17.0 Mobile/15E148 Safari/604.1", "Mozilla/5.0 (compatible; Googlebot/2.1; "
       "+http://www.google.com/bot.html)", "curl/8.4.0", "HeadlessChrome/120", "", "x", None]
SITES_TOML = """
[sites."shop.example"]
hostnames = ["shop.example", "*.shop.example"]
excluded_paths = ["/admin/**"]
excluded_ips = ["10.0.0.0/8", "2001:db8::/32"]
dnt_policy = "drop"
query_allow = ["q"]

[sites."anon.example"]
dnt_policy = "anonymous"
"""


class FixedSalts:
    def __init__(self, yesterday: bool):
        self.today, self.yesterday = b"t" * 32, (b"y" * 32 if yesterday else None)

    def pair(self, day: int):
        return self.today, self.yesterday


def make_chain(tmp_path, dnt_policy: str, yesterday: bool):
    from collector.enhancers import edge_chain
    from collector.settings import load
    from collector.site_registry import SiteRegistry

    config = tmp_path / "strana.toml"
    config.write_text(SITES_TOML)
    settings = load(config, {"STRANA_PRIVACY__DNT_POLICY": dnt_policy})
    sites = SiteRegistry(settings)
    sites.reload()
    return edge_chain(settings, FixedSalts(yesterday), sites)


HIT_PARTS = st.fixed_dictionaries({
    "site": st.sampled_from(["shop.example", "anon.example", "other.example"]),
    "url": st.sampled_from(["https://shop.example/", "https://eu.shop.example/p?q=1&utm_source=news&gclid=x",
                            "https://copy.example/", "https://shop.example/admin/users", "https://other.example/#a",
                            "https://other.example/x?utm_medium=cpc&utm_campaign=c&ref=hn", "not a url", "http://[/"]),
    "hash_mode": st.booleans(),
    "raw_referrer": st.sampled_from(["", "https://www.google.com/", "https://shop.example/a", "https://t.co/x?y=1",
                                     "https://semalt.com/", "android-app://com.slack/", "junk"]),
    "ip": st.sampled_from([None, "203.0.113.9", "10.1.2.3", "2001:db8::1", "2a02:8100::1"]),
    "user_agent": st.sampled_from(UAS),
    "visitor_key": st.sampled_from([None, None, "user-1"]),
    "privacy_signal": st.booleans(),
    "via": st.sampled_from(["batch", "batch", "event", "webhook"]),
    "timestamp": st.sampled_from([NOW, NOW + 1]),
})


@pytest.mark.parametrize("dnt_policy,yesterday", [("anonymous", True), ("drop", False), ("ignore", True)])
def test_chain_batch_forms_leave_hits_as_the_steps_one_by_one(tmp_path, dnt_policy, yesterday):
    chain = make_chain(tmp_path, dnt_policy, yesterday)
    assert all(hasattr(step, "many") for _, step in chain.steps), "every edge step has a batch form"

    @settings(max_examples=150, deadline=None)
    @given(st.lists(HIT_PARTS, min_size=2, max_size=40))
    def run(parts):
        batch = [Hit(**p) for p in parts]
        alone = [Hit(**p) for p in parts]
        outcome = chain.run(batch)
        expected_kept, expected_dropped = [], []
        for index, hit in enumerate(alone):
            for _, step in chain.steps:  # the steps' own __call__, in order, up to the first drop
                reason = step(hit)
                if reason is not None:
                    expected_dropped.append((index, reason))
                    break
            else:
                expected_kept.append(index)
        position = {id(hit): index for index, hit in enumerate(batch)}
        assert [position[id(h)] for h in outcome.kept] == expected_kept
        assert sorted((position[id(h)], r) for h, r in outcome.dropped) == expected_dropped
        assert [msgspec.structs.asdict(h) for h in batch] == [msgspec.structs.asdict(h) for h in alone]

    run()


def test_session_batch_form_is_the_step_hit_by_hit():
    from collector.enhancers.put_session import PutSession

    minute = 60_000_000
    parts = [dict(visitor_id=v, prev_visitor_id=p, timestamp=NOW + t * minute, interactive=i, name=n)
             for v, p, t, i, n in [(1, None, 0, True, "pageview"), (1, None, 5, True, "engagement"),
                                   (2, 1, 10, True, "pageview"), (3, None, 0, False, "x"), (None, None, 1, True, "a"),
                                   (1, None, 50, True, "pageview"), (3, None, -40, True, "pageview"),
                                   (4, 9, 2, True, "pageview"), (4, None, 3, True, "pageview")]]
    batch_step, alone_step = PutSession(max_visitors=3), PutSession(max_visitors=3)
    batch = [Hit(**p) for p in parts]
    alone = [Hit(**p) for p in parts]
    batch[0].visit_seq = alone[0].visit_seq = 7  # already sessionized: left alone
    import collector.enhancers.put_session as module

    ids = iter(range(10**6))
    original = module.new_session_id
    module.new_session_id = lambda ts: next(ids)  # the same ids in the same order for both
    try:
        batch_step.many(batch)
        ids = iter(range(10**6))
        for hit in alone:
            alone_step(hit)
    finally:
        module.new_session_id = original
    assert [msgspec.structs.asdict(h) for h in batch] == [msgspec.structs.asdict(h) for h in alone]
    assert batch_step.active == alone_step.active


@pytest.mark.parametrize("raw", VALID["event_id"] + ["0" * 32, "f" * 8 + "-" + "F" * 24, "ab" * 16 + "\t",
                                                     "-".join("ab" * 16), "0x" + "a" * 30])
def test_event_ids_read_as_the_per_event_code_reads_them(raw):
    from collector.sources.batch_parse import event_id_bytes
    from collector.sources.plausible import parse_event_id

    assert event_id_bytes(raw) == parse_event_id(raw, "x")


def test_made_ids_are_the_ingest_ids_in_order():
    import uuid

    hits, _ = parse_batch(msgspec.json.encode({"events": [{"n": "a", "u": "https://e.com/", "d": "a.example,b.example"}]
                                               * 50}), Limits(), NOW, 500)
    ids = [uuid.UUID(bytes=h.event_id) for h in hits]
    assert len(set(ids)) == 100
    assert all(i.version == 8 and i.variant == uuid.RFC_4122 for i in ids)
    assert [i.int for i in ids] == sorted(i.int for i in ids)  # consecutive: the column bit-packs


def plain_arrow(hits: list[Hit]):
    """The conversion to_arrow replaces: one pa.array per field over getattr."""
    import pyarrow as pa

    from collector.events import FIELDS, SCHEMA

    columns = []
    for name, typ, _ in FIELDS:
        values = [getattr(h, name) for h in hits]
        if name == "props":
            values = [list(v.items()) if v else None for v in values]
        columns.append(pa.array(values, type=typ))
    return pa.RecordBatch.from_arrays(columns, schema=SCHEMA)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.fixed_dictionaries({}, optional={
    "event_id": st.sampled_from([b"0123456789abcdef", b"fedcba9876543210", None]),
    "site": st.sampled_from(["a.example", "b.example"]),
    "timestamp": st.sampled_from([0, NOW, 2**62]),
    "visitor_id": st.sampled_from([None, 1, 2**64 - 1]),
    "country": st.sampled_from([None, "DE"]),
    "pathname": st.sampled_from(["/", "/ü", ""]),
    "props": st.sampled_from([None, {}, {"a": "b", "c": "d"}]),
    "revenue_amount": st.sampled_from([None, 0.0, -0.0, 1.5]),
    "interactive": st.booleans(),
    "scroll_depth": st.sampled_from([None, 0, 100]),
}), min_size=1, max_size=9))
def test_to_arrow_is_the_plain_conversion(parts):
    from collector.events import to_arrow

    hits = [Hit(**p) for p in parts]
    fast, plain = to_arrow(hits), plain_arrow(hits)
    assert fast.schema == plain.schema and fast.equals(plain)
    assert [repr(v) for v in fast.column("revenue_amount").to_pylist()] == \
        [repr(v) for v in plain.column("revenue_amount").to_pylist()]  # -0.0 stays -0.0


@example(seeded=[(1, 100, 50, 1, 1)], limit=4, parts=[  # a seeded visit whose first is after its last
    {"visitor_id": 1, "timestamp": NOW + 70 * 60_000_000, "interactive": True, "name": "pageview"}] * 2)
@settings(max_examples=300, deadline=None)
@given(seeded=st.lists(st.tuples(st.integers(1, 6), st.integers(0, 200), st.integers(0, 200), st.integers(1, 3),
                                 st.integers(0, 3)), max_size=4),
       parts=st.lists(st.fixed_dictionaries({
           "visitor_id": st.sampled_from([None, 1, 2, 3, 4, 5, 6]),
           "prev_visitor_id": st.sampled_from([None, None, 1, 5]),
           "timestamp": st.integers(0, 200).map(lambda m: NOW + m * 60_000_000),
           "interactive": st.booleans(),
           "name": st.sampled_from(["pageview", "engagement", "signup"]),
           "visit_seq": st.sampled_from([None, None, None, 3]),
       }), min_size=2, max_size=30), limit=st.integers(2, 8))
def test_session_batch_form_agrees_on_random_streams(seeded, parts, limit):
    import collector.enhancers.put_session as module

    rows = [(v, 1000 + v, NOW + a * 60_000_000, NOW + b * 60_000_000, n, k) for v, a, b, n, k in seeded]
    steps = []
    for _ in range(2):
        step = module.PutSession(max_visitors=limit)
        step.seed(rows)
        steps.append(step)
    batch, alone = [Hit(**p) for p in parts], [Hit(**p) for p in parts]
    original = module.new_session_id
    try:
        module.new_session_id = lambda ts, ids=iter(range(10**6)): next(ids)
        steps[0].many(batch)
        module.new_session_id = lambda ts, ids=iter(range(10**6)): next(ids)
        for hit in alone:
            steps[1](hit)
    finally:
        module.new_session_id = original
    assert [msgspec.structs.asdict(h) for h in batch] == [msgspec.structs.asdict(h) for h in alone]
    assert list(steps[0].active.items()) == list(steps[1].active.items())  # order too: it is the LRU order
