"""One keep-alive HTTP/1.1 connection to the collector, on the standard library's http.client."""

from __future__ import annotations

import http.client
import ssl
from urllib.parse import urlsplit

from strana_sdk import __version__
from strana_sdk._core import BATCH_PATH, Reply

NETWORK_ERRORS = (OSError, http.client.HTTPException)


class Transport:
    """POSTs gzipped batches; reconnects after any error. Not thread-safe: one per sender."""

    def __init__(self, url: str, ssl_context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port
        self.path = parts.path.rstrip("/") + BATCH_PATH
        self.ssl_context = ssl_context
        self.conn: http.client.HTTPConnection | None = None
        self.headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "User-Agent": f"strana-sdk-python/{__version__}",
        }

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self.https:
            ctx = self.ssl_context or ssl.create_default_context()
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=ctx)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def post(self, body: bytes, timeout: float) -> Reply:
        """Send once. Raises OSError / HTTPException on network trouble (the caller decides on retrying).

        A kept-alive connection that the server closed while idle fails on first use; that one case is
        retried at once on a fresh connection, which is safe because every event carries its event_id.
        """
        reused = self.conn is not None
        try:
            return self._post(body, timeout)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            if not reused:
                raise
            return self._post(body, timeout)

    def _post(self, body: bytes, timeout: float) -> Reply:
        if self.conn is None:
            self.conn = self._connect(timeout)
        conn = self.conn
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        try:
            conn.request("POST", self.path, body=body, headers=self.headers)
            resp = conn.getresponse()
            data = resp.read()
        except BaseException:
            self.close()
            raise
        if resp.will_close:
            self.close()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None
