"""Hostile input over the real HTTP server: every row a 4xx (or a 2xx where the input is fair), never a 5xx.

Each row is one raw HTTP/1.1 exchange on a socket (so the request may be
anything the wire allows, not only what an HTTP client library would send)
against one `strana serve` with a webhook configured and a 2 s read timeout.
After each row the server must still answer /healthz; at the end its log must
hold no traceback. Slow-loris clients and the memory a flood of hostile
requests leaves behind are tested beside the table. Well-formed bad input
(wrong types, missing fields) is tests/test_bad_input.py; random bodies are
tests/test_fuzz_ingest.py; the stats API's own schema is
tests/test_auth_schemathesis.py.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import StranaServer

HOOK_SECRET = "hostile-hook-secret"
CONFIG = f"""
[webhooks.signup]
preset = "form"
secret = "{HOOK_SECRET}"
site = "example.com"

[webhooks.paid]
site = "example.com"
secret = "{HOOK_SECRET}"
verify = "bearer"
[webhooks.paid.map]
name = "'Paid'"
timestamp = "ts"
revenue = {{ amount = "amount", currency = "'EUR'" }}
"""
READ_TIMEOUT = 2
GOOD = b'{"n":"pageview","u":"https://example.com/","d":"example.com"}'
JSON = b"Content-Type: application/json\r\n"
UA = b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"  # not a bot
BEARER = f"Authorization: Bearer {HOOK_SECRET}\r\n".encode()


def post(path: bytes, body: bytes, headers: bytes = b"") -> bytes:
    return (b"POST " + path + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: %d\r\n" % len(body)
            + (b"" if b"User-Agent" in headers else UA) + headers + b"\r\n" + body)


def get(path: bytes, headers: bytes = b"") -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + headers + b"\r\n"


def chunked(path: bytes, chunks: list[bytes], headers: bytes = b"") -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    return (b"POST " + path + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n"
            + headers + b"\r\n" + body)


def event(**fields) -> bytes:
    return json.dumps({"n": "pageview", "u": "https://example.com/", "d": "example.com", **fields}).encode()


def batch(*events: bytes) -> bytes:
    return b'{"events":[' + b",".join(events) + b"]}"


def deep(n: int) -> bytes:
    return b"[" * n


def with_raw(field: bytes, raw: bytes) -> bytes:
    """GOOD with one more field whose JSON value is `raw` as written (numbers json.dumps cannot make)."""
    return GOOD[:-1] + b',"' + field + b'":' + raw + b"}"


BIG_INT = str(2**2000).encode()
GIF = {200}  # the pixel answers with the GIF whatever it was sent (X-Strana-Ignored says why)

# (id, raw request, allowed statuses, text the answer's body must contain or None)
CASES = [
    # --- giant headers
    ("64 KiB header", post(b"/api/event", GOOD, b"X-Big: " + b"a" * 65536 + b"\r\n"), {202, 431}, None),
    ("64 KiB header on the dashboard", get(b"/example.com", b"X-Big: " + b"a" * 65536 + b"\r\n"), {200, 404, 431},
     None),
    ("1 MiB header", post(b"/api/event", GOOD, b"X-Big: " + b"a" * (1 << 20) + b"\r\n"), {431}, None),
    ("500 headers", post(b"/api/event", GOOD, b"".join(b"X-H%d: v\r\n" % i for i in range(500))), {431}, None),
    # --- deep JSON: msgspec's recursion limit is a 400, not a RecursionError
    ("deep json event", post(b"/api/event", deep(60_000)), {400}, "nested too deeply"),
    ("deep json in props", post(b"/api/event", GOOD[:-1] + b',"p":' + deep(60_000)), {400}, "nested too deeply"),
    ("deep json props string", post(b"/api/event", event(p="[" * 20_000)), {422}, "p: must be an object"),
    ("deep json batch", post(b"/api/v1/batch", b'{"events":' + deep(100_000)), {400}, "nested too deeply"),
    ("deep json webhook", post(b"/hooks/signup", deep(100_000), BEARER), {400}, "nested too deeply"),
    ("deep json query", post(b"/api/v1/query", deep(100_000), JSON), {400}, "nested too deeply"),
    ("deep json funnel", post(b"/api/v1/funnel", deep(100_000), JSON), {400}, "nested too deeply"),
    # --- huge numbers
    ("1e400", post(b"/api/event", with_raw(b"p", b'{"a":1e400}')), {400}, "not valid JSON"),
    ("2**2000 prop", post(b"/api/event", with_raw(b"p", b'{"a":' + BIG_INT + b"}")), {202}, None),
    ("10**5000 prop", post(b"/api/event", with_raw(b"p", b'{"a":1' + b"0" * 5000 + b"}")), {400}, "not valid JSON"),
    ("2**2000 name", post(b"/api/event", b'{"n":' + BIG_INT + b',"u":"https://example.com/"}'), {422}, "n: "),
    ("2**2000 revenue", post(b"/api/event", with_raw(b"$", b'{"amount":' + BIG_INT + b',"currency":"EUR"}')), {422},
     "amount is out of range"),
    ("2**2000 scroll depth", post(b"/api/event", event(n="engagement", sd=2**2000)), {202}, None),
    ("-0 everywhere", post(b"/api/event", with_raw(b"p", b'{"a":-0,"b":-0.0}')[:-1] + b',"e":-0}'), {202}, None),
    ("NaN token", post(b"/api/event", with_raw(b"p", b'{"a":NaN}')), {400}, "not valid JSON"),
    ("Infinity token", post(b"/api/event", with_raw(b"p", b'{"a":-Infinity}')), {400}, "not valid JSON"),
    ("2**2000 batch timestamp", post(b"/api/v1/batch", batch(with_raw(b"timestamp", BIG_INT))), {422},
     "timestamp"),
    ("2**2000 query limit", post(b"/api/v1/query", b'{"site_id":"example.com","metrics":["visitors"],'
                                 b'"date_range":"7d","pagination":{"limit":' + BIG_INT + b"}}", JSON), {400}, None),
    ("2**2000 webhook amount", post(b"/hooks/paid", b'{"amount":' + BIG_INT + b"}", BEARER), {422},
     "not a number in range"),
    ("2**2000 webhook time", post(b"/hooks/paid", b'{"amount":1,"ts":' + BIG_INT + b"}", BEARER), {422},
     "not a time in range"),
    # --- invalid UTF-8
    ("bad utf-8 event body", post(b"/api/event", GOOD[:-2] + b'\xff"}'), {400}, "not valid JSON"),
    ("bad utf-8 batch body", post(b"/api/v1/batch", batch(GOOD[:-2] + b'\xc3\x28"}')), {400}, "not valid JSON"),
    ("bad utf-8 webhook body", post(b"/hooks/signup", b'{"email":"\xff"}', BEARER), {400}, "not valid JSON"),
    ("bad utf-8 query body", post(b"/api/v1/query", b'{"site_id":"\xff"}', JSON), {400}, "UTF-8"),
    ("bad utf-8 funnel body", post(b"/api/v1/funnel", b'{"site_id":"\xfe"}', JSON), {400}, "UTF-8"),
    ("bad utf-8 pixel query", get(b"/p.gif?u=https://example.com/%ff&d=%fe"), GIF, None),  # ignored: invalid
    ("raw bad utf-8 query", get(b"/p.gif?u=\xff\xfe"), {200, 400}, None),
    ("bad utf-8 realtime query", get(b"/api/v1/realtime?site=%ff%fe"), {200, 400, 404}, None),
    ("bad utf-8 filtered query", get(b"/api/v1/filtered?site=%ff&date=%c3%28"), {400}, None),
    ("bad utf-8 header values", post(b"/api/event", GOOD, UA[:-2] + b" \xff\xfe\r\nReferer: \xc3\x28\r\n"),
     {202}, None),
    ("raw bad utf-8 path", get(b"/\xff\xfe"), {400, 404}, None),
    ("bad utf-8 dashboard path", get(b"/%ff%fe"), {404}, None),
    ("bad utf-8 webhook name", post(b"/hooks/%ff", GOOD), {404}, "no webhook"),
    # --- NUL bytes
    ("NUL in name", post(b"/api/event", event(n="page\x00view")), {422}, "NUL"),
    ("NUL in url", post(b"/api/event", event(u="https://example.com/a\x00b")), {202}, None),
    ("NUL in host", post(b"/api/event", event(u="https://exa\x00mple.com/")), {422}, "u: "),
    ("NUL in site", post(b"/api/event", event(d="exa\x00mple.com")), {422}, "d: "),
    ("NUL in prop key and value", post(b"/api/event", event(p={"k\x00": "v\x00"})), {202}, None),
    ("NUL in referrer", post(b"/api/event", event(r="https://r.example/\x00")), {202}, None),
    ("NUL in a header", post(b"/api/event", GOOD, b"User-Agent: a\x00b\r\n"), {400}, None),
    ("NUL in pixel query", get(b"/p.gif?n=%00&u=https://example.com/%00&d=%00"), GIF, None),
    ("NUL in path", get(b"/api/v1/realtime%00?site=example.com"), {404}, None),
    ("NUL in dashboard site", get(b"/exa%00mple.com"), {404}, None),
    ("NUL in query site", post(b"/api/v1/query", b'{"site_id":"a\\u0000b","metrics":["visitors"],'
                               b'"date_range":"7d"}', JSON), {200, 400, 404}, None),
    ("NUL in funnel step", post(b"/api/v1/funnel", b'{"site_id":"example.com","date_range":"7d",'
                                b'"steps":["\\u0000","a"]}', JSON), {400}, None),
    ("NUL in webhook body", post(b"/hooks/signup", b'{"email":"a\\u0000b","page":"https://example.com/"}',
                                 BEARER), {202, 422}, None),
    # --- many and large props
    ("10,000 props event", post(b"/api/event", event(p={f"k{i}": "v" for i in range(10_000)})), {413},
     "larger than"),
    ("10,000 props batch", post(b"/api/v1/batch", batch(event(p={f"k{i}": "v" for i in range(10_000)}))), {422},
     "at most 30 properties"),
    ("1 MB prop value event", post(b"/api/event", event(p={"k": "v" * (1 << 20)})), {413}, "larger than"),
    ("900 KB prop value batch", post(b"/api/v1/batch", batch(event(p={"k": "v" * 900_000}))), {422},
     "at most 2000 bytes"),
    # --- percent-encoded garbage
    ("percent garbage pixel", get(b"/p.gif?u=%%%%zz%&d=%G0&p=%7B%"), GIF, None),
    ("percent garbage dashboard", get(b"/%25%zz%"), {404}, None),
    ("percent garbage realtime", get(b"/api/v1/realtime?site=%zz%"), {200, 400, 404}, None),
    ("percent garbage js", get(b"/js/strana.js?%zz%ff"), {200}, None),
    # --- the request line
    ("100 KB path", get(b"/" + b"a" * 100_000), {414}, None),
    ("8 KB path", get(b"/" + b"a" * 8000), {404}, None),
    ("8 KB webhook name", post(b"/hooks/" + b"a" * 8000, GOOD), {404}, "no webhook"),
    ("method with control bytes", b"FOO\x01BAR / HTTP/1.1\r\nHost: t\r\n\r\n", {400}, None),
    ("10 KB method on ingest", b"X" * 10_000 + b" /api/event HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
     {400, 405}, None),
    ("unknown method on the stats API", b"BREW /api/v1/query HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
     {400, 405}, None),
    ("PATCH on batch", b"PATCH /api/v1/batch HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", {405}, "use POST"),
    ("not HTTP at all", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64), {400, None}, None),
    # --- Content-Length and chunking
    ("body longer than Content-Length", b"POST /api/event HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
     b"Content-Length: 10\r\n\r\n" + GOOD, {400}, "not valid JSON"),
    ("body shorter than Content-Length", b"POST /api/event HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
     b"Content-Length: 100\r\n\r\n" + GOOD, {408}, "did not arrive"),
    ("Content-Length not a number", b"POST /api/event HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n" + GOOD,
     {400}, None),
    ("negative Content-Length", b"POST /api/event HTTP/1.1\r\nHost: t\r\nContent-Length: -5\r\n\r\n" + GOOD, {400},
     None),
    ("chunked event over the limit", chunked(b"/api/event", [b"a" * 65536] * 3), {413}, "larger than"),
    ("chunked batch over the limit", chunked(b"/api/v1/batch", [b"a" * (1 << 20)] * 3), {413, None}, None),
    ("chunked webhook over the limit", chunked(b"/hooks/signup", [b"a" * (1 << 20)] * 3, BEARER), {413, None},
     None),
    ("bad chunk size", b"POST /api/event HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n",
     {400, None}, None),
    ("gzip bomb batch", post(b"/api/v1/batch", gzip.compress(b" " * (100 << 20)), b"Content-Encoding: gzip\r\n"),
     {413}, "decompressed body is larger"),
    ("gzip of garbage batch", post(b"/api/v1/batch", gzip.compress(b"\xff" * 1000), b"Content-Encoding: gzip\r\n"),
     {400}, "not valid JSON"),
    ("truncated gzip batch", post(b"/api/v1/batch", gzip.compress(batch(GOOD))[:20], b"Content-Encoding: gzip\r\n"),
     {400}, None),
    # --- JSON oddities
    ("duplicate keys", post(b"/api/event", b'{"n":"pageview","n":"x","u":"https://example.com/a",'
                            b'"u":"https://example.com/b"}'), {202}, None),
    ("duplicate keys in a batch", post(b"/api/v1/batch", b'{"events":[],"events":[' + GOOD + b"]}"), {202},
     None),
    # --- every other endpoint
    ("unknown webhook", post(b"/hooks/nope", GOOD), {404}, "no webhook"),
    ("webhook wrong secret", post(b"/hooks/signup", GOOD, b"Authorization: Bearer nope\r\n"), {401}, "wrong"),
    ("webhook GET", get(b"/hooks/signup"), {405}, None),
    ("query not an object", post(b"/api/v1/query", b"[1]", JSON), {400}, None),
    ("funnel of garbage", post(b"/api/v1/funnel", os.urandom(256), JSON), {400}, None),
    ("realtime with no site", get(b"/api/v1/realtime"), {400}, None),
    ("filtered garbage period", get(b"/api/v1/filtered?site=example.com&date_range=%5B%00,%ff%zz"), {400}, None),
    ("dashboard garbage period", get(b"/example.com?period=%ff%00&date=99999-99-99"), {200, 400, 404}, None),
    ("js with a body", post(b"/js/strana.js", deep(1000)), {200, 405}, None),
]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    data = tmp_path_factory.mktemp("hostile")
    config = data / "strana.toml"
    config.write_text(CONFIG)
    server = StranaServer(data / "data", env={"STRANA_SERVER__READ_TIMEOUT_SECONDS": str(READ_TIMEOUT)},
                          config=config).start()
    with server.client() as c:  # a first event, so the site (and its dashboard) exists
        assert c.post("/api/event", content=GOOD, headers={"user-agent": UA[12:-2].decode()}).status_code == 202
    yield server
    server.stop()


ACCEPTED: list[str] = []  # the rows answered 202 and not ignored: each is one event, and each must be stored


def exchange(server: StranaServer, raw: bytes, timeout: float = 15) -> tuple[int | None, bytes, bytes]:
    """Send `raw`, read the answer until the server closes: (status or None if it answered nothing, body, head)."""
    answer = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as s:
        try:
            s.sendall(raw)
        except OSError:  # the server answered (413, 431) and closed before taking it all: read what it said
            pass
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except OSError:
            pass
    if not answer.startswith(b"HTTP/1.1 "):
        return None, answer, b""
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body, head.lower()


def alive(server: StranaServer) -> bool:
    return httpx.get(server.url + "/healthz", timeout=10).status_code == 200


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_hostile_request_gets_a_clear_4xx_and_the_server_carries_on(hostile, case):
    _, raw, allowed, text = case
    status, body, head = exchange(hostile, raw)
    if status == 202 and b"x-strana-ignored" not in head:
        ACCEPTED.append(case[0])
    assert status in allowed, f"{status}: {body[:300]!r}"
    assert status is None or status < 500
    if text is not None:
        assert text.encode() in body, body[:300]
    assert alive(hostile)


def test_hostile_table_left_no_traceback_and_stored_the_fair_rows(hostile):
    """The rows that were fair input (NUL in a URL, 2**2000 as a prop, -0, duplicate keys...) are stored."""
    expected = 1 + len(ACCEPTED)  # the fixture's first event, then one per accepted row
    deadline = time.monotonic() + 30
    with hostile.client() as c:
        while True:
            r = c.get("/api/v1/stats/aggregate", params={"site": "example.com", "period": "day"})
            events = r.json()["results"]["events"]
            if events >= expected or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert events >= expected, (events, ACCEPTED)
    log = hostile.log()
    assert "Traceback" not in log and "unhandled error" not in log, log[-3000:]


def _trickle(server: StranaServer, at_once: bytes, slowly: bytes, stop: threading.Event, ends: list) -> None:
    """Send `at_once`, then `slowly` a byte every 0.1 s; record whether the server closed the connection."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(at_once)
        s.settimeout(0.1)
        for i in range(len(slowly)):
            if stop.is_set():
                ends.append(("still open", time.monotonic() - started))
                return
            try:
                s.send(slowly[i:i + 1])
                if s.recv(4096) == b"":
                    break
            except TimeoutError:
                continue
            except OSError:
                break
    ends.append(("closed", time.monotonic() - started))


