"""Shared by the webhook and schema tests: signing like each sender does, sample payloads, the test config."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "webhooks"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
STRIPE_SECRET, GITHUB_SECRET, FORM_SECRET, SHOP_SECRET, SIGNED_SECRET = (
    "whsec_test_5f2b", "gh-secret", "form-bearer-token", "shpss_test", "ts-secret")
ADMIN = "admin-token-for-tests"

CONFIG = f"""
[admin]
token = "{ADMIN}"

[webhooks.stripe]
preset = "stripe"
secret = "{STRIPE_SECRET}"
site = "example.com"

[webhooks.github]
preset = "github"
secret = ["old-gh-secret", "{GITHUB_SECRET}"]
site = "example.com"

[webhooks.signup]
preset = "form"
secret = "{FORM_SECRET}"
site = "example.com"

[webhooks.shop]
site = "shop.example.com"
secret = "{SHOP_SECRET}"
verify = "hmac"
header = "X-Shopify-Hmac-Sha256"
encoding = "base64"
id = "header:X-Shopify-Webhook-Id"
[webhooks.shop.map]
each = "line_items"
name = "'Item Sold'"
timestamp = "$.created_at"
visitor = "$.customer.id"
id = "id"
revenue = {{ amount = "price", currency = "$.currency" }}
props = {{ sku = "sku", quantity = "quantity", order = "$.name" }}

[webhooks.signed]
site = "example.com"
secret = "{SIGNED_SECRET}"
header = "X-Signature"
prefix = "v1="
timestamp_header = "X-Timestamp"
tolerance_seconds = 300
[webhooks.signed.map]
name = "event"
props = {{ plan = "plan" }}
"""


def now_iso(delta: float = 0) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delta)).isoformat().replace("+00:00", "Z")


def sample(name: str) -> dict:
    """A sample delivery, its times moved to now (the server refuses events older than [ingest] max_past_days)."""
    body = json.loads((DATA / name).read_text())
    if "created" in body:
        body["created"] = int(time.time()) - 60
    for key in ("starred_at", "submitted_at", "created_at"):
        if key in body:
            body[key] = now_iso(-60)
    if "release" in body:
        body["release"]["published_at"] = now_iso(-60)
    return body


def raw(body) -> bytes:
    return json.dumps(body).encode() if not isinstance(body, bytes) else body


def stripe_headers(body: bytes, secret: str = STRIPE_SECRET, t: int | None = None) -> dict:
    t = int(time.time()) if t is None else t
    sig = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={t},v1={sig}", "Content-Type": "application/json",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"}


def github_headers(body: bytes, event: str, delivery: str, secret: str = GITHUB_SECRET) -> dict:
    sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={sig}", "X-GitHub-Event": event, "X-GitHub-Delivery": delivery,
            "Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/a1b2c3d"}


def shopify_headers(body: bytes, webhook_id: str, secret: str = SHOP_SECRET) -> dict:
    sig = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {"X-Shopify-Hmac-Sha256": sig, "X-Shopify-Webhook-Id": webhook_id, "Content-Type": "application/json",
            "User-Agent": "Shopify-Captain-Hook"}


def signed_headers(body: bytes, t: int | None = None, secret: str = SIGNED_SECRET) -> dict:
    t = int(time.time()) if t is None else t
    sig = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Signature": f"v1={sig}", "X-Timestamp": str(t), "Content-Type": "application/json"}


def bearer(secret: str = FORM_SECRET) -> dict:
    return {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}


def strana(*args: str, config: Path, data_dir: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "collector.cli", "--config", str(config), *args,
                           "--data-dir", str(data_dir)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def string_values(db, table: str) -> list[str]:
    """Every text value of a table, map values included, to look for what must not be there."""
    cols = db.execute(f"SELECT column_name, data_type FROM information_schema.columns WHERE table_name = '{table}'"
                      ).fetchall()
    out = []
    for col, typ in cols:
        if typ == "VARCHAR":
            out += [r[0] for r in db.execute(f'SELECT "{col}" FROM {table} WHERE "{col}" IS NOT NULL').fetchall()]
        elif typ.startswith("MAP"):
            for (m,) in db.execute(f'SELECT "{col}" FROM {table} WHERE "{col}" IS NOT NULL').fetchall():
                out += [f"{k}={v}" for k, v in m.items()]
    return out
