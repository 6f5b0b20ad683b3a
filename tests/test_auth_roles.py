"""Each role can do exactly what it should and nothing more: route × principal × expected status, over real HTTP.

Two sites: `a.example` (where admin, viewer, the keys and the link belong)
and `b.example` (where none of them do). The owner sees both.
"""

from __future__ import annotations

import httpx
import pytest
from auth_support import logged_in, seed
from conftest import StranaServer

A, B = "a.example", "b.example"
PRINCIPALS = ("owner", "admin", "viewer", "read_key", "write_key", "link", "anonymous")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    data = tmp_path_factory.mktemp("roles")
    tokens = seed(data, sites={A: {}, B: {}, "c.example": {}},
                  users={"owner@x.io": {"owner": True}, "admin@x.io": {"roles": {A: "admin"}},
                         "viewer@x.io": {"roles": {A: "viewer"}}},
                  keys=[("read_key", A, "read"), ("write_key", A, "write")], links=[("link", A, {})])
    server = StranaServer(data).start()
    clients = {"owner": logged_in(server, "owner@x.io"), "admin": logged_in(server, "admin@x.io"),
               "viewer": logged_in(server, "viewer@x.io"), "anonymous": server.client()}
    for name in ("read_key", "write_key"):
        clients[name] = httpx.Client(base_url=server.url, timeout=30,
                                     headers={"authorization": f"Bearer {tokens[name]}"})
    clients["link"] = httpx.Client(base_url=server.url, timeout=30, headers={"x-strana-link": tokens["link"]})
    yield server, clients
    for c in clients.values():
        c.close()
    server.stop()


QUERY = {"metrics": ["visitors"], "date_range": "7d"}

# (method, path, json body, {principal: status}); principals not listed expect `default`.
TABLE = [
    # ---- stats API: read on the named site ----
    ("GET", f"/api/v1/stats/aggregate?site={A}", None,
     dict(owner=200, admin=200, viewer=200, read_key=200, write_key=403, link=200, anonymous=401)),
    ("GET", f"/api/v1/stats/aggregate?site={B}", None,
     dict(owner=200, admin=403, viewer=403, read_key=403, write_key=403, link=403, anonymous=401)),
    ("POST", "/api/v1/query", {"site_id": A, **QUERY},
     dict(owner=200, admin=200, viewer=200, read_key=200, write_key=403, link=200, anonymous=401)),
    ("POST", "/api/v1/query", {"site_id": B, **QUERY},
     dict(owner=200, admin=403, viewer=403, read_key=403, write_key=403, link=403, anonymous=401)),
    ("POST", "/api/v1/funnel", {"site_id": B, "date_range": "7d", "steps": [{"event": "a"}, {"event": "b"}]},
     dict(owner=200, admin=403, viewer=403, read_key=403, write_key=403, link=403, anonymous=401)),
    ("GET", f"/api/v1/realtime?site={A}", None,
     dict(owner=200, admin=200, viewer=200, read_key=200, write_key=403, link=200, anonymous=401)),
    ("GET", f"/api/v1/realtime?site={B}", None,
     dict(owner=200, admin=403, viewer=403, read_key=403, write_key=403, link=403, anonymous=401)),
    ("GET", f"/api/v1/stats/realtime/visitors?site_id={B}", None,
     dict(owner=200, admin=403, viewer=403, read_key=403, write_key=403, link=403, anonymous=401)),
    # ---- sites: viewers read, admins change, the owner adds; keys and links never manage ----
    ("GET", f"/api/v1/sites/{A}", None,
     dict(owner=200, admin=200, viewer=200, read_key=403, write_key=403, link=403, anonymous=401)),
    ("GET", f"/api/v1/sites/{B}", None,
     dict(owner=200, admin=403, viewer=403, read_key=403, write_key=403, link=403, anonymous=401)),
    ("PATCH", f"/api/v1/sites/{A}", {"timezone": "Europe/Berlin"},
     dict(owner=200, admin=200, viewer=403, read_key=403, write_key=403, link=403, anonymous=401)),
    ("PATCH", f"/api/v1/sites/{B}", {"timezone": "Europe/Berlin"},
     dict(owner=200, admin=403, viewer=403, read_key=403, write_key=403, link=403, anonymous=401)),
    ("POST", "/api/v1/sites", {"domain": "new-{who}.example"},
     dict(owner=201, admin=403, viewer=403, read_key=403, write_key=403, link=403, anonymous=401)),
    ("GET", f"/api/v1/sites/{A}/keys", None,
     dict(owner=200, admin=200, viewer=403, read_key=403, write_key=403, link=403, anonymous=401)),
    ("POST", f"/api/v1/sites/{A}/keys", {"scope": "read"},
     dict(owner=201, admin=201, viewer=403, read_key=403, write_key=403, link=403, anonymous=401)),
    ("POST", f"/api/v1/sites/{B}/keys", {"scope": "read"},
     dict(owner=201, admin=403, viewer=403, read_key=403, write_key=403, link=403, anonymous=401)),
    ("POST", f"/api/v1/sites/{A}/links", {"name": "x"},
     dict(owner=201, admin=201, viewer=403, read_key=403, write_key=403, link=403, anonymous=401)),
    ("GET", f"/api/v1/sites/{A}/members", None,
     dict(owner=200, admin=200, viewer=403, read_key=403, write_key=403, link=403, anonymous=401)),
    ("PUT", f"/api/v1/sites/{A}/members", {"email": "viewer@x.io", "role": "viewer"},
     dict(owner=200, admin=403, viewer=403, read_key=403, write_key=403, link=403, anonymous=401)),
    # ---- people: only the owner ----
    ("GET", "/api/v1/users", None,
     dict(owner=200, admin=403, viewer=403, read_key=403, write_key=403, link=403, anonymous=401)),
    ("POST", "/api/v1/users", {"email": "new-{who}@x.io", "password": "long enough password"},
     dict(owner=201, admin=403, viewer=403, read_key=403, write_key=403, link=403, anonymous=401)),
    ("GET", "/api/v1/me", None,
     dict(owner=200, admin=200, viewer=200, read_key=403, write_key=403, link=403, anonymous=401)),
]
CASES = [pytest.param(m, p, b, who, expect[who], id=f"{m} {p.split('?')[0]} {who}")
         for m, p, b, expect in TABLE for who in PRINCIPALS]


@pytest.mark.parametrize("method,path,body,who,status", CASES)
def test_route_role_status(env, method, path, body, who, status):
    _, clients = env
    if body is not None:
        body = {k: v.replace("{who}", who) if isinstance(v, str) else v for k, v in body.items()}
    r = clients[who].request(method, path, json=body)
    assert r.status_code == status, (who, method, path, r.text)


def test_only_the_owner_removes_a_site(env):
    _, clients = env
    for who in ("admin", "viewer", "read_key", "link"):
        assert clients[who].delete("/api/v1/sites/c.example").status_code in (401, 403), who
    assert clients["owner"].delete("/api/v1/sites/c.example").status_code == 200
    assert clients["owner"].get("/api/v1/sites/c.example").status_code == 404


def test_site_list_shows_only_your_sites(env):
    _, clients = env
    assert {s["domain"] for s in clients["viewer"].get("/api/v1/sites").json()} == {A}
    assert {A, B} <= {s["domain"] for s in clients["owner"].get("/api/v1/sites").json()}