def test_slow_loris_clients_are_cut_off_and_others_are_served_meanwhile(hostile):
    """40 connections trickle in (half in the headers, half in the body) for longer than the read timeout:
    others are served meanwhile, and the server closes every slow one (it holds no request for ever)."""
    head = b"POST /api/event HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n" % len(GOOD)
    slow_headers = (b"", head + b"X-Slow: " + b"s" * 400 + b"\r\n\r\n" + GOOD)
    slow_body = (head + b"\r\n", GOOD * 10)
    stop, ends = threading.Event(), []
    clients = [threading.Thread(target=_trickle, args=(hostile, *(slow_body if i % 2 else slow_headers), stop, ends),
                                daemon=True) for i in range(40)]
    for t in clients:
        t.start()
    served = 0
    with httpx.Client(base_url=hostile.url, timeout=10) as c:
        deadline = time.monotonic() + READ_TIMEOUT + 1
        while time.monotonic() < deadline:  # others are served while the slow ones hang on
            assert c.post("/api/event", content=GOOD).status_code == 202
            assert c.get("/api/v1/realtime", params={"site": "example.com"}).status_code == 200
            served += 1
    deadline = time.monotonic() + READ_TIMEOUT * 4
    while len(ends) < len(clients) and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    for t in clients:
        t.join(10)
    assert served > 0
    assert len(ends) == len(clients) and all(how == "closed" for how, _ in ends), ends
    assert alive(hostile)


