"""Granian's two protocols: `strana serve` runs on RSGI (collector/rsgi.py); the same app object is also a
plain ASGI app, for running under any ASGI server. The ingest contract must hold on both, and the bridge that
carries Litestar's routes over RSGI must pass through what an ASGI app sends and receives."""

from __future__ import annotations

import gzip
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import ROOT, free_port

EVENT = b'{"n":"pageview","u":"https://example.com/a","d":"example.com"}'
BROWSER = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0"}


class Granian:
    """`python -m granian` on a target, on a free port; stopped with SIGTERM."""

    def __init__(self, interface: str, target: str, env: dict, log_path, factory: bool = False):
        self.port = free_port()
        args = [sys.executable, "-m", "granian", "--interface", interface, "--host", "127.0.0.1",
                "--port", str(self.port), "--no-ws", *(["--factory"] if factory else []), target]
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **env}, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, log_path.read_text()
            try:
                httpx.get(self.url + "/healthz", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"granian did not start:\n{log_path.read_text()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


@pytest.fixture(params=["strana serve", "granian rsgi", "granian asgi"])
def url(request, make_server, tmp_path):
    """`strana serve` (embedded Granian, RSGI), and the app under Granian's own multi-process server on each
    protocol (RSGI runs the lifespan from FrontDoor's __rsgi_init__ / __rsgi_del__)."""
    env = {"STRANA_SERVER__READ_TIMEOUT_SECONDS": "1"}
    if request.param == "strana serve":
        yield make_server(env=env).url
        return
    interface = request.param.split()[1]
    env["STRANA_SERVER__DATA_DIR"] = str(tmp_path / f"{interface}-data")
    server = Granian(interface, "collector.app:create_app", env, tmp_path / f"{interface}.log", factory=True)
    yield server.url
    server.stop()


def test_an_event_is_answered_and_counted(url):
    with httpx.Client(base_url=url, timeout=30, headers=BROWSER) as c:
        r = c.post("/api/event", content=EVENT, headers={"content-type": "text/plain", "origin": "https://x.org"})
        assert (r.status_code, r.text) == (202, "ok")
        assert r.headers["access-control-allow-origin"] == "*"
        assert r.headers["content-type"].startswith("text/plain") and "x-strana-ignored" not in r.headers
        gz = c.post("/api/event", content=gzip.compress(EVENT), headers={"content-encoding": "gzip"})
        assert gz.status_code == 202
        stats = c.get("/api/v1/stats/aggregate", params={"site": "example.com", "period": "day"}).json()
        assert stats["results"]["pageviews"] == 2


def test_preflight_method_and_bad_bodies(url):
    with httpx.Client(base_url=url, timeout=30) as c:
        pre = c.options("/api/event", headers={"access-control-request-headers": "content-type, x-custom"})
        assert pre.status_code == 204
        assert pre.headers["access-control-allow-headers"] == "content-type, x-custom"
        assert "POST" in pre.headers["access-control-allow-methods"]
        wrong = c.get("/api/event")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "POST, OPTIONS"
        broken = c.post("/api/event", content=b"{not json")
        assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"]
        missing = c.post("/api/event", content=b'{"n":"pageview","d":"example.com"}')
        assert missing.status_code == 422 and missing.json()["field"] == "u"
    big = httpx.post(url + "/api/event", content=b"x" * 70_000, timeout=30)
    assert big.status_code == 413 and big.headers["connection"] == "close"


def test_a_body_that_trickles_in_gets_408(url):
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"POST /api/event HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408")


def test_pixel_batch_tracker_file_and_webhook_paths(url):
    with httpx.Client(base_url=url, timeout=30) as c:
        px = c.get("/p.gif", params={"d": "example.com", "u": "https://example.com/mail"})
        assert px.status_code == 200 and px.content.startswith(b"GIF89a")
        assert px.headers["content-type"] == "image/gif" and "no-cache" in px.headers["cache-control"]
        assert c.head("/p.gif", params={"d": "example.com", "u": "https://example.com/h"}).status_code == 200
        batch = c.post("/api/v1/batch", json={"events": [{"n": "pageview", "u": "https://example.com/b",
                                                          "d": "example.com"}] * 3})
        assert batch.status_code == 202 and batch.json()["accepted"] == 3
        js = c.get("/js/strana.js")
        assert js.status_code == 200 and js.headers["etag"]
        again = c.get("/js/strana.js", headers={"if-none-match": js.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        hook = c.post("/hooks/nobody", content=b"{}")
        assert hook.status_code == 404 and "no webhook" in hook.json()["error"]
        assert c.get("/healthz").json()["status"] == "ok"
        assert c.get("/no/such/page").status_code == 404


@pytest.fixture
def bridge(tmp_path):
    server = Granian("rsgi", "tests.rsgi_bridge_app:app", {}, tmp_path / "bridge.log")
    yield server
    server.stop()


def test_the_bridge_passes_requests_through(bridge):
    with httpx.Client(base_url=bridge.url, timeout=30) as c:
        echo = c.post("/a%20b/c", params={"q": "1 2"}, content=b"12345")
        seen = echo.json()
        assert (seen["path"], seen["raw_path"], seen["query"]) == ("/a b/c", "/a%20b/c", "q=1+2")
        assert (seen["method"], seen["size"], seen["client"][0]) == ("POST", 5, "127.0.0.1")
        assert seen["state"] == {"started": "yes"}  # what the lifespan start-up put there
        assert echo.headers.get_list("x-multi") == ["1", "2"]
        chunked = c.post("/echo", content=(part for part in [b"a" * 40_000, b"b" * 40_000, b"c"]))
        assert chunked.json()["size"] == 80_001
        assert c.get("/stream").text == "one two three"


def test_the_bridge_answers_500_for_an_app_that_fails_or_says_nothing(bridge):
    with httpx.Client(base_url=bridge.url, timeout=30) as c:
        for path in ("/fail", "/fail-after-start", "/silent"):
            r = c.get(path)
            assert r.status_code == 500 and r.json()["error"].startswith("internal error")
        assert c.get("/still/serving").status_code == 200
    log = (bridge.log.name and open(bridge.log.name, "rb").read().decode(errors="replace"))
    assert "a bug in the app" in log


def _half_sent(url: str, path: bytes) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100"
              b"\r\n\r\n{\"site")
    return s


def test_a_body_that_trickles_into_a_litestar_route_gets_408(make_server):
    server = make_server(env={"STRANA_SERVER__READ_TIMEOUT_SECONDS": "1"})
    with _half_sent(server.url, b"/api/v1/query") as s:
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408") and b"did not arrive within 1 seconds" in answer
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_a_request_that_never_finishes_does_not_hold_up_a_stop(make_server):
    server = make_server(env={"STRANA_SERVER__READ_TIMEOUT_SECONDS": "2"})
    with _half_sent(server.url, b"/api/v1/query"), _half_sent(server.url, b"/api/event"):
        started = time.monotonic()
        assert server.stop(timeout=30) == 0
        assert time.monotonic() - started < 30
    assert "drained and closed" in server.log()
