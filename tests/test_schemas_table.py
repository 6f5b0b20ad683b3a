"""Per-site props schemas as a table: what passes, what fails and how the failure is named; bad schemas stop
the server at start."""

from __future__ import annotations

import json

import pytest

from collector.schemas import Schemas
from collector.settings import load

CONFIG = """
[sites."example.com".schemas.signup]
type = "object"
required = ["plan"]
additionalProperties = false
[sites."example.com".schemas.signup.properties]
plan = { enum = ["free", "pro"] }
seats = { type = "integer", minimum = 1 }
coupon = { type = "string", maxLength = 12 }

[sites."example.com".schemas]
purchase = "schemas/purchase.json"
"""
PURCHASE = {"type": "object", "required": ["sku"], "properties": {"sku": {"type": "string", "pattern": "^[A-Z-]+$"},
                                                                  "gift": {"type": "boolean"}}}


@pytest.fixture(scope="module")
def schemas(tmp_path_factory):
    folder = tmp_path_factory.mktemp("schemas")
    (folder / "schemas").mkdir()
    (folder / "schemas" / "purchase.json").write_text(json.dumps(PURCHASE))
    (folder / "strana.toml").write_text(CONFIG)
    return Schemas.from_settings(load(folder / "strana.toml", environ={}))


# (site, event name, props as sent, None when they pass or a fragment of the message)
CASES = [
    # --- passes
    ("example.com", "signup", {"plan": "pro"}, None),
    ("example.com", "signup", {"plan": "free", "seats": 3, "coupon": "WELCOME"}, None),
    ("example.com", "signup", '{"plan": "pro"}', None),  # props as a JSON string, as the tracker may send them
    ("example.com", "purchase", {"sku": "MUG-BLK", "gift": True}, None),
    ("example.com", "pageview", {"anything": 1}, None),  # no schema for this name
    ("other.org", "signup", {"plan": "gold"}, None),  # nor for this site
    # --- types
    ("example.com", "signup", {"plan": "pro", "seats": "3"}, "props.seats must be integer"),
    ("example.com", "signup", {"plan": "pro", "seats": 2.5}, "props.seats must be integer"),
    ("example.com", "purchase", {"sku": "MUG", "gift": "yes"}, "props.gift must be boolean"),
    # --- required keys
    ("example.com", "signup", {}, "must contain ['plan']"),
    ("example.com", "signup", None, "must contain ['plan']"),  # no props at all: checked as {}
    ("example.com", "purchase", {"gift": False}, "must contain ['sku']"),
    # --- allowed values and ranges
    ("example.com", "signup", {"plan": "gold"}, "props.plan must be one of ['free', 'pro']"),
    ("example.com", "signup", {"plan": "pro", "seats": 0}, "props.seats must be bigger than or equal to 1"),
    ("example.com", "signup", {"plan": "pro", "coupon": "X" * 13}, "props.coupon must be shorter than"),
    ("example.com", "purchase", {"sku": "mug"}, "props.sku must match pattern"),
    # --- unknown keys, broken JSON
    ("example.com", "signup", {"plan": "pro", "email": "a@b.c"}, "must not contain {'email'}"),
    ("example.com", "signup", '{"plan": ', "props: is not JSON"),
]


@pytest.mark.parametrize("site,name,props,problem", CASES, ids=[f"{c[1]}-{c[2]!r}"[:60] for c in CASES])
def test_check(schemas, site, name, props, problem):
    found = schemas.check(site, name, props)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found, found
        if found != "props: is not JSON":
            assert found.startswith(f"schema {name}: ")


@pytest.mark.parametrize("config,needle", [
    ('[sites."a.com".schemas.x]\ntype = "objekt"\n', 'sites."a.com".schemas.x'),
    ('[sites."a.com".schemas]\nx = "missing.json"\n', "cannot read a JSON Schema"),
    ('[sites."a.com".schemas]\nx = 5\n', "JSON Schema table or a path"),
])
def test_a_bad_schema_is_named_at_start(tmp_path, config, needle):
    (tmp_path / "strana.toml").write_text(config)
    with pytest.raises(ValueError, match=needle.replace(".", r"\.").replace("[", r"\[")):
        Schemas.from_settings(load(tmp_path / "strana.toml", environ={}))
