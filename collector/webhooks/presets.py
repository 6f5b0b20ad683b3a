"""Ready mappings for senders many sites use, so `preset = "stripe"` plus a secret and a site is enough.

A preset is a hook config without `secret` and `site`; the operator's own keys
win over the preset's, and an own `map` replaces the preset's rules whole.
Sample deliveries for each live in tests/data/webhooks/.

- `stripe`: checkout.session.completed, payment_intent.succeeded and
  invoice.paid as revenue (amounts are in minor units). Subscribe the
  endpoint to one of checkout / payment_intent for one-off payments: Stripe
  sends both for the same payment, and they would be counted twice.
- `github`: a star (the `star` event, or the older `watch` one: subscribe to
  one of them) and a published release.
- `form`: a generic form or newsletter signup posted as JSON with a bearer
  secret; the e-mail address is the visitor key (hashed, never stored).
"""

from __future__ import annotations

STRIPE_COMMON = {"timestamp": "$.created", "visitor": "customer"}

PRESETS: dict[str, dict] = {
    "stripe": {
        "verify": "stripe",
        "tolerance_seconds": 300,
        "id": "$.id",  # evt_...: Stripe resends the same event id
        "map": [
            {"when": {"type": "checkout.session.completed"}, "each": "[data.object]", **STRIPE_COMMON,
             "name": "'Purchase'",
             "revenue": {"amount": "amount_total", "currency": "currency", "divisor": "minor"},
             "props": {"stripe_event": "$.type", "mode": "mode", "payment_status": "payment_status",
                       "livemode": "$.livemode"}},
            {"when": {"type": "payment_intent.succeeded"}, "each": "[data.object]", **STRIPE_COMMON,
             "name": "'Payment'",
             "revenue": {"amount": "amount_received", "currency": "currency", "divisor": "minor"},
             "props": {"stripe_event": "$.type", "livemode": "$.livemode"}},
            {"when": {"type": "invoice.paid"}, "each": "[data.object]", **STRIPE_COMMON,
             "name": "'Invoice Paid'",
             "revenue": {"amount": "amount_paid", "currency": "currency", "divisor": "minor"},
             "props": {"stripe_event": "$.type", "billing_reason": "billing_reason",
                       "livemode": "$.livemode"}},
        ],
    },
    "github": {
        "verify": "hmac",
        "header": "X-Hub-Signature-256",
        "encoding": "hex",
        "prefix": "sha256=",
        "id": "header:X-GitHub-Delivery",
        "map": [
            {"when": {"header:X-GitHub-Event": "star", "action": "created"},
             "name": "'GitHub Star'", "timestamp": "starred_at", "visitor": "sender.id",
             "url": "repository.html_url",
             "props": {"repo": "repository.full_name", "stars": "repository.stargazers_count"}},
            {"when": {"header:X-GitHub-Event": "watch", "action": "started"},
             "name": "'GitHub Star'", "visitor": "sender.id", "url": "repository.html_url",
             "props": {"repo": "repository.full_name", "stars": "repository.stargazers_count"}},
            {"when": {"header:X-GitHub-Event": "release", "action": "published"},
             "name": "'GitHub Release'", "timestamp": "release.published_at", "visitor": "sender.id",
             "url": "release.html_url",
             "props": {"repo": "repository.full_name", "tag": "release.tag_name",
                       "prerelease": "release.prerelease"}},
        ],
    },
    "form": {
        "verify": "bearer",
        "id": "id",
        "map": [
            {"name": "not_null(event, 'Signup')", "timestamp": "submitted_at", "visitor": "email",
             "url": "page",
             "props": {"form": "form", "plan": "fields.plan", "source": "fields.source"}},
        ],
    },
}
