"""Django: a pageview for each HTML page, configured from settings. Django is imported lazily, never required.

    # settings.py
    MIDDLEWARE = [..., "strana_sdk.django.StranaMiddleware"]
    STRANA = {
        "URL": "https://stats.example.com",   # the collector
        "SITE": "example.com",                # the site's domain in Strana
        # optional: any Client option (BATCH_SIZE, FLUSH_INTERVAL, MAX_QUEUE, DROP, DEBUG, ...) and any
        # PageviewRules option (TRUSTED_PROXIES, SKIP_PATHS, SKIP_USER_AGENTS, BASE_URL, ...)
    }

One `Client` per process is shared by every request; it flushes at exit.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any, Callable

from strana_sdk.client import Client
from strana_sdk.middleware import PageviewRules, record_wsgi, wsgi_headers

_clients: dict[tuple[str, str], Client] = {}
_lock = threading.Lock()
_RULE_KEYS = set(inspect.signature(PageviewRules.__init__).parameters) - {"self"}


def configure(config: dict[str, Any]) -> tuple[Client, PageviewRules]:
    """STRANA settings → (the process's shared client, the rules). Keys are case-insensitive."""
    options = {str(k).lower(): v for k, v in config.items()}
    url, site = options.pop("url", None), options.pop("site", None)
    if not url or not site:
        raise ValueError('settings.STRANA needs "URL" (the collector) and "SITE" (the site domain)')
    rules = PageviewRules(**{k: options.pop(k) for k in list(options) if k in _RULE_KEYS})
    with _lock:
        client = _clients.get((url, site))
        if client is None:
            client = _clients[(url, site)] = Client(url, site, **options)
    return client, rules


class StranaMiddleware:
    """Records a pageview for each 2xx text/html response; skips static files, health checks and bots."""

    sync_capable = True
    async_capable = False  # Django adapts it; pageview() only queues, so nothing here waits

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        from django.conf import settings
        from django.core.exceptions import ImproperlyConfigured

        self.get_response = get_response
        try:
            self.client, self.rules = configure(getattr(settings, "STRANA", None) or {})
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(f"strana_sdk: {exc}") from exc

    def __call__(self, request: Any) -> Any:
        response = self.get_response(request)
        try:
            self._maybe_record(request, response)
        except Exception:  # analytics must never break a page
            from strana_sdk._core import log

            log.exception("strana_sdk: could not record a pageview")
        return response

    def _maybe_record(self, request: Any, response: Any) -> None:
        headers = wsgi_headers(request.META)
        if not self.rules.wanted_request(request.method, request.path, headers):
            return
        if not self.rules.wanted_response(response.status_code, response.get("Content-Type", "")):
            return
        url: str | None = None
        if not self.rules.base_url:
            url = request.build_absolute_uri()
        record_wsgi(self.client, self.rules, request.META, request.path, headers, url=url)
