"""Work no request waits for (reads, DuckDB's threads, the spool loader) runs below ingest's CPU priority.

The effect is a matter of timing (bench/soak_max.py --rate measures it); these tests check the mechanism on a
real server: which of its threads run at which nice value, read from /proc.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

from collector import cpu_priority

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="per-thread nice values are Linux's")


def thread_nices(pid: int) -> dict[int, int]:
    nices = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):  # a thread that ended while we looked
            continue
        nices[int(task.name)] = int(fields[16])  # field 19 of stat: nice (the first two are cut off above)
    return nices


def read_back(server, site: str, pageviews: int) -> None:
    deadline = time.monotonic() + 20
    with server.client() as client:
        while time.monotonic() < deadline:
            body = client.get("/api/v1/stats/aggregate", params={"site": site, "period": "day"}).json()
            if body["results"]["pageviews"] == pageviews:
                return
            time.sleep(0.05)
    raise AssertionError(f"the stats never showed {pageviews} pageviews: {body}")


def send_pageview(server, site: str) -> None:
    with server.client() as client:
        answer = client.post("/api/event", json={"n": "pageview", "u": f"https://{site}/a", "d": site},
                             headers={"user-agent": "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Firefox/130.0"})
        assert answer.status_code == 202


def test_reads_and_duckdb_threads_run_below_the_thread_that_answers_ingest(make_server):
    server = make_server()
    send_pageview(server, "example.com")
    read_back(server, "example.com", 1)
    nices = thread_nices(server.proc.pid)
    assert nices[server.proc.pid] == 0, "the event loop that answers ingest must keep the server's priority"
    lowered = [tid for tid, nice in nices.items() if nice == 19]  # the default: as low as nice goes
    # DuckDB's query threads, the spool loader, and the worker thread that ran the read
    assert len(lowered) >= 3, nices
    assert sum(1 for nice in nices.values() if nice == 0) >= 2, nices  # the loop, and Granian's own threads
    send_pageview(server, "example.com")  # ingest still answers after reads lowered their threads
    read_back(server, "example.com", 2)
    assert thread_nices(server.proc.pid)[server.proc.pid] == 0


def test_background_nice_zero_leaves_every_thread_at_the_servers_priority(make_server):
    server = make_server(env={"STRANA_SERVER__BACKGROUND_NICE": "0"})
    send_pageview(server, "example.com")
    read_back(server, "example.com", 1)
    assert set(thread_nices(server.proc.pid).values()) == {0}


def test_an_out_of_range_background_nice_stops_the_start_with_the_setting_named(make_server):
    server = make_server(env={"STRANA_SERVER__BACKGROUND_NICE": "25"}, start=False)
    with pytest.raises(RuntimeError, match=r"\[server\] background_nice must be 0 \(off\) to 19"):
        server.start()


def own_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def in_thread(fn):
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("value", fn()))
    thread.start()
    thread.join()
    return out["value"]


@pytest.fixture(autouse=True)
def ten_steps():
    cpu_priority.configure(10)
    yield
    cpu_priority.configure(10)


def test_a_thread_that_runs_an_event_loop_is_never_lowered():
    async def on_a_loop():
        return cpu_priority.lower_this_thread(), own_nice()

    base = own_nice()
    assert in_thread(lambda: asyncio.run(on_a_loop())) == (False, base)
    assert cpu_priority.lower_this_thread() is False  # the main thread: where `strana serve` runs its loop
    assert own_nice() == base


def test_a_worker_thread_is_lowered_once_and_its_children_inherit_it():
    def work():
        first, second = cpu_priority.lower_this_thread(), cpu_priority.lower_this_thread()
        return first, second, own_nice(), in_thread(own_nice)

    lower = min(19, own_nice() + 10)
    assert in_thread(work) == (True, True, lower, lower)  # lowered once: 10 steps, not 20
    assert in_thread(lambda: cpu_priority.run_lowered(own_nice)) == lower


def test_background_nice_zero_lowers_nothing():
    cpu_priority.configure(0)
    base = own_nice()
    assert in_thread(lambda: (cpu_priority.lower_this_thread(), own_nice())) == (False, base)
