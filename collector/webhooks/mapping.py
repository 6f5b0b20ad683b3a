"""From a webhook's JSON payload to events: the operator's mapping, compiled once, applied per delivery.

A mapping is a list of rules. The first rule whose `when` matches the
delivery makes its events; a delivery no rule matches is ignored (a sender
like Stripe posts every event type the endpoint is subscribed to). A rule:

    when    = { type = "invoice.paid", "header:X-GitHub-Event" = ["star", "watch"] }
    each    = "data.object.lines.data"       # optional: one event per element
    name    = "'purchase'"                   # required
    site    = "..."                          # optional, else the hook's `site`
    timestamp, visitor, url, id = "..."      # optional
    revenue = { amount = "...", currency = "...", divisor = 100 | "minor" }
    props   = { plan = "...", ... }

Values are JMESPath expressions (https://jmespath.org; `'text'` is a
literal). They read the current element under `each`, else the payload;
`$.path` reads the whole payload and `header:Name` a request header.
`divisor = "minor"` divides by the currency's minor unit (100, or 1 for
JPY-like currencies, 1000 for KWD-like ones), as Stripe's amounts need.

Each event's id is derived from the delivery id (`id` of the hook: a header
or a path, else a hash of the body), the rule and the element, so a resent
webhook maps to the same ids and is stored once. A failure names the rule
field and the expression that found nothing: that is the 422 the sender sees.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import uuid
from dataclasses import dataclass

import jmespath
from jmespath.exceptions import JMESPathError

from collector.events import Hit
from collector.sources.plausible import scalar_text

NS = uuid.UUID("8a0f8c1e-3c55-4f0e-9d7b-5b1f5a0c2e77")  # namespace for webhook event ids
ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())
THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())


class MappingError(Exception):
    """The payload does not fit the mapping: `field` names the rule field, the message the expression."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Expr:
    """One value expression: a header, a path from the payload's root, or a path from the current element."""

    def __init__(self, text: str, where: str):
        self.text = text
        self.header: bytes | None = None
        self.root = False
        try:
            if text.lower().startswith("header:"):
                self.header = text[7:].strip().lower().encode()
                self.compiled = None
            else:
                self.root = text == "$" or text.startswith("$.")
                path = text[2:] if text.startswith("$.") else ("@" if text == "$" else text)
                self.compiled = jmespath.compile(path)
        except JMESPathError as exc:
            raise ValueError(f"{where}: {text!r} is not a JMESPath expression ({exc})") from None

    def find(self, item, root, headers: dict[bytes, str]):
        if self.header is not None:
            return headers.get(self.header)
        return self.compiled.search(root if self.root else item)


@dataclass
class Mapped:
    hit: Hit
    raw_props: dict  # props as the payload typed them, for schema checks


