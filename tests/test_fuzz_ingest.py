"""Fuzz the ingest routes over the wire: whatever arrives, the answer is never a 5xx and the server lives on."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

KEYS = ["n", "name", "u", "url", "d", "domain", "r", "referrer", "p", "props", "m", "meta", "$", "revenue", "h",
        "hashMode", "i", "interactive", "sd", "e", "event_id", "timestamp", "ip", "user_agent", "visitor"]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40),
    st.sampled_from(["https://example.com/a", "pageview", "example.com", "2026-11-23T10:00:00Z", "EUR", "1",
                     "\x00", "javascript:alert(1)", "http://[::1", "https://exa mple.com/", "9.5", "::1"]),
)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)
events = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=10)
VALID_UA = {"user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"}
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    from conftest import StranaServer

    server = StranaServer(tmp_path_factory.mktemp("fuzz")).start()
    with httpx.Client(base_url=server.url, timeout=30, headers=VALID_UA) as client:
        server.http = client
        yield server
    server.stop()


@FUZZ
@given(body=events)
def test_event_never_5xx(fuzz_server, body):
    r = fuzz_server.http.post("/api/event", content=json.dumps(body))
    assert r.status_code < 500, (body, r.text)


@FUZZ
@given(raw=st.binary(max_size=300))
def test_event_raw_bytes_never_5xx(fuzz_server, raw):
    r = fuzz_server.http.post("/api/event", content=raw)
    assert r.status_code in (202, 400, 413, 415, 422), (raw, r.text)


@FUZZ
@given(batch=st.one_of(st.lists(events, max_size=5).map(lambda e: {"events": e}), json_values))
def test_batch_never_5xx(fuzz_server, batch):
    r = fuzz_server.http.post("/api/v1/batch", content=json.dumps(batch))
    assert r.status_code < 500, (batch, r.text)


@FUZZ
@given(params=st.dictionaries(st.sampled_from(KEYS), st.text(max_size=50), max_size=6))
def test_pixel_always_gif(fuzz_server, params):
    r = fuzz_server.http.get("/p.gif", params=params)
    assert r.status_code == 200 and r.content.startswith(b"GIF89a")


def test_still_healthy_after_fuzzing(fuzz_server):
    assert fuzz_server.http.get("/healthz").status_code == 200
    r = fuzz_server.http.post("/api/event", json={"n": "pageview", "u": "https://example.com/ok"})
    assert r.status_code == 202
    assert "Traceback" not in fuzz_server.log()
