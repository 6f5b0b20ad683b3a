"""Per-site JSON Schemas for custom events' props: what a site promised to send, checked as it arrives.

    [sites."example.com".schemas.signup]        # a JSON Schema, inline
    type = "object"
    required = ["plan"]
    properties.plan = { enum = ["free", "pro"] }

    [sites."example.com".schemas]
    purchase = "schemas/purchase.json"          # or a file, relative to the config file

A schema applies to the props of events with that name on that site, as the
client typed them (a number stays a number; an absent `props` is `{}`).
Validators are compiled once, at start, with fastjsonschema (drafts 4, 6 and
7): it turns a schema into Python code, ~1 µs a check, which the hot path can
afford. A bad schema stops the server at start with the site and event named.

The check runs in the sources, where the event is parsed, and not as an edge
step: a step sees props already turned into strings (Plausible's rule), so
types could not be judged, and the quarantine must keep the event as it was
sent, which only the source has.
"""

from __future__ import annotations

import json
from pathlib import Path

import fastjsonschema


class Schemas:
    def __init__(self, validators: dict[tuple[str, str], object] | None = None):
        self.validators = validators or {}

    def __bool__(self) -> bool:
        return bool(self.validators)

    @classmethod
    def from_settings(cls, settings) -> Schemas:
        base = Path(settings.source).parent if settings.source not in ("defaults", "environment") else Path(".")
        validators = {}
        for site, table in (settings.values.get("sites") or {}).items():
            if not isinstance(table, dict):
                continue
            for name, schema in (table.get("schemas") or {}).items():
                where = f'[sites."{site}".schemas.{name}]'
                if isinstance(schema, str):
                    path = base / schema
                    try:
                        schema = json.loads(path.read_text())
                    except (OSError, ValueError) as exc:
                        raise ValueError(f"{where}: cannot read a JSON Schema from {path}: {exc}") from None
                if not isinstance(schema, dict):
                    raise ValueError(f"{where} must be a JSON Schema table or a path to a .json file")
                try:
                    validators[site.strip().lower(), name] = fastjsonschema.compile(schema)
                except fastjsonschema.JsonSchemaDefinitionException as exc:
                    raise ValueError(f"{where} is not a valid JSON Schema: {exc}") from None
        return cls(validators)

    def check(self, site: str, name: str, props) -> str | None:
        """None when the props fit (or no schema applies), else what is wrong, naming the prop."""
        validate = self.validators.get((site, name))
        if validate is None:
            return None
        if isinstance(props, str):
            try:
                props = json.loads(props)
            except (ValueError, RecursionError):
                return "props: is not JSON"
        try:
            validate({} if props is None else props)
        except fastjsonschema.JsonSchemaValueException as exc:
            return f"schema {name}: " + exc.message.replace("data", "props", 1)
        return None
