"""Schemathesis against the app's own OpenAPI schema, as nobody and as the owner: no answer may be a 5xx.

A small, fixed example budget per operation keeps the whole run under a
minute; derandomized so a failure repeats.
"""

from __future__ import annotations

import time

import pytest
import schemathesis
from auth_support import logged_in, seed
from conftest import StranaServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = 12  # rounds; each draws one case for every operation
BUDGET_SECONDS = 55


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    data = tmp_path_factory.mktemp("schema")
    seed(data, sites={"a.example": {}}, users={"o@x.io": {"owner": True}})
    server = StranaServer(data).start()
    yield server
    server.stop()


def _fuzz(server, headers: dict, cookies: dict) -> list[str]:
    schema = schemathesis.openapi.from_url(server.url + "/schema/openapi.json")
    failures: list[str] = []
    started = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def check(data):
        for operation in operations:
            case = data.draw(operation.as_strategy())
            response = case.call(base_url=server.url, headers=headers, cookies=cookies, timeout=10)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.query} {case.body!r} -> "
                                f"{response.status_code} {response.text[:200]}")

    check()
    assert time.monotonic() - started < BUDGET_SECONDS
    return failures


def test_no_5xx_unauthenticated(live):
    assert _fuzz(live, {}, {}) == []


def test_no_5xx_as_the_owner(live):
    client = logged_in(live, "o@x.io")
    cookies = {k: v for k, v in client.cookies.items()}
    failures = _fuzz(live, {"x-csrf-token": client.cookies["strana_csrf"]}, cookies)
    assert failures == [], "\n".join(failures) + "\n" + live.log()[-3000:]
