"""Logins, setup link, CSRF, throttling, sessions, TOTP, keys, links and cross-site reads, over real HTTP."""

from __future__ import annotations

import time

import duckdb
import httpx
import pyotp
from auth_support import BROWSER, PASSWORD, csrf, logged_in, login, seed, setup_link

A, B = "a.example", "b.example"
Q = {"metrics": ["visitors"], "date_range": "7d"}


def test_zero_config_is_open_on_loopback_until_an_owner_exists(make_server):
    server = make_server()
    with server.client() as c:
        assert c.get("/api/v1/stats/aggregate", params={"site": A}).status_code == 200
        # a proxied request is not "local": it needs credentials even before there is an owner
        assert c.get("/api/v1/stats/aggregate", params={"site": A},
                     headers={"x-forwarded-for": "203.0.113.7"}).status_code == 401
        token = setup_link(server.log())
        page = c.get(f"/setup/{token}")
        assert page.status_code == 200 and "Create owner" in page.text
        assert c.post(f"/setup/{token}", data={"email": "o@x.io", "password": PASSWORD}).status_code == 403  # no CSRF
        r = c.post(f"/setup/{token}", data={"email": "o@x.io", "password": PASSWORD, "_csrf": csrf(c)})
        assert r.status_code == 303 and "strana_session" in r.cookies
        assert "HttpOnly" in r.headers["set-cookie"] and "samesite=lax" in r.headers["set-cookie"].lower()
        assert c.get("/api/v1/me").json()["owner"] is True
    # the link works once; now an owner exists and anonymous reads are refused
    with server.client() as anon:
        assert anon.get(f"/setup/{token}").status_code == 404
        assert anon.get("/api/v1/stats/aggregate", params={"site": A}).status_code == 401
        assert anon.post("/api/v1/query", json={"site_id": A, **Q}).status_code == 401
        r = anon.get("/some/dashboard/page", headers={"accept": "text/html"})
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")


def test_csrf_brute_force_logout_everywhere_and_totp(make_server, tmp_path):
    seed(tmp_path / "d", sites={A: {}}, users={"o@x.io": {"owner": True}, "v@x.io": {"roles": {A: "viewer"}}})
    server = make_server(data_dir=tmp_path / "d", env={"STRANA_AUTH__LOGIN_ATTEMPTS": "5"})
    # a form without its CSRF token fails, even with the right password
    with server.client() as c:
        csrf(c)
        r = c.post("/login", data={"email": "o@x.io", "password": PASSWORD})
        assert r.status_code == 403 and "strana_session" not in r.cookies
    # a cookie-authenticated change without X-CSRF-Token fails; with it, it works
    owner = logged_in(server, "o@x.io")
    token = owner.headers.pop("x-csrf-token")
    assert owner.patch(f"/api/v1/sites/{A}", json={"timezone": "Europe/Paris"}).status_code == 403
    assert owner.patch(f"/api/v1/sites/{A}", json={"timezone": "Europe/Paris"},
                       headers={"x-csrf-token": token}).status_code == 200
    assert owner.patch(f"/api/v1/sites/{A}", json={"timezone": "Europe/Paris"},
                       headers={"x-csrf-token": "x" * 43}).status_code == 403
    owner.headers["x-csrf-token"] = token
    # brute force: after 5 failures the account is locked for a while, even for the right password
    with server.client() as attacker:
        for _ in range(5):
            assert login(attacker, "v@x.io", "wrong password!").status_code == 401
        r = login(attacker, "v@x.io")
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    with server.client() as other:  # the same address (loopback) is throttled too
        assert login(other, "o@x.io", "wrong again!!").status_code == 429
    # log out everywhere: an old session cookie stops working
    old = owner.cookies["strana_session"]
    assert owner.post("/api/v1/me/logout-everywhere").status_code == 200
    with server.client() as c:
        c.cookies.set("strana_session", old)
        assert c.get("/api/v1/me").status_code == 401
    # a tampered cookie is refused
    with server.client() as c:
        c.cookies.set("strana_session", old[:-2] + ("AA" if not old.endswith("AA") else "BB"))
        assert c.get("/api/v1/me").status_code == 401


def test_totp_second_factor(make_server, tmp_path):
    seed(tmp_path / "d", sites={A: {}}, users={"o@x.io": {"owner": True}})
    server = make_server(data_dir=tmp_path / "d")
    owner = logged_in(server, "o@x.io")
    secret = owner.post("/api/v1/me/totp").json()["secret"]
    assert owner.post("/api/v1/me/totp/confirm", json={"secret": secret, "code": "000000"}).status_code == 422
    assert owner.post("/api/v1/me/totp/confirm", json={"secret": secret,
                                                       "code": pyotp.TOTP(secret).now()}).status_code == 200
    with server.client() as c:
        assert login(c, "o@x.io").status_code == 401  # password alone is not enough now
        assert login(c, "o@x.io", code="123456").status_code == 401
        assert login(c, "o@x.io", code=pyotp.TOTP(secret).now()).status_code == 303


