"""What app.py needs from auth in one import: the routes, the gate, the batch check, the lifespan.

Kept here so the shared app factory changes by a few lines only.
"""

from __future__ import annotations

import asyncio
import contextlib

from collector.auth.api_people import ROUTES as PEOPLE_ROUTES
from collector.auth.api_sites import ROUTES as SITE_ROUTES
from collector.auth.guard import AuthGate
from collector.auth.ingest import BatchKeys
from collector.auth.pages import ROUTES as PAGE_ROUTES
from collector.auth.service import Auth

ROUTES = [*PAGE_ROUTES, *SITE_ROUTES, *PEOPLE_ROUTES]
FLUSH_SECONDS = 60

__all__ = ["ROUTES", "Auth", "AuthGate", "BatchKeys", "lifespan"]


def lifespan(auth: Auth):
    """Writes API keys' last-used times every minute and at shutdown."""

    @contextlib.asynccontextmanager
    async def run(_app):
        async def loop():
            while True:
                await asyncio.sleep(FLUSH_SECONDS)
                await asyncio.to_thread(auth.directory.flush)

        task = asyncio.create_task(loop(), name="strana-auth-flush")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            auth.directory.flush()

    return run
