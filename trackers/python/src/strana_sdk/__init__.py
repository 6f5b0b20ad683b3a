"""Strana's Python SDK: server-side events and pageviews, batched and retried, without blocking the caller.

    import strana_sdk
    client = strana_sdk.Client("https://stats.example.com", site="example.com")
    client.track("signup", props={"plan": "pro"}, revenue=(9.5, "EUR"), visitor=user.id)

`AsyncClient` is the same for asyncio programs; `strana_sdk.middleware` records pageviews for ASGI
and WSGI apps, `strana_sdk.django` for Django. Only the standard library is used.
"""

from __future__ import annotations

__version__ = "0.1.0"

from strana_sdk._core import Revenue, Stats, Timestamp  # noqa: E402
from strana_sdk.aio import AsyncClient  # noqa: E402
from strana_sdk.client import Client  # noqa: E402

__all__ = ["AsyncClient", "Client", "Revenue", "Stats", "Timestamp", "__version__"]
