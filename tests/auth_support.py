"""Shared by the auth and sites tests: seed sites, people and keys into a store, log in over real HTTP."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import httpx

from collector import migrate
from collector import sites as site_rows
from collector.auth import store

BROWSER = {"user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                         "Chrome/131.0.0.0 Safari/537.36"}
PASSWORD = "correct horse battery"


def seed(data_dir: Path, sites: dict[str, dict] | None = None, users: dict | None = None,
         keys: list[tuple[str, str, str]] | None = None, links: list[tuple[str, str, dict]] | None = None) -> dict:
    """Write sites, users ({email: {"owner": bool, "roles": {site: role}}}), keys ([(name, site, scope)]) and
    links ([(name, site, kwargs)]) into the store before the server starts. Returns {name: token}."""
    data_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(data_dir / "strana.duckdb"))
    tokens: dict[str, str] = {}
    try:
        migrate.apply(con)
        for domain, config in (sites or {}).items():
            site_rows.put_site(con, domain, config)
        for email, spec in (users or {}).items():
            user_id = store.create_user(con, email, PASSWORD, owner=spec.get("owner", False))
            for site, role in spec.get("roles", {}).items():
                store.set_role(con, user_id, site, role)
        for name, site, scope in keys or []:
            tokens[name] = store.create_key(con, site, scope, name)[1]
        for name, site, kwargs in links or []:
            tokens[name] = store.create_link(con, site, name, **kwargs)[1]
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return tokens


def csrf(client: httpx.Client) -> str:
    """The double-submit token: any page sets the cookie."""
    if "strana_csrf" not in client.cookies:
        client.get("/login")
    return client.cookies["strana_csrf"]


def login(client: httpx.Client, email: str, password: str = PASSWORD, code: str = "") -> httpx.Response:
    token = csrf(client)
    return client.post("/login", data={"email": email, "password": password, "code": code, "_csrf": token,
                                       "next": "/"})


def logged_in(server, email: str) -> httpx.Client:
    client = server.client()
    r = login(client, email)
    assert r.status_code == 303, r.text
    client.headers["x-csrf-token"] = client.cookies["strana_csrf"]
    return client


def setup_link(log: str) -> str:
    return re.findall(r"/setup/([A-Za-z0-9_\-]+)", log)[-1]