def _number(value, field: str, text: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise MappingError(field, f"`{text}` is {value!r}, not a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or abs(value) > 1e300 \
            or not math.isfinite(value):  # the bound first: an integer like 2**2000 has no float
        raise MappingError(field, f"`{text}` is {value!r:.40}, not a number in range")
    return float(value)


def _timestamp(value, field: str, text: str, now_us: int, limits) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").replace(".", "", 1).isdigit():
        value = float(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not -1e15 < value < 1e15:  # nor NaN; out of any range below, and 2**2000 / 1000 would overflow
            raise MappingError(field, f"`{text}` is {value!r:.40}, not a time in range")
        seconds = value / 1000 if value > 1e11 else value  # milliseconds when it is that large
        us = int(seconds * 1_000_000)
    elif isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise MappingError(field, f"`{text}` is {value!r}, not an ISO 8601 date-time or epoch seconds") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        us = int(when.timestamp() * 1_000_000)
    else:
        raise MappingError(field, f"`{text}` is {value!r}, not a time")
    if us < now_us - limits.max_past_us:
        raise MappingError(field, f"`{text}` is older than {limits.max_past_us // 86_400_000_000} days")
    if us > now_us + limits.max_future_us:
        raise MappingError(field, f"`{text}` is more than {limits.max_future_us // 1_000_000} s in the future")
    return us


class Rule:
    def __init__(self, cfg: dict, where: str):
        unknown = set(cfg) - {"when", "each", "name", "site", "timestamp", "visitor", "url", "id", "revenue",
                              "props"}
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        if "name" not in cfg:
            raise ValueError(f"{where}: `name` is required (a path, or a literal like \"'signup'\")")
        self.where = where
        self.when = [(Expr(k, f"{where}.when"), v if isinstance(v, list) else [v])
                     for k, v in (cfg.get("when") or {}).items()]
        self.each = Expr(cfg["each"], f"{where}.each") if cfg.get("each") else None
        self.fields = {key: Expr(cfg[key], f"{where}.{key}")
                       for key in ("name", "site", "timestamp", "visitor", "url", "id") if cfg.get(key)}
        revenue = cfg.get("revenue") or {}
        self.amount = Expr(revenue["amount"], f"{where}.revenue.amount") if revenue.get("amount") else None
        self.currency = Expr(revenue.get("currency", "'EUR'"), f"{where}.revenue.currency")
        self.divisor = revenue.get("divisor", 1)
        if self.divisor != "minor" and (not isinstance(self.divisor, (int, float)) or self.divisor <= 0):
            raise ValueError(f"{where}.revenue.divisor must be a positive number or \"minor\"")
        self.props = {key: Expr(text, f"{where}.props.{key}") for key, text in (cfg.get("props") or {}).items()}

    def matches(self, payload, headers) -> bool:
        return all(expr.find(payload, payload, headers) in allowed for expr, allowed in self.when)

    def events(self, payload, headers, *, base: str, site: str, now_us: int, limits) -> list[Mapped]:
        items = [payload]
        if self.each is not None:
            items = self.each.find(payload, payload, headers)
            if not isinstance(items, list):
                raise MappingError(f"{self.where}.each", f"`{self.each.text}` is {_kind(items)}, not a list")
        out = []
        for index, item in enumerate(items):
            out.append(self._one(item, payload, headers, f"{base}\x00{index}", site, now_us, limits))
        return out

    def _find(self, key: str, item, root, headers):
        expr = self.fields.get(key)
        return (expr, expr.find(item, root, headers)) if expr else (None, None)

    def _one(self, item, root, headers, key: str, site: str, now_us: int, limits) -> Mapped:
        w = self.where
        expr, name = self._find("name", item, root, headers)
        name = scalar_text(name)
        if not name or not name.strip():
            raise MappingError(f"{w}.name", f"`{expr.text}` found nothing")
        if len(name) > limits.max_name:
            raise MappingError(f"{w}.name", f"`{expr.text}` is longer than {limits.max_name} characters")
        expr, found = self._find("site", item, root, headers)
        if expr is not None:
            site = scalar_text(found) or ""
            if not site:
                raise MappingError(f"{w}.site", f"`{expr.text}` found nothing")
        site = site.strip().lower().removeprefix("www.")
        if limits.sites is not None and site not in limits.sites:
            raise MappingError(f"{w}.site", f"{site!r} is not in [ingest] sites")
        hit = Hit(name=name, site=site, via="webhook", timestamp=now_us, received_at=now_us)
        expr, found = self._find("timestamp", item, root, headers)
        if found is not None:
            hit.timestamp = _timestamp(found, f"{w}.timestamp", expr.text, now_us, limits)
        expr, found = self._find("visitor", item, root, headers)
        if found is not None:
            hit.visitor_key = scalar_text(found) or None
        expr, found = self._find("url", item, root, headers)
        if isinstance(found, str) and found.startswith(("http://", "https://")):
            hit.url = found[: limits.max_url]
        expr, found = self._find("id", item, root, headers)
        if found is not None:
            key = f"{key.rsplit(chr(0), 1)[0]}\x00id:{scalar_text(found) or found!r}"
        hit.event_id = uuid.uuid5(NS, key).bytes
        hit.client_event_id = True
        if self.amount is not None:
            hit.revenue_amount, hit.revenue_currency = self._revenue(item, root, headers)
        raw = {}
        for prop, pexpr in self.props.items():
            value = pexpr.find(item, root, headers)
            if value is not None:
                raw[prop] = value
        props = {}
        for prop, value in raw.items():
            text = scalar_text(value)
            if text is None or not text.strip():
                continue
            if len(text.encode()) > limits.max_value:
                raise MappingError(f"{w}.props.{prop}", f"is longer than {limits.max_value} bytes")
            props[prop] = text
        hit.props = props or None
        return Mapped(hit, raw)

    def _revenue(self, item, root, headers) -> tuple[float, str]:
        w = self.where
        amount = self.amount.find(item, root, headers)
        if amount is None:
            raise MappingError(f"{w}.revenue.amount", f"`{self.amount.text}` found nothing")
        amount = _number(amount, f"{w}.revenue.amount", self.amount.text)
        currency = self.currency.find(item, root, headers)
        if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
            raise MappingError(f"{w}.revenue.currency", f"`{self.currency.text}` is {currency!r}, "
                                                        "not a three-letter ISO 4217 code")
        currency = currency.upper()
        divisor = self.divisor
        if divisor == "minor":
            divisor = 1 if currency in ZERO_DECIMAL else 1000 if currency in THREE_DECIMAL else 100
        return amount / divisor, currency


def _kind(value) -> str:
    return "nothing" if value is None else f"a {type(value).__name__}"


class Mapping:
    """A hook's rules plus how to find the delivery id."""

    def __init__(self, hook: str, rules: list[dict], delivery_id: str | None, where: str):
        if not rules:
            raise ValueError(f"{where}: no mapping: add a [{where}.map] table or a preset")
        self.hook = hook
        self.rules = [Rule(cfg, f"{where}.map[{i}]") for i, cfg in enumerate(rules)]
        self.delivery_id = Expr(delivery_id, f"{where}.id") if delivery_id else None

    def headers_used(self) -> set[bytes]:
        exprs = [self.delivery_id] if self.delivery_id else []
        for rule in self.rules:
            exprs += [e for e, _ in rule.when] + list(rule.fields.values()) + list(rule.props.values())
            exprs += [e for e in (rule.each, rule.amount, rule.currency) if e is not None]
        return {e.header for e in exprs if e.header is not None}

    def delivery(self, payload, headers, body: bytes) -> str:
        if self.delivery_id is not None:
            found = scalar_text(self.delivery_id.find(payload, payload, headers))
            if found:
                return found
        return "sha256:" + hashlib.sha256(body).hexdigest()

    def apply(self, payload, headers: dict[bytes, str], delivery: str, *, site: str, now_us: int,
              limits) -> list[Mapped] | None:
        """The delivery's events; None when no rule matches; MappingError when the matching rule fails."""
        for index, rule in enumerate(self.rules):
            if rule.matches(payload, headers):
                base = f"{self.hook}\x00{delivery}\x00{index}"
                return rule.events(payload, headers, base=base, site=site, now_us=now_us, limits=limits)
        return None
