"""Random tokens, their hashes, and HMAC-signed cookie values.

API keys, shared-link tokens and the setup token are 256-bit random strings;
only their sha256 is stored (a high-entropy token needs no slow hash). Session
and link cookies are `base64(json).hmac` under a server secret kept in the
store, so a restart keeps people logged in and a tampered cookie is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets


def new_token(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_id() -> str:
    return secrets.token_hex(8)


class Signer:
    def __init__(self, secret: bytes):
        self.secret = secret

    def _mac(self, payload: bytes, purpose: str) -> str:
        mac = hmac.new(self.secret, purpose.encode() + b"\x00" + payload, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def sign(self, data: dict, purpose: str) -> str:
        payload = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")
        return f"{payload}.{self._mac(payload.encode(), purpose)}"

    def unsign(self, value: str | None, purpose: str) -> dict | None:
        if not value or value.count(".") != 1 or len(value) > 4096:
            return None
        payload, mac = value.split(".")
        if not hmac.compare_digest(mac, self._mac(payload.encode(), purpose)):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (ValueError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None
