"""`strana serve` on the Parquet sink against a real S3 server (weed mini): ingest, reports, outages, bad keys."""

from __future__ import annotations

import subprocess
import time

import httpx
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from conftest import ROOT, STRANA
from lake_support import BUCKET, FIREFOX, WeedServer, running_weed, s3_toml

from collector.events import SCHEMA

UA = {"user-agent": FIREFOX}


@pytest.fixture
def weed(tmp_path):
    yield from running_weed(tmp_path)


def lake_files(weed_server: WeedServer, prefix: str = "strana") -> list[str]:
    infos = weed_server.fs().get_file_info(pafs.FileSelector(f"{BUCKET}/{prefix}", recursive=True,
                                                             allow_not_found=True))
    return sorted(i.path for i in infos if i.type == pafs.FileType.File)


def aggregate(c: httpx.Client, site: str = "example.com") -> dict:
    r = c.get("/api/v1/stats/aggregate", params={"site": site, "period": "day"})
    assert r.status_code == 200, r.text
    return r.json()["results"]


def test_ingest_and_reports_on_s3_lake(weed, make_server, tmp_path):
    config = s3_toml(weed, tmp_path / "strana.toml")
    server = make_server(config=config)
    with server.client() as c:
        assert c.post("/api/event", json={"n": "pageview", "u": "https://example.com/a", "d": "example.com"},
                      headers=UA).status_code == 202
        assert c.get("/p.gif", params={"d": "example.com", "u": "https://example.com/b"}, headers=UA).status_code == 200
        r = c.post("/api/v1/batch", json={"events": [
            {"n": "signup", "u": "https://example.com/pricing", "d": "example.com", "event_id": "e-1",
             "p": {"plan": "pro"}, "ip": "203.0.113.9", "user_agent": FIREFOX},
            {"n": "pageview", "u": "https://other.example/", "d": "other.example", "ip": "203.0.113.10",
             "user_agent": FIREFOX}]})
        assert r.status_code == 202, r.text
        # a bot is counted as a drop, in the lake too
        c.post("/api/event", json={"n": "pageview", "u": "https://example.com/", "d": "example.com"},
               headers={"user-agent": "python-httpx/0.28"})
        # the files just written are visible at once, without a restart
        assert aggregate(c) == {"pageviews": 2, "visitors": 2, "events": 3}
        assert aggregate(c, "other.example")["events"] == 1
        r = c.post("/api/v1/query", json={"site_id": "example.com", "metrics": ["visitors", "pageviews", "events"],
                                          "date_range": "day", "dimensions": ["event:page"]})
        assert r.status_code == 200, r.text
        pages = {row["dimensions"][0]: row["metrics"] for row in r.json()["results"]}
        assert pages == {"/a": [1, 1, 1], "/b": [1, 1, 1], "/pricing": [1, 0, 1]}
        # the same client event id again: a duplicate, not a second row
        assert c.post("/api/v1/batch", json={"events": [
            {"n": "signup", "u": "https://example.com/pricing", "d": "example.com", "event_id": "e-1"}]}
        ).status_code == 202
        assert aggregate(c)["events"] == 3
    assert server.stop() == 0

    files = lake_files(weed)
    events = [f for f in files if "/events/" in f]
    assert events and all(f.startswith(f"{BUCKET}/strana/events/site=") and "/date=" in f
                          and f.endswith(".parquet") for f in events)
    assert any("/events/site=other.example/date=" in f for f in events)
    assert any(f.startswith(f"{BUCKET}/strana/_salts/") for f in files)
    fs = weed.fs()
    for f in events:
        assert pq.read_schema(f, filesystem=fs) == SCHEMA
    drops = [f for f in files if "/drops/site=example.com/" in f]
    assert sum(pq.read_table(f, filesystem=fs)["n"].to_pylist()[0] for f in drops) >= 1

    # a new server on the same lake answers the same, and still knows e-1 (duplicate ids reload from the lake)
    server = make_server(config=config)
    with server.client() as c:
        assert aggregate(c) == {"pageviews": 2, "visitors": 2, "events": 3}
        assert c.post("/api/v1/batch", json={"events": [
            {"n": "signup", "u": "https://example.com/pricing", "d": "example.com", "event_id": "e-1"}]}
        ).status_code == 202
        assert aggregate(c)["events"] == 3


def test_store_outage_answers_503_and_loses_nothing(weed, make_server, tmp_path):
    server = make_server(config=s3_toml(weed, tmp_path / "strana.toml"))
    accepted = 0

    def send(c: httpx.Client, i: int) -> int:
        return c.post("/api/event", json={"n": "pageview", "u": f"https://example.com/{i}", "d": "example.com"},
                      headers=UA).status_code

    with server.client() as c:
        for i in range(5):
            assert send(c, i) == 202
            accepted += 1
        weed.stop()
        deadline = time.monotonic() + 60
        statuses = []
        while time.monotonic() < deadline:
            status = send(c, 100 + len(statuses))
            statuses.append(status)
            accepted += status == 202
            if status == 503:
                break
        assert statuses[-1] == 503, statuses
        r = c.post("/api/event", json={"n": "pageview", "u": "https://example.com/x", "d": "example.com"},
                   headers=UA)
        assert r.status_code == 503 and "lake" in r.text
        weed.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = send(c, 1000)
            if status == 202:
                accepted += 1
                break
        assert status == 202
        assert aggregate(c)["events"] == accepted
    assert server.stop() == 0


def _serve_fails(config) -> str:
    proc = subprocess.run([*STRANA, "--config", str(config), "serve", "--port", "1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    return proc.stderr


def test_wrong_credentials_and_unreachable_endpoint_are_clear(weed, tmp_path):
    err = _serve_fails(s3_toml(weed, tmp_path / "bad-key.toml", secret="not-the-secret"))
    assert "cannot start" in err and "SIGNATURE_DOES_NOT_MATCH" in err and "access key" in err
    err = _serve_fails(s3_toml(weed, tmp_path / "no-server.toml", endpoint="127.0.0.1:9"))
    assert "cannot start" in err and "connect" in err.lower() and "endpoint" in err
