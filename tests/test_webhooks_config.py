"""Webhook config is checked at start: the README's example loads, mistakes are named; and the mapping's
small rules (minor units, epoch times, `each`, `when`, ids) as a table, without a server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from collector.schemas import Schemas
from collector.settings import load
from collector.sources.plausible import Limits
from collector.webhooks import build_hook, load_hooks
from collector.webhooks.mapping import Mapping, MappingError

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_the_readme_example_loads(tmp_path, monkeypatch):
    block = README.split("<!-- webhooks-example")[1].split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "strana.toml").write_text(block)
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "purchase.json").write_text(json.dumps({"required": ["sku"]}))
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_readme")
    settings = load(tmp_path / "strana.toml", environ={})
    hooks = load_hooks(settings)
    assert sorted(hooks) == ["github", "newsletter", "shop", "stripe"]
    schemas = Schemas.from_settings(settings)
    assert schemas.check("example.com", "signup", {"plan": "team", "seats": 2}) is None
    assert "props.seats" in schemas.check("example.com", "signup", {"plan": "team", "seats": 0})
    assert "sku" in schemas.check("example.com", "purchase", {})
    assert settings.admin.token == "change-me"


@pytest.mark.parametrize("cfg,needle", [
    ({"site": "a.com", "preset": "stripe"}, "needs `secret`"),
    ({"site": "a.com", "preset": "stripe", "secret": ""}, "needs `secret`"),
    ({"site": "a.com", "preset": "stripe", "secret_env": "NOT_SET_ANYWHERE_42"}, "NOT_SET_ANYWHERE_42 is not set"),
    ({"site": "a.com", "preset": "paypal", "secret": "s"}, "preset must be one of stripe, github, form"),
    ({"site": "a.com", "preset": "stripe", "secret": "s", "colour": "red"}, "unknown key(s) colour"),
    ({"secret": "s", "preset": "stripe"}, "needs `site`"),
    ({"site": "a.com", "secret": "s", "verify": "hmac"}, "no mapping"),
    ({"site": "a.com", "secret": "s", "verify": "md5", "map": {"name": "'x'"}}, "verify must be hmac, stripe"),
    ({"site": "a.com", "secret": "s", "map": {"name": "'x'"}}, "hmac needs `header`"),
    ({"site": "a.com", "secret": "s", "header": "X-Sig", "encoding": "b32", "map": {"name": "'x'"}},
     "encoding must be hex or base64"),
    ({"site": "a.com", "secret": "s", "verify": "bearer", "map": {"props": {"a": "b"}}}, "`name` is required"),
    ({"site": "a.com", "secret": "s", "verify": "bearer", "map": {"name": "a[?"}}, "is not a JMESPath expression"),
    ({"site": "a.com", "secret": "s", "verify": "bearer", "map": {"name": "'x'", "nmae": "y"}}, "unknown key(s) nmae"),
    ({"site": "a.com", "secret": "s", "verify": "bearer", "map": {"name": "'x'", "visitor": "header:User-Agent"}},
     "may not read the user-agent header"),
    ({"site": "a.com", "secret": "s", "verify": "bearer",
      "map": {"name": "'x'", "revenue": {"amount": "a", "divisor": 0}}}, "divisor must be a positive number"),
])
def test_config_mistakes_are_named(cfg, needle):
    with pytest.raises(ValueError, match=re.escape(needle)):
        build_hook("pay", cfg)


def test_a_hook_name_must_fit_in_a_url():
    with pytest.raises(ValueError, match="letters, digits"):
        build_hook("my hook", {"site": "a.com", "preset": "form", "secret": "s"})


LIMITS = Limits()
NOW = 1_900_000_000 * 1_000_000


def run(rule: dict, payload, headers=None):
    mapping = Mapping("t", [rule], None, "webhooks.t")
    return mapping.apply(payload, headers or {}, "dlv", site="a.com", now_us=NOW, limits=LIMITS)


# (rule, payload, what the first event holds: {field: value}, or the MappingError's field and message fragment)
CASES = [
    # --- revenue in minor units: cents, yen, fils
    ({"name": "'p'", "revenue": {"amount": "a", "currency": "c", "divisor": "minor"}}, {"a": 4900, "c": "eur"},
     {"revenue_amount": 49.0, "revenue_currency": "EUR"}),
    ({"name": "'p'", "revenue": {"amount": "a", "currency": "c", "divisor": "minor"}}, {"a": 4900, "c": "jpy"},
     {"revenue_amount": 4900.0}),
    ({"name": "'p'", "revenue": {"amount": "a", "currency": "c", "divisor": "minor"}}, {"a": 4900, "c": "KWD"},
     {"revenue_amount": 4.9}),
    ({"name": "'p'", "revenue": {"amount": "a", "currency": "c"}}, {"a": "12.50", "c": "usd"},
     {"revenue_amount": 12.5}),
    ({"name": "'p'", "revenue": {"amount": "a", "currency": "c"}}, {"a": "lots", "c": "usd"},
     ("revenue.amount", "not a number")),
    ({"name": "'p'", "revenue": {"amount": "a", "currency": "c"}}, {"a": 5, "c": "euro"},
     ("revenue.currency", "not a three-letter")),
    # --- times: ISO, epoch seconds, epoch milliseconds, too old
    ({"name": "'p'", "timestamp": "t"}, {"t": 1_899_999_000}, {"timestamp": 1_899_999_000 * 1_000_000}),
    ({"name": "'p'", "timestamp": "t"}, {"t": 1_899_999_000_123}, {"timestamp": 1_899_999_000_123_000}),
    ({"name": "'p'", "timestamp": "t"}, {"t": "2030-03-17T17:46:40Z"}, {"timestamp": 1_900_000_000 * 1_000_000}),
    ({"name": "'p'", "timestamp": "t"}, {"t": 1_000_000_000}, ("timestamp", "older than 7 days")),
    ({"name": "'p'", "timestamp": "t"}, {"t": "yesterday"}, ("timestamp", "not an ISO 8601")),
    # --- names, sites, props
    ({"name": "kind"}, {"kind": None}, ("name", "`kind` found nothing")),
    ({"name": "kind"}, {"kind": 7}, {"name": "7"}),
    ({"name": "'p'", "site": "shop"}, {"shop": "WWW.Shop.Example"}, {"site": "shop.example"}),
    ({"name": "'p'", "props": {"a": "x", "b": "y.z", "c": "missing"}}, {"x": True, "y": {"z": 1.5}},
     {"props": {"a": "true", "b": "1.5"}}),
    ({"name": "'p'", "props": {"a": "x"}}, {"x": [1, 2]}, {"props": None}),  # lists are left out, as Plausible does
    # --- each: one event per element; a non-list is named
    ({"each": "items", "name": "'p'", "props": {"sku": "sku", "order": "$.no"}}, {"no": 9, "items": [{"sku": "A"}]},
     {"props": {"sku": "A", "order": "9"}}),
    ({"each": "items", "name": "'p'"}, {"items": {"sku": "A"}}, ("each", "is a dict, not a list")),
    ({"each": "items[?qty > `1`]", "name": "'p'"}, {"items": [{"qty": 1}, {"qty": 2}]}, {"name": "p"}),
]


@pytest.mark.parametrize("rule,payload,expect", CASES, ids=[str(i) for i in range(len(CASES))])
def test_mapping(rule, payload, expect):
    if isinstance(expect, tuple):
        with pytest.raises(MappingError) as err:
            run(rule, payload)
        assert err.value.field == f"webhooks.t.map[0].{expect[0]}" and expect[1] in err.value.message
        return
    events = run(rule, payload)
    hit = events[0].hit
    for key, value in expect.items():
        assert getattr(hit, key) == value, key
    assert hit.via == "webhook" and hit.client_event_id and len(hit.event_id) == 16


def test_when_and_ids():
    mapping = Mapping("t", [
        {"when": {"header:X-Event": ["a", "b"], "action": "go"}, "name": "'ab'"},
        {"each": "items", "id": "ref", "name": "'item'"},
    ], "$.delivery", "webhooks.t")
    headers = {b"x-event": "b"}
    first = mapping.apply({"action": "go"}, headers, "d1", site="a.com", now_us=NOW, limits=LIMITS)
    assert first[0].hit.name == "ab"
    with pytest.raises(MappingError, match=re.escape("map[1].each: `items` is nothing")):  # the catch-all rule
        mapping.apply({"action": "stop"}, {}, "d1", site="a.com", now_us=NOW, limits=LIMITS)
    items = {"items": [{"ref": "x"}, {"ref": "y"}]}
    one = mapping.apply(items, {}, "d1", site="a.com", now_us=NOW, limits=LIMITS)
    again = mapping.apply({"items": [{"ref": "y"}]}, {}, "d1", site="a.com", now_us=NOW, limits=LIMITS)
    other = mapping.apply(items, {}, "d2", site="a.com", now_us=NOW, limits=LIMITS)
    assert one[1].hit.event_id == again[0].hit.event_id  # ids follow the element's id, not its position
    assert {m.hit.event_id for m in one}.isdisjoint(m.hit.event_id for m in other)
    assert mapping.delivery({"delivery": "abc"}, {}, b"") == "abc"
    assert mapping.delivery({}, {}, b"body").startswith("sha256:")
    assert Mapping("t", [{"name": "'x'", "when": {"a": 1}}], None, "w").apply({"a": 2}, {}, "d", site="a.com",
                                                                               now_us=NOW, limits=LIMITS) is None