def test_keys_expired_revoked_and_scoped(make_server, tmp_path):
    tokens = seed(tmp_path / "d", sites={A: {}, B: {}}, users={"o@x.io": {"owner": True}},
                  keys=[("read", A, "read"), ("expired", A, "read"), ("write", A, "write")])
    con = duckdb.connect(str(tmp_path / "d" / "strana.duckdb"))
    con.execute("UPDATE api_keys SET expires_at = now() - INTERVAL 1 DAY WHERE name = 'expired'")
    con.close()
    server = make_server(data_dir=tmp_path / "d")

    def get(token, site=A):
        return httpx.get(server.url + "/api/v1/stats/aggregate", params={"site": site},
                         headers={"authorization": f"Bearer {token}"})

    assert get(tokens["read"]).status_code == 200
    assert get(tokens["expired"]).status_code == 401
    assert get("strana_not-a-key").status_code == 401
    assert get(tokens["write"]).status_code == 403
    assert get(tokens["read"], B).status_code == 403
    owner = logged_in(server, "o@x.io")
    made = owner.post(f"/api/v1/sites/{A}/keys", json={"scope": "read", "name": "ci"}).json()
    assert get(made["key"]).status_code == 200
    listed = owner.get(f"/api/v1/sites/{A}/keys").json()
    assert all("key" not in k and "token_hash" not in k for k in listed)  # shown once, never again
    assert next(k for k in listed if k["id"] == made["id"])["last_used_at"] is not None  # flushed lazily on list
    assert owner.delete(f"/api/v1/sites/{A}/keys/{made['id']}").status_code == 200
    assert get(made["key"]).status_code == 401
    assert owner.delete(f"/api/v1/sites/{A}/keys/{made['id']}").status_code == 404


def test_a_viewer_cannot_read_another_site_through_any_parameter(make_server, tmp_path):
    tokens = seed(tmp_path / "d", sites={A: {}, B: {}}, users={"v@x.io": {"roles": {A: "viewer"}}},
                  keys=[("read", A, "read")])
    server = make_server(data_dir=tmp_path / "d")
    viewer = logged_in(server, "v@x.io")
    key = httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {tokens['read']}"})
    for c in (viewer, key):
        assert c.post("/api/v1/query", json={"site_id": A, **Q}).status_code == 200
        for body in ({"site_id": B, **Q}, {"site_id": " B.EXAMPLE ", **Q}, {"site_id": A, "site": B, **Q},
                     {"site_id": B, **Q, "filters": [["is", "event:page", ["/"]]]}):
            assert c.post("/api/v1/query", json=body).status_code == 403, body
        raw = b'{"site_id": "a.example", "site_id": "b.example", "metrics": ["visitors"], "date_range": "7d"}'
        assert c.post("/api/v1/query", content=raw, headers={"content-type": "application/json"}).status_code == 403
        assert c.post("/api/v1/query?site_id=b.example", json={"site_id": A, **Q}).status_code == 403
        for url in (f"/api/v1/stats/aggregate?site={A}&site={B}", f"/api/v1/stats/aggregate?site={B}&site={A}",
                    f"/api/v1/realtime?site={A}&site_id={B}", f"/api/v1/filtered?site_id={B}",
                    f"/api/v1/stats/realtime/visitors?site_id={B}", f"/api/v1/anything/{B}/x?site={A}"):
            assert c.get(url).status_code == 403, url
        assert c.post("/api/v1/funnel", json={"site_id": B, "date_range": "7d",
                                              "steps": [{"event": "a"}, {"event": "b"}]}).status_code == 403


