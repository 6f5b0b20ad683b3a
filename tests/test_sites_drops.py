"""Sites end to end: one test per site drop reason (counted in `drops`), open vs closed mode, file + table, CLI."""

from __future__ import annotations

import subprocess
import time

import httpx
import pytest
from auth_support import BROWSER, seed
from conftest import ROOT, STRANA

from collector.site_registry import SiteView, glob_regex

SITE = "shop.example"


def _drops(server) -> dict[str, int]:
    server.stop()
    con = server.db()
    rows = con.execute("SELECT reason, sum(n)::INT FROM drops WHERE site = ? GROUP BY reason", [SITE]).fetchall()
    con.close()
    return dict(rows)


def _send(server, url: str, headers: dict | None = None) -> httpx.Response:
    return httpx.post(server.url + "/api/event", json={"n": "pageview", "u": url, "d": SITE},
                      headers={**BROWSER, **(headers or {})})


@pytest.mark.parametrize("config,url,reason", [
    ({"hostnames": [SITE, "*.shop.example"]}, "https://copycat.example/", "foreign_host"),
    ({"excluded_paths": ["/admin/**", "/preview/*"]}, f"https://{SITE}/admin/users/7", "excluded_path"),
    ({"excluded_ips": ["127.0.0.0/8"]}, f"https://{SITE}/", "excluded_ip"),
])
def test_site_drop_reason_end_to_end(make_server, tmp_path, config, url, reason):
    seed(tmp_path / "d", sites={SITE: config})
    server = make_server(data_dir=tmp_path / "d")
    r = _send(server, url)
    assert r.status_code == 202 and r.headers["x-strana-ignored"] == reason
    if reason != "excluded_ip":
        kept = _send(server, f"https://www.{SITE}/" if reason == "foreign_host" else f"https://{SITE}/preview/a/b")
        assert kept.status_code == 202 and "x-strana-ignored" not in kept.headers
    assert _drops(server) == {reason: 1}


@pytest.mark.parametrize("pattern,path,match", [
    ("/admin/*", "/admin/x", True), ("/admin/*", "/admin/x/y", False), ("/admin/**", "/admin/x/y", True),
    ("/a?c", "/abc", True), ("/a.c", "/abc", False), ("/blog", "/blog/", False),
])
def test_excluded_path_globs(pattern, path, match):
    assert bool(glob_regex([pattern]).match(path)) is match


def test_hostname_matching():
    view = SiteView.build(SITE, {"hostnames": [SITE, "*.shop.example"]}, "operator")
    assert view.host_allowed(SITE) and view.host_allowed("eu.shop.example")
    assert not view.host_allowed("evilshop.example") and not view.host_allowed("shop.example.evil")
    assert SiteView.build(SITE, {}, "operator").host_allowed("anything.example")


def test_open_mode_until_a_site_is_configured_then_closed(make_server, tmp_path):
    server = make_server(data_dir=tmp_path / "d")
    for site in ("one.example", "two.example"):
        r = httpx.post(server.url + "/api/event", json={"n": "pageview", "u": f"https://{site}/"}, headers=BROWSER)
        assert r.status_code == 202
    time.sleep(0.5)
    sites = {s["domain"]: s["origin"] for s in httpx.get(server.url + "/api/v1/sites").json()}
    assert sites == {"one.example": "auto", "two.example": "auto"}  # auto sites keep open mode
    assert "site one.example created on its first hit" in server.log()
    # an operator adds a site (local mode: no owner yet): now unknown sites are refused
    with server.client() as c:
        c.headers["x-csrf-token"] = c.get("/login").cookies["strana_csrf"]
        assert c.post("/api/v1/sites", json={"domain": SITE}).status_code == 201
    r = httpx.post(server.url + "/api/event", json={"n": "pageview", "u": "https://three.example/"}, headers=BROWSER)
    assert r.status_code == 400 and "unknown site" in r.json()["error"]
    assert httpx.post(server.url + "/api/event", json={"n": "pageview", "u": "https://one.example/"},
                      headers=BROWSER).status_code == 202  # auto-created sites stay known
    server.stop()
    # [ingest] open_mode = true keeps accepting unknown sites
    again = make_server(data_dir=tmp_path / "d", env={"STRANA_INGEST__OPEN_MODE": "true"})
    r = httpx.post(again.url + "/api/event", json={"n": "pageview", "u": "https://four.example/"}, headers=BROWSER)
    assert r.status_code == 202


