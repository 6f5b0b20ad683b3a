"""Giving back start-up's file pages (collector/heap.py): RSS falls, and nothing that used them breaks.

The release runs in a child process: it drops pages of this interpreter's own libraries, which is safe (they
come back from the page cache) but would make the test process's RSS figures meaningless to other tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx

from collector.heap import IdleRelease, _read_only_file_mappings

ROOT = Path(__file__).resolve().parent.parent

CHILD = textwrap.dedent("""
    import json, random, sys
    sys.path.insert(0, sys.argv[1])
    import duckdb
    from collector.enhancers.put_geolocation import PutGeolocation
    from collector.heap import release_file_pages

    def rss_file():
        return int(next(l for l in open("/proc/self/status") if l.startswith("RssFile:")).split()[1])

    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT range AS i, md5(range::VARCHAR) AS s FROM range(100000)")
    geo = PutGeolocation()
    before = geo._locate("81.2.69.142")
    rss_before = rss_file()
    released = release_file_pages()
    rss_after = rss_file()
    # everything that ran before runs again on pages faulted back from the page cache
    total = con.execute("SELECT sum(i), count(DISTINCT s) FROM t").fetchone()
    geo.locate.cache_clear()
    print(json.dumps({"before": rss_before, "after": rss_after, "released": released, "total": list(total),
                      "place": list(geo._locate("81.2.69.142")), "place_before": list(before)}))
""")


def test_release_drops_file_pages_and_everything_still_works():
    out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["released"] > 10_000  # kB: DuckDB's, pyarrow's and Python's own code at least
    assert got["after"] < got["before"] - 10_000
    assert got["total"] == [sum(range(100_000)), 100_000]
    assert got["place"] == got["place_before"] and got["place"][0] == "GB"


def test_only_unwritten_read_only_file_mappings_are_released(tmp_path):
    smaps = tmp_path / "smaps"
    smaps.write_text(textwrap.dedent("""\
        7f0000000000-7f0000010000 r-xp 00000000 fd:00 1 /usr/lib/libcode.so
        Rss:                  64 kB
        Anonymous:             0 kB
        7f0000010000-7f0000012000 r--p 00010000 fd:00 1 /usr/lib/libcode.so
        Rss:                   8 kB
        Anonymous:             8 kB
        7f0000012000-7f0000013000 rw-p 00012000 fd:00 1 /usr/lib/libcode.so
        Rss:                   4 kB
        Anonymous:             0 kB
        7f0000020000-7f0000030000 r--s 00000000 fd:00 2 /data/GeoLite2-City.mmdb
        Rss:                  64 kB
        Anonymous:             0 kB
        7f0000030000-7f0000040000 r--p 00000000 00:00 0 [vvar]
        Rss:                   8 kB
        Anonymous:             0 kB
        7f0000040000-7f0000050000 r-xp 00000000 fd:00 3 /tmp/gone.so (deleted)
        Rss:                   8 kB
        Anonymous:             0 kB
        7f0000050000-7f0000060000 ---p 00000000 fd:00 1 /usr/lib/libcode.so
        Rss:                   0 kB
        Anonymous:             0 kB
        7f0000060000-7f0000070000 r--p 00000000 fd:00 4 /usr/lib/last.so
        Rss:                  12 kB
        Anonymous:             0 kB
        """))
    # code and the shared database go; relocated (copy-on-write) pages, writable data, the kernel's own
    # mappings, deleted files and untouched guards stay
    assert list(_read_only_file_mappings(str(smaps))) == [
        (0x7F0000000000, 0x10000, 64), (0x7F0000020000, 0x10000, 64), (0x7F0000060000, 0x10000, 12)]


def test_idle_release_waits_for_a_run_without_stored_events(monkeypatch):
    import collector.heap as heap

    calls = []
    monkeypatch.setattr(heap, "release_file_pages", lambda: calls.append("release") or 1)
    monkeypatch.setattr(heap, "malloc_trim", lambda: calls.append("trim"))
    stored = iter([10.0, 20.0, 20.0, 20.0, 30.0])
    job = IdleRelease(counted=lambda: next(stored))
    assert [job() for _ in range(5)] == [0, 0, 1, 1, 0]
    assert calls == ["trim", "release", "trim", "release"]


def test_a_served_server_still_answers_after_start_up_released_its_pages(server):
    """The lifespan releases start-up's pages before the first request: every way in and a report still work."""
    base = server.url
    pid = server.proc.pid
    file_kb = int(next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                       if line.startswith("RssFile:")).split()[1])
    assert file_kb < 80_000  # not the ~110 MB start-up maps on a large-folio kernel
    r = httpx.post(f"{base}/api/event", json={"n": "pageview", "u": "https://example.com/after", "d": "example.com"},
                   headers={"user-agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
                            "x-forwarded-for": "81.2.69.142"})
    assert r.status_code == 202
    stats = httpx.get(f"{base}/api/v1/stats/aggregate?site=example.com&period=day").json()
    assert stats["results"]["pageviews"] >= 1


def test_idle_release_counts_accepted_events_too(monkeypatch):
    """An ingest-only process stores nothing itself: events it accepts keep it from counting as idle."""
    import collector.heap as heap
    from collector import metrics

    released = []
    monkeypatch.setattr(heap, "release_file_pages", lambda: released.append(1) or 1)
    monkeypatch.setattr(heap, "malloc_trim", lambda: None)
    job = IdleRelease()
    job()
    metrics.accepted_total.labels("event").inc()
    assert job() == 0 and not released
    assert job() == 1 and released == [1]