def rss_kb(server: StranaServer) -> int:
    """VmRSS of the `strana serve` process, which holds the server, the app and the store."""
    status = Path(f"/proc/{server.proc.pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


FLOOD = [
    ("/api/event", deep(60_000), {}),
    ("/api/event", event(p={f"k{i}": "v" for i in range(3000)}), {}),
    ("/api/event", with_raw(b"$", b'{"amount":' + BIG_INT + b',"currency":"EUR"}'), {}),
    ("/api/event", GOOD[:-2] + b'\xff"}', {}),
    ("/api/event", event(n="a\x00"), {}),
    ("/api/v1/batch", batch(event(p={f"k{i}": "v" for i in range(10_000)})), {}),
    ("/api/v1/batch", gzip.compress(b" " * (8 << 20)), {"content-encoding": "gzip"}),
    ("/api/v1/batch", b'{"events":' + deep(100_000), {}),
    ("/api/v1/query", deep(100_000), {"content-type": "application/json"}),
    ("/hooks/signup", deep(100_000), {"authorization": f"Bearer {HOOK_SECRET}"}),
]


def _flood(server: StranaServer, n: int) -> None:
    with httpx.Client(base_url=server.url, timeout=30, headers={"x-junk": "j" * 8000}) as c:
        for i in range(n):
            path, body, headers = FLOOD[i % len(FLOOD)]
            assert c.post(path, content=body, headers=headers).status_code < 500


def test_a_flood_of_hostile_requests_does_not_grow_memory(hostile):
    _flood(hostile, 500)  # warm-up: caches, arenas, the first allocations of each path
    before = rss_kb(hostile)
    _flood(hostile, 3000)
    growth_mb = (rss_kb(hostile) - before) / 1024
    print(f"worker RSS growth after 3000 hostile requests: {growth_mb:.1f} MB")
    assert growth_mb < 50
    assert alive(hostile)
