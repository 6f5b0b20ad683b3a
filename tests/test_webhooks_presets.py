"""Each shipped preset with its sample delivery, through the real server: the stored rows (name, revenue, props,
site, visitor id) are what the mapping promises, the user key is hashed and never kept, a resend is stored once,
an event type the preset does not map is answered 202 and ignored."""

from __future__ import annotations

import uuid

import pytest
from webhook_support import (
    CONFIG,
    FIREFOX,
    bearer,
    github_headers,
    raw,
    sample,
    shopify_headers,
    string_values,
    stripe_headers,
)


@pytest.fixture
def preset_server(make_server, tmp_path):
    (tmp_path / "strana.toml").write_text(CONFIG)
    return make_server(config=tmp_path / "strana.toml")


def test_every_preset_stores_what_it_promises(preset_server):
    server = preset_server
    gh_star = str(uuid.uuid4())
    deliveries = [
        ("stripe", sample("stripe_checkout_session_completed.json"), stripe_headers),
        ("stripe", sample("stripe_payment_intent_succeeded.json"), stripe_headers),
        ("stripe", sample("stripe_invoice_paid.json"), stripe_headers),
        ("github", sample("github_star.json"), lambda b: github_headers(b, "star", gh_star)),
        ("github", sample("github_release_published.json"), lambda b: github_headers(b, "release", "rel-1")),
        ("signup", sample("form_signup.json"), lambda b: bearer()),
        ("shop", sample("shopify_orders_paid.json"), lambda b: shopify_headers(b, "shop-order-1042")),
    ]
    with server.client() as c:
        for hook, body, headers in deliveries:
            data = raw(body)
            r = c.post(f"/hooks/{hook}", content=data, headers=headers(data))
            assert r.status_code == 202, (hook, r.text)
            assert r.json()["accepted"] == (2 if hook == "shop" else 1)
        # Stripe and GitHub resend deliveries: same ids, stored once
        data = raw(sample("stripe_invoice_paid.json"))
        assert c.post("/hooks/stripe", content=data, headers=stripe_headers(data)).status_code == 202
        data = raw(sample("github_star.json"))
        assert c.post("/hooks/github", content=data, headers=github_headers(data, "star", gh_star)).status_code == 202
        # an event type no rule maps: 202, ignored, nothing stored (Stripe would disable an endpoint that 4xx's)
        data = raw(sample("stripe_customer_created.json"))
        r = c.post("/hooks/stripe", content=data, headers=stripe_headers(data))
        assert r.status_code == 202 and r.headers["x-strana-ignored"] == "no_rule"
        # a GitHub star sent as `watch` (the older event) counts as a star too; an unstar does not count
        data = raw({**sample("github_star.json"), "action": "started"})
        assert c.post("/hooks/github", content=data,
                      headers=github_headers(data, "watch", str(uuid.uuid4()))).json()["accepted"] == 1
        data = raw({**sample("github_star.json"), "action": "deleted"})
        assert c.post("/hooks/github", content=data,
                      headers=github_headers(data, "star", str(uuid.uuid4()))).json()["ignored"] == "no_rule"
        # a browser event for the same site, to see that the webhook rows sit beside it
        r = c.post("/api/event", json={"n": "pageview", "u": "https://example.com/"}, headers={"user-agent": FIREFOX})
        assert r.status_code == 202 and "x-strana-ignored" not in r.headers
    server.stop()

    with server.db() as db:
        rows = db.execute("""
            SELECT name, site, via, revenue_amount, revenue_currency, props, visitor_id IS NOT NULL, hostname,
                   pathname, browser
            FROM events WHERE via = 'webhook' ORDER BY name, revenue_amount""").fetchall()
        stamps = db.execute("SELECT count(*) FROM events WHERE via = 'webhook' "
                            "AND timestamp BETWEEN now() - INTERVAL 2 MINUTE AND now()").fetchone()[0]
        texts = string_values(db, "events")
        dropped = db.execute("SELECT reason, sum(n) FROM drops GROUP BY reason").fetchall()

    assert rows == [
        ("GitHub Release", "example.com", "webhook", None, None,
         {"repo": "octo-org/strana", "tag": "v0.3.0", "prerelease": "false"}, True, "github.com",
         "/octo-org/strana/releases/tag/v0.3.0", None),
        ("GitHub Star", "example.com", "webhook", None, None, {"repo": "octo-org/strana", "stars": "128"}, True,
         "github.com", "/octo-org/strana", None),
        ("GitHub Star", "example.com", "webhook", None, None, {"repo": "octo-org/strana", "stars": "128"}, True,
         "github.com", "/octo-org/strana", None),
        ("Invoice Paid", "example.com", "webhook", 19.0, "USD",
         {"stripe_event": "invoice.paid", "billing_reason": "subscription_cycle", "livemode": "false"}, True,
         "(none)", "/", None),
        ("Item Sold", "shop.example.com", "webhook", 12.5, "EUR", {"sku": "MUG-BLK", "quantity": "2", "order": "#1042"},
         True, "(none)", "/", None),
        ("Item Sold", "shop.example.com", "webhook", 24.0, "EUR", {"sku": "TEE-M", "quantity": "1", "order": "#1042"},
         True, "(none)", "/", None),
        ("Newsletter Signup", "example.com", "webhook", None, None,
         {"form": "newsletter", "plan": "weekly", "source": "footer"}, True, "example.com",
         "/blog/privacy-first-analytics", None),
        # JPY has no minor unit: 250000 is ¥250,000; the guest payment has no customer, so no visitor id
        ("Payment", "example.com", "webhook", 250000.0, "JPY", {"stripe_event": "payment_intent.succeeded",
                                                                 "livemode": "false"}, False, "(none)", "/", None),
        ("Purchase", "example.com", "webhook", 49.0, "EUR",
         {"stripe_event": "checkout.session.completed", "mode": "payment", "payment_status": "paid",
          "livemode": "false"}, True, "(none)", "/", None),
    ]
    assert stamps == len(rows)  # the sender's times (moved to a minute ago by sample()) were used
    # the two resends are the only drops: Stripe/1.0, GitHub-Hookshot... are not judged by the bot filter
    assert dropped == [("duplicate", 2)]
    # the visitor keys (customer ids, e-mail, user ids) are hashed, never stored; nor is anything else personal
    for secret in ("cus_R2dQ8vYtPz1Kq3", "reader@example.org", "583231", "7001234567890", "jenny.rosen",
                   "198.51.100.23", "utm_source=mastodon"):
        assert not [t for t in texts if secret in t], secret