def test_shared_and_embed_links(make_server, tmp_path):
    tokens = seed(tmp_path / "d", sites={A: {}, B: {}}, users={"o@x.io": {"owner": True}},
                  links=[("open", A, {}), ("locked", A, {"password": "link password 1"}),
                         ("embed", A, {"embed": True})])
    server = make_server(data_dir=tmp_path / "d")
    url = server.url + "/api/v1/stats/aggregate"
    assert httpx.get(url, params={"site": A, "auth": tokens["open"]}).status_code == 200
    assert httpx.get(url, params={"site": B, "auth": tokens["open"]}).status_code == 403
    assert httpx.get(url, params={"site": A, "auth": "nope"}).status_code == 401
    assert httpx.get(url, params={"site": A, "auth": tokens["locked"]}).status_code == 401  # needs its password
    with server.client() as c:
        r = c.post("/api/v1/query", json={"site_id": A, **Q}, headers={"x-strana-link": tokens["open"]})
        assert r.status_code == 200
        assert c.patch(f"/api/v1/sites/{A}", json={"timezone": "UTC"},
                       headers={"x-strana-link": tokens["open"]}).status_code == 403  # read-only
        r = c.get(f"/share/{tokens['open']}")
        assert r.status_code == 303 and r.headers["location"] == f"/{A}"
        assert c.get(url, params={"site": A}).status_code == 200  # by the link cookie
    with server.client() as c:
        assert c.get(f"/share/{tokens['locked']}").status_code == 200
        assert c.post(f"/share/{tokens['locked']}", data={"password": "wrong", "_csrf": csrf(c)}).status_code == 401
        r = c.post(f"/share/{tokens['locked']}", data={"password": "link password 1", "_csrf": csrf(c)})
        assert r.status_code == 303
        assert c.get(url, params={"site": A}).status_code == 200
    # frame-ancestors: only the embed may be framed
    normal = httpx.get(url, params={"site": A, "auth": tokens["open"]})
    assert "frame-ancestors 'none'" in normal.headers["content-security-policy"]
    assert normal.headers["x-frame-options"] == "DENY"
    embed = httpx.get(url, params={"site": A, "auth": tokens["embed"]})
    assert "frame-ancestors *" in embed.headers["content-security-policy"] and "x-frame-options" not in embed.headers
    r = httpx.get(server.url + f"/embed/{tokens['embed']}")
    assert r.status_code == 303 and f"auth={tokens['embed']}" in r.headers["location"]
    # revoked links stop working
    owner = logged_in(server, "o@x.io")
    link_id = next(x["id"] for x in owner.get(f"/api/v1/sites/{A}/links").json() if x["name"] == "open")
    assert owner.delete(f"/api/v1/sites/{A}/links/{link_id}").status_code == 200
    assert httpx.get(url, params={"site": A, "auth": tokens["open"]}).status_code == 401
    assert httpx.get(server.url + f"/share/{tokens['open']}").status_code == 404


def test_security_headers_on_pages(server):
    r = httpx.get(server.url + "/login")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["referrer-policy"] == "same-origin"
    assert "<script" not in r.text and "style=" not in r.text


def test_batch_requires_a_write_key_when_the_site_says_so(make_server, tmp_path):
    tokens = seed(tmp_path / "d", sites={A: {"require_key": True}, B: {}},
                  keys=[("w", A, "write"), ("r", A, "read"), ("wb", B, "write")])
    server = make_server(data_dir=tmp_path / "d")
    batch = {"events": [{"n": "pageview", "u": f"https://{A}/", "d": A, "user_agent": BROWSER["user-agent"]}]}

    def post(token=None, body=batch):
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.post(server.url + "/api/v1/batch", json=body, headers=headers)

    assert post().status_code == 401
    assert post(tokens["r"]).status_code == 403
    assert post(tokens["wb"]).status_code == 403
    assert post("strana_bogus").status_code == 401
    assert post(tokens["w"]).status_code == 202
    open_batch = {"events": [{"n": "pageview", "u": f"https://{B}/", "d": B}]}
    assert post(body=open_batch).status_code == 202  # B does not require a key
    # /api/event stays open, as Plausible's is
    assert httpx.post(server.url + "/api/event", json={"n": "pageview", "u": f"https://{A}/", "d": A},
                      headers=BROWSER).status_code == 202


def test_ingest_rate_limits(make_server):
    server = make_server(env={"STRANA_INGEST__RATE_LIMIT_PER_IP": "5", "STRANA_INGEST__RATE_LIMIT_BURST": "1"})
    with server.client() as c:
        codes = [c.post("/api/event", json={"n": "pageview", "u": "https://a.example/", "d": A},
                        headers=BROWSER).status_code for _ in range(15)]
        assert 202 in codes and 429 in codes
        r = c.post("/api/event", json={"n": "pageview", "u": "https://a.example/", "d": A}, headers=BROWSER)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        time.sleep(1.2)
        assert c.post("/api/event", json={"n": "pageview", "u": "https://a.example/", "d": A},
                      headers=BROWSER).status_code == 202
    site = make_server(env={"STRANA_INGEST__RATE_LIMIT_PER_SITE": "3", "STRANA_INGEST__RATE_LIMIT_BURST": "1"})
    with site.client() as c:
        codes = [c.post("/api/event", json={"n": "pageview", "u": "https://a.example/", "d": A},
                        headers=BROWSER).status_code for _ in range(10)]
        assert 429 in codes
        other = c.post("/api/event", json={"n": "pageview", "u": "https://b.example/", "d": B}, headers=BROWSER)
        assert other.status_code == 202  # another site has its own bucket
        r = c.get("/p.gif", params={"d": A, "u": "https://a.example/"}, headers=BROWSER)
        assert r.status_code == 429 and r.content.startswith(b"GIF") and "retry-after" in r.headers
