"""Webhook endpoints declared in config: `[webhooks.<name>]` → `POST /hooks/<name>`.

Each hook is read and checked once, at start (like Snowplow checks its
enrichments' config before anything runs): a bad key, a missing secret or an
expression that does not compile stops `strana serve` with a message naming
the hook, rather than failing the first delivery.

    [webhooks.stripe]
    preset = "stripe"                 # stripe | github | form (see presets.py)
    secret = "whsec_..."              # or secret_env = "STRIPE_WEBHOOK_SECRET"; a list rotates
    site = "example.com"

A custom hook spells out what a preset holds: `verify` (hmac | stripe |
bearer) and its keys (signatures.py), `id` (the delivery id: `header:Name` or
a path) and `map` (one table or a list of rules, mapping.py).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from collector.webhooks.mapping import Mapping
from collector.webhooks.presets import PRESETS
from collector.webhooks.signatures import scheme_from_config

HOOK_KEYS = {"preset", "secret", "secret_env", "site", "verify", "header", "encoding", "prefix",
             "timestamp_header", "signed", "tolerance_seconds", "id", "map"}
NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Headers a mapping may read and a quarantined delivery may keep: never anything that identifies a person
# or proves the sender (the signature would let anyone replay the delivery elsewhere).
FORBIDDEN_HEADERS = re.compile(r"(user-agent|forwarded|x-real-ip|client-ip|cookie|authorization|signature|hmac"
                               r"|x-hub-signature)", re.I)


@dataclass
class Hook:
    name: str
    site: str
    scheme: object
    mapping: Mapping

    @property
    def source(self) -> str:
        return f"hook:{self.name}"


def _secrets(name: str, cfg: dict) -> list[bytes]:
    value = cfg.get("secret")
    if value is None and cfg.get("secret_env"):
        value = os.environ.get(cfg["secret_env"])
        if not value:
            raise ValueError(f"[webhooks.{name}] secret_env: ${cfg['secret_env']} is not set")
    values = value if isinstance(value, list) else [value]
    if not value or not all(isinstance(v, str) and v for v in values):
        raise ValueError(f"[webhooks.{name}] needs `secret` (or `secret_env`): every hook is authenticated")
    return [v.encode() for v in values]


def build_hook(name: str, own: dict) -> Hook:
    where = f"webhooks.{name}"
    if not NAME.match(name):
        raise ValueError(f"[{where}]: a hook name is letters, digits, - and _ (it is the URL /hooks/<name>)")
    unknown = set(own) - HOOK_KEYS
    if unknown:
        raise ValueError(f"[{where}]: unknown key(s) {', '.join(sorted(unknown))}")
    cfg: dict = {}
    if own.get("preset"):
        if own["preset"] not in PRESETS:
            raise ValueError(f"[{where}] preset must be one of {', '.join(PRESETS)}, got {own['preset']!r}")
        cfg.update(PRESETS[own["preset"]])
    cfg.update(own)
    rules = cfg.get("map") or []
    if isinstance(rules, dict):
        rules = [rules]
    site = cfg.get("site", "")
    if not isinstance(site, str):
        raise ValueError(f"[{where}] site must be a domain like example.com")
    mapping = Mapping(name, rules, cfg.get("id"), where)
    if not site and any("site" not in rule.fields for rule in mapping.rules):
        raise ValueError(f"[{where}] needs `site` (or a `site` path in every map rule)")
    for header in mapping.headers_used():
        if FORBIDDEN_HEADERS.search(header.decode()):
            raise ValueError(f"[{where}] a mapping may not read the {header.decode()} header")
    try:
        scheme = scheme_from_config(name, cfg, _secrets(name, cfg))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"[{where}] {exc}") from None
    return Hook(name=name, site=site.strip().lower(), scheme=scheme, mapping=mapping)


def load_hooks(settings) -> dict[str, Hook]:
    """Every `[webhooks.<name>]` table of the settings, built and checked."""
    tables = settings.values.get("webhooks", {})
    return {name: build_hook(name, cfg) for name, cfg in tables.items() if isinstance(cfg, dict)}
