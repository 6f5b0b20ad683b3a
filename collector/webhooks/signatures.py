"""Who may post to a webhook: the signature schemes senders use, checked in constant time.

A hook proves its sender with one of three schemes, chosen by `verify`:

- `hmac`: HMAC-SHA256 of the raw body, in a named header, hex or base64, with
  an optional prefix (`sha256=`): GitHub's `X-Hub-Signature-256` and
  Shopify's `X-Shopify-Hmac-Sha256` are this shape. With `timestamp_header`
  the signed message is `signed` (default `{t}.{body}`) and a timestamp
  outside `tolerance_seconds` is refused, against replays.
- `stripe`: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`, HMAC-SHA256
  over `"<t>.<body>"`, 300 s tolerance by default.
- `bearer`: `Authorization: Bearer <secret>`.

Several secrets may be given (a list) so a secret can be rotated without
refusing deliveries. Every comparison is `hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable

Headers = Callable[[bytes], "str | None"]


class SignatureError(Exception):
    """The delivery is not proven to come from the sender: 401, and nothing is kept."""


def _digest(secret: bytes, message: bytes) -> bytes:
    return hmac.new(secret, message, hashlib.sha256).digest()


def _check_time(ts: str, tolerance: int, now: float) -> None:
    try:
        when = int(ts)
    except ValueError:
        raise SignatureError(f"timestamp {ts[:40]!r} is not a whole number of seconds") from None
    if tolerance and abs(now - when) > tolerance:
        raise SignatureError(f"timestamp is {int(now - when)} s away from now (tolerance {tolerance} s): "
                             "a stale or replayed delivery")


class Hmac:
    def __init__(self, secrets: list[bytes], header: str, encoding: str = "hex", prefix: str = "",
                 timestamp_header: str = "", signed: str = "{t}.{body}", tolerance: int = 300):
        if encoding not in ("hex", "base64"):
            raise ValueError(f"encoding must be hex or base64, got {encoding!r}")
        if not header:
            raise ValueError("hmac needs `header`: the header that carries the signature")
        self.secrets = secrets
        self.header = header.lower().encode()
        self.encoding = encoding
        self.prefix = prefix
        self.timestamp_header = timestamp_header.lower().encode() if timestamp_header else b""
        self.signed = signed
        self.tolerance = tolerance

    def _decode(self, text: str) -> bytes:
        try:
            if self.encoding == "hex":
                return bytes.fromhex(text)
            return base64.b64decode(text, validate=True)
        except (ValueError, binascii.Error):
            raise SignatureError(f"{self.header.decode()} is not {self.encoding}") from None

    def verify(self, header: Headers, body: bytes, now: float | None = None) -> None:
        sent = header(self.header)
        if not sent:
            raise SignatureError(f"missing {self.header.decode()} header")
        sent = sent.strip()
        if self.prefix:
            if not sent.startswith(self.prefix):
                raise SignatureError(f"{self.header.decode()} must start with {self.prefix!r}")
            sent = sent[len(self.prefix):]
        signature = self._decode(sent)
        message = body
        if self.timestamp_header:
            ts = header(self.timestamp_header)
            if not ts:
                raise SignatureError(f"missing {self.timestamp_header.decode()} header")
            _check_time(ts.strip(), self.tolerance, time.time() if now is None else now)
            before, _, after = self.signed.partition("{body}")
            message = before.replace("{t}", ts.strip()).encode() + body + after.replace("{t}", ts.strip()).encode()
        if not any(hmac.compare_digest(_digest(secret, message), signature) for secret in self.secrets):
            raise SignatureError(f"{self.header.decode()} does not match the body")


class Stripe:
    header = b"stripe-signature"

    def __init__(self, secrets: list[bytes], tolerance: int = 300):
        self.secrets = secrets
        self.tolerance = tolerance

    def verify(self, header: Headers, body: bytes, now: float | None = None) -> None:
        sent = header(self.header)
        if not sent:
            raise SignatureError("missing Stripe-Signature header")
        ts, candidates = None, []
        for part in sent.split(","):
            key, _, value = part.strip().partition("=")
            if key == "t":
                ts = value
            elif key == "v1":
                try:
                    candidates.append(bytes.fromhex(value))
                except ValueError:
                    continue
        if ts is None or not candidates:
            raise SignatureError("Stripe-Signature needs t=<timestamp> and at least one v1=<hex>")
        _check_time(ts, self.tolerance, time.time() if now is None else now)
        message = ts.encode() + b"." + body
        for secret in self.secrets:
            expected = _digest(secret, message)
            if any(hmac.compare_digest(expected, c) for c in candidates):
                return
        raise SignatureError("Stripe-Signature does not match the body")


class Bearer:
    header = b"authorization"

    def __init__(self, secrets: list[bytes]):
        self.secrets = secrets

    def verify(self, header: Headers, body: bytes, now: float | None = None) -> None:
        sent = header(self.header) or ""
        scheme, _, token = sent.strip().partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise SignatureError("missing Authorization: Bearer <secret> header")
        token_bytes = token.strip().encode()
        # compare against every secret, so timing does not tell how many there are or which matched
        matched = False
        for secret in self.secrets:
            matched |= hmac.compare_digest(token_bytes, secret)
        if not matched:
            raise SignatureError("the bearer secret is wrong")


def scheme_from_config(name: str, cfg: dict, secrets: list[bytes]):
    """The scheme a hook's config asks for; ValueError names what is wrong."""
    kind = cfg.get("verify", "hmac")
    tolerance = int(cfg.get("tolerance_seconds", 300))
    if kind == "hmac":
        return Hmac(secrets, cfg.get("header", ""), cfg.get("encoding", "hex"), cfg.get("prefix", ""),
                    cfg.get("timestamp_header", ""), cfg.get("signed", "{t}.{body}"), tolerance)
    if kind == "stripe":
        return Stripe(secrets, tolerance)
    if kind == "bearer":
        return Bearer(secrets)
    raise ValueError(f"verify must be hmac, stripe or bearer, got {kind!r}")