def test_file_sites_merge_under_the_table(make_server, tmp_path):
    cfg = tmp_path / "strana.toml"
    cfg.write_text(f'[sites."{SITE}"]\ntimezone = "Europe/Berlin"\nexcluded_paths = ["/secret/*"]\n')
    seed(tmp_path / "d", sites={SITE: {"timezone": "Asia/Tokyo"}})
    server = make_server(data_dir=tmp_path / "d", config=cfg)
    got = httpx.get(server.url + f"/api/v1/sites/{SITE}").json()
    assert got["settings"] == {"timezone": "Asia/Tokyo", "excluded_paths": ["/secret/*"]}  # table wins, per key
    assert _send(server, f"https://{SITE}/secret/x").headers["x-strana-ignored"] == "excluded_path"
    # closed mode: the table's site is configured (a file's [sites."..."] section alone only holds settings)
    r = httpx.post(server.url + "/api/event", json={"n": "pageview", "u": "https://x.example/"}, headers=BROWSER)
    assert r.status_code == 400


def test_per_site_dnt_and_query_allow(make_server, tmp_path):
    seed(tmp_path / "d", sites={SITE: {"dnt_policy": "drop", "query_allow": ["q"]}})
    server = make_server(data_dir=tmp_path / "d")
    assert _send(server, f"https://{SITE}/", {"dnt": "1"}).headers["x-strana-ignored"] == "dnt"
    assert _send(server, f"https://{SITE}/s?q=shoes&token=secret").status_code == 202
    server.stop()
    con = server.db()
    assert con.execute("SELECT query FROM events").fetchall() == [("q=shoes",)]
    con.close()


def test_cli_sites_users_keys(tmp_path):
    env_args = ["--data-dir", str(tmp_path)]

    def run(*args, stdin=None):
        return subprocess.run([*STRANA, *args[:1], *args[1:], *env_args], cwd=ROOT, capture_output=True, text=True,
                              input=stdin, timeout=60)

    r = run("sites", "add", SITE, "--set", "timezone=Europe/Berlin", "--set", "excluded_ips=10.0.0.0/8")
    assert r.returncode == 0, r.stderr
    assert run("sites", "set", SITE, "--set", "timezone=Nowhere/Else").returncode == 2
    assert run("sites", "set", SITE, "--set", "retention_days=30").returncode == 0
    listed = run("sites", "list").stdout
    assert SITE in listed and "Europe/Berlin" in listed and "30" in listed
    assert run("users", "create-owner", "--email", "o@x.io", "--password-stdin", stdin="short\n").returncode == 2
    assert run("users", "create-owner", "--email", "o@x.io", "--password-stdin",
               stdin="long enough password\n").returncode == 0
    key = run("keys", "create", "--site", SITE, "--scope", "read")
    assert key.returncode == 0 and key.stdout.strip().startswith("strana_")
    assert run("keys", "create", "--site", "nope.example").returncode == 1
    assert run("sites", "remove", SITE).returncode == 0 and SITE not in run("sites", "list").stdout


def test_retention_deletes_only_expired_events_of_that_site(tmp_path):
    import datetime as dt
    from types import SimpleNamespace

    import duckdb

    from collector.retention import apply_retention
    from collector.settings import load
    from collector.site_registry import SiteRegistry

    seed(tmp_path, sites={SITE: {"retention_days": 30}, "keep.example": {}})
    con = duckdb.connect(str(tmp_path / "strana.duckdb"))
    now = dt.datetime.now(dt.UTC)
    for site, age in ((SITE, 40), (SITE, 5), ("keep.example", 400)):
        ts = now - dt.timedelta(days=age)
        con.execute("INSERT INTO events (event_id, site, name, timestamp, received_at, via) "
                    "VALUES (uuid(), ?, 'pageview', ?, ?, 'event')", [site, ts, ts])
    registry = SiteRegistry(load(environ={}), con.cursor)
    registry.reload()
    assert apply_retention(SimpleNamespace(sink=SimpleNamespace(reader=con.cursor), sites=registry)) == {SITE: 1}
    assert con.execute("SELECT site, count(*) FROM events GROUP BY site ORDER BY site").fetchall() == [
        ("keep.example", 1), (SITE, 1)]
    con.close()
