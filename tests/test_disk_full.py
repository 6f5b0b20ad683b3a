"""Disk full on the data directory: 503, never 2xx-then-lost, and ingestion recovers when space returns.

Uses a real size-limited filesystem (tmpfs), so it needs root; skipped otherwise.
"""

from __future__ import annotations

import time

import pytest
from disk_support import fill, small_disk_at

UA = {"user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"}


@pytest.fixture
def small_disk(tmp_path):
    with small_disk_at(tmp_path, "32M") as mnt:
        yield mnt


def event(i: int) -> dict:
    return {"n": "pageview", "u": f"https://example.com/p/{i}", "d": "example.com", "p": {"seq": str(i)}}


def test_disk_full_answers_503_and_recovers(make_server, small_disk):
    server = make_server(data_dir=small_disk / "data")
    accepted, refused = set(), 0
    with server.client() as c:
        for i in range(20):
            assert c.post("/api/event", json=event(i), headers=UA).status_code == 202
            accepted.add(i)
        filler = small_disk / "filler"
        fill(filler)
        for i in range(20, 120):
            r = c.post("/api/event", json=event(i), headers=UA)
            assert r.status_code in (202, 503), r.text
            if r.status_code == 202:
                accepted.add(i)
            else:
                refused += 1
                assert r.headers["retry-after"]
        assert refused > 0, "a full disk never made ingestion refuse"
        filler.unlink()
        deadline = time.monotonic() + 60
        i = 1000
        while time.monotonic() < deadline:
            r = c.post("/api/event", json=event(i), headers=UA)
            if r.status_code == 202:
                accepted.add(i)
                break
            i += 1
        else:
            pytest.fail("ingestion did not recover after space returned:\n" + server.log()[-3000:])
        for j in range(i + 1, i + 20):
            assert c.post("/api/event", json=event(j), headers=UA).status_code == 202
            accepted.add(j)
    server.stop()
    with server.db() as db:
        stored = [int(r[0]) for r in db.execute("SELECT props['seq'] FROM events").fetchall()]
    assert len(stored) == len(set(stored)), "an event was stored twice"
    missing = accepted - set(stored)
    assert not missing, f"accepted but lost: {sorted(missing)[:10]}"
