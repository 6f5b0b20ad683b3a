"""Helpers for the SDK tests (no tests here): a scripted, flaky HTTP proxy in front of the real collector.

The proxy forwards POSTs to the collector and records every attempt (decoded batch included), but its
first answers follow a script, so a test can make the SDK retry in every way that matters:

    "503"         answer 503 (Retry-After: 0) without forwarding: nothing stored
    "429"         answer 429 without forwarding
    "400"         answer 400 with an error message, without forwarding
    "drop"        close the connection without an answer, without forwarding
    "500-after"   forward (the collector stores the batch), then answer 500: the SDK retries a stored batch
    "drop-after"  forward, then close the connection without an answer
    "hold"        wait until `release()` is called, then forward
    "forward"     just forward (also what happens once the script is used up)
"""

from __future__ import annotations

import gzip
import http.client
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class FlakyProxy:
    def __init__(self, target_url: str, script: list[str] | tuple[str, ...] = ()):
        self.target = urlsplit(target_url)
        self.script = list(script)
        self.attempts: list[tuple[str, list[dict]]] = []  # (action, events) per request, in arrival order
        self.lock = threading.Lock()
        self.released = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                raw = gzip.decompress(body) if self.headers.get("content-encoding") == "gzip" else body
                with proxy.lock:
                    action = proxy.script.pop(0) if proxy.script else "forward"
                    proxy.attempts.append((action, json.loads(raw).get("events", [])))
                if action == "400":
                    return self._answer(400, b'{"error": "scripted: this batch is refused"}', {})
                if action in ("503", "429"):
                    return self._answer(int(action), b'{"error": "scripted failure"}', {"retry-after": "0"})
                if action == "drop":
                    self.close_connection = True
                    return
                if action == "hold":
                    proxy.released.wait(60)
                status, headers, answer = proxy.forward(self.path, body, self.headers)
                if action == "500-after":
                    return self._answer(500, b'{"error": "scripted failure after storing"}', {})
                if action == "drop-after":
                    self.close_connection = True
                    return
                self._answer(status, answer, headers)

            def _answer(self, status: int, body: bytes, headers: dict):
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                for k, v in headers.items():
                    if k.lower() in ("retry-after",):
                        self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def forward(self, path: str, body: bytes, headers) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection(self.target.hostname, self.target.port, timeout=30)
        try:
            conn.request("POST", path, body=body, headers={k: v for k, v in headers.items()
                                                          if k.lower() in ("content-type", "content-encoding")})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def release(self) -> None:
        self.released.set()

    def events(self, actions: tuple[str, ...] = ("forward", "hold")) -> list[dict]:
        """Events of the attempts that reached the collector and were answered as it answered."""
        with self.lock:
            return [e for action, events in self.attempts if action in actions for e in events]

    def __enter__(self) -> FlakyProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_for(predicate, timeout: float = 30, what: str = "condition"):
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SAFARI = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 "
          "Safari/605.1.15")
