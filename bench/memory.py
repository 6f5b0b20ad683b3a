"""Memory benchmark: RSS of a fresh `strana serve` idle, after N hits of a realistic mix, and where it goes.

    .venv/bin/python bench/memory.py [--hits 500] [--rounds 3] [--no-breakdown] [--tracemalloc]
                                     [--env STRANA_X__Y=value ...]

Part 1 starts the embedded default (Granian embedded in one process, memory
bus, spool + DuckDB) on a free port and reads /proc/<pid>/status of that
process: VmRSS split into RssAnon (heap, Python objects, native buffers) and RssFile (pages of
mapped files: shared libraries, the GeoLite2 database), idle after start-up,
then after each round of N hits (single events, pixels and batches with many
user agents — some never seen before, some bots — and client addresses from
all over, plus a few stats queries, /metrics and the tracker script), once the
spool loader has moved them into DuckDB, and idle again after a restart on
the store the rounds left. Start-up ends by releasing the file pages it mapped
(collector/heap.py release_file_pages); what the rounds touch comes back, and an
idle server releases it again after 5-10 minutes without an event (IdleRelease).
The server's largest mappings (/proc/<pid>/smaps) are listed idle and after the rounds.

Part 2 (the breakdown) repeats the start-up in one plain process, step by step
(imports, then each part that `create_app` builds, then the lifespan), and
prints the RSS each step added; glibc's own count of bytes in use vs held free
(mallinfo2) says how much of the heap is fragmentation. `--tracemalloc` adds
the Python allocations by file (slow, and it inflates RSS: a separate run).

Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_support import ROOT, Server  # noqa: E402

BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.{b}.{p} "
    "Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.{m} "
    "Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{m} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.{m} Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S9{m}8B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.{b}.{p} "
    "Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; Pixel {m}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 "
    "Mobile Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_{m} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 "
    "Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 "
    "Safari/537.36 Edg/{v}.0.{b}.{p}",
    "Mozilla/5.0 (Linux; Android 14; SM-X{m}10) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 "
    "Chrome/{v}.0.0.0 Safari/537.36",
]
BOTS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "curl/8.5.0", "python-requests/2.32.3", "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0.0.0 "
    "Safari/537.36",
]
REFERRERS = ["", "", "", "https://www.google.com/", "https://news.ycombinator.com/", "https://www.reddit.com/r/x/",
             "https://duckduckgo.com/", "https://t.co/abc", "https://chatgpt.com/", "https://blog.example.org/post"]
PATHS = ["/", "/pricing", "/blog/", "/docs/start", "/about", "/blog/how-we-built-it", "/signup", "/docs/api"]
SITES = ["example.com", "shop.example.net", "docs.example.org"]


# ---------------------------------------------------------------- /proc


def status(pid: int) -> dict[str, float]:
    """VmRSS, RssAnon, RssFile in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":")[0]
        if key in ("VmRSS", "RssAnon", "RssFile", "Threads"):
            out[key] = int(line.split()[1]) / (1 if key == "Threads" else 1024)
    return out


def mappings(pid: int, top: int = 8) -> list[tuple[float, str]]:
    """RSS per mapping name (shared libraries by base name; [heap], [anon] for the rest) in MB."""
    sizes: collections.Counter = collections.Counter()
    name = "?"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            parts = line.split(None, 5)
            name = Path(parts[5].strip()).name if len(parts) > 5 and parts[5].strip() else "[anon]"
        elif line.startswith("Rss:"):
            sizes[name] += int(line.split()[1]) / 1024
    return [(mb, n) for n, mb in sizes.most_common(top)]


def settled(pid: int, timeout: float = 15.0) -> dict[str, float]:
    """RSS once it stops moving (less than 0.2 MB over a second), or after `timeout`."""
    deadline = time.monotonic() + timeout
    last = status(pid)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = status(pid)
        if abs(now["VmRSS"] - last["VmRSS"]) < 0.2:
            return now
        last = now
    return last


# ---------------------------------------------------------------- traffic


def user_agent(rnd: random.Random) -> str:
    roll = rnd.random()
    if roll < 0.05:
        return rnd.choice(BOTS)
    template = rnd.choice(BROWSERS)
    if roll < 0.15:  # never seen before: a build and patch number nobody else sends
        return template.format(v=rnd.randint(100, 140), m=rnd.randint(0, 9), b=rnd.randint(1000, 9999),
                               p=rnd.randint(0, 999))
    return template.format(v=rnd.randint(118, 128), m=rnd.randint(0, 5), b=0, p=0)


def address(rnd: random.Random) -> str:
    return f"{rnd.randint(1, 223)}.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}"


def page(rnd: random.Random, site: str) -> str:
    query = rnd.choice(["", "", "?utm_source=newsletter&utm_medium=email", "?gclid=abc", "?ref=x"])
    return f"https://{site}{rnd.choice(PATHS)}{query}"


def one_request(rnd: random.Random) -> tuple[str, str, str, dict, bytes | None]:
    """(label, method, path, headers, body) of one hit of the mix."""
    site = rnd.choice(SITES)
    ua, ip = user_agent(rnd), address(rnd)
    roll = rnd.random()
    if roll < 0.70:
        body = {"n": rnd.choice(["pageview"] * 8 + ["signup", "engagement"]), "u": page(rnd, site), "d": site,
                "r": rnd.choice(REFERRERS)}
        if body["n"] == "engagement":
            body.update(sd=rnd.randint(0, 100), e=rnd.randint(100, 60000))
        if rnd.random() < 0.1:
            body["p"] = {"plan": rnd.choice(["free", "pro"]), "ab": str(rnd.randint(0, 3))}
        return ("event", "POST", "/api/event", {"User-Agent": ua, "X-Forwarded-For": ip,
                                                 "Content-Type": "text/plain"}, json.dumps(body).encode())
    if roll < 0.85:
        from urllib.parse import quote

        return ("pixel", "GET", f"/p.gif?d={site}&u={quote(page(rnd, site), safe='')}",
                {"User-Agent": ua, "X-Forwarded-For": ip}, None)
    if roll < 0.95:
        events = [{"n": "pageview", "u": page(rnd, site), "d": site, "ip": address(rnd),
                   "user_agent": user_agent(rnd), "r": rnd.choice(REFERRERS)} for _ in range(20)]
        return ("batch", "POST", "/api/v1/batch", {"Content-Type": "application/json"},
                json.dumps({"events": events}).encode())
    path = rnd.choice([f"/api/v1/stats/aggregate?site={site}&period=7d&metrics=visitors,pageviews,bounce_rate",
                       f"/api/v1/realtime?site={site}", "/metrics", "/healthz", "/js/strana.js"])
    return ("read", "GET", path, {"User-Agent": ua}, None)


def drive(port: int, hits: int, seed: int, threads: int = 8) -> collections.Counter:
    """Send `hits` requests of the mix over `threads` keep-alive connections; count (label, status)."""
    counts: collections.Counter = collections.Counter()
    lock = threading.Lock()
    per = [hits // threads + (1 if i < hits % threads else 0) for i in range(threads)]

    def run(i: int) -> None:
        rnd = random.Random(seed * 1000 + i)
        con = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(per[i]):
            label, method, path, headers, body = one_request(rnd)
            con.request(method, path, body=body, headers=headers)
            resp = con.getresponse()
            resp.read()
            with lock:
                counts[(label, resp.status)] += 1
        con.close()

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return counts


def wait_loaded(port: int) -> None:
    """A stats read waits for the spool loader (read-your-writes), so the rows are in DuckDB after it."""
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    con.request("GET", "/api/v1/stats/aggregate?site=example.com&period=all")
    con.getresponse().read()
    con.close()


def fmt(s: dict[str, float]) -> str:
    return f"{s['VmRSS']:7.1f} MB (anon {s['RssAnon']:6.1f}, file {s['RssFile']:5.1f})"


def serve_part(args) -> None:
    env = {"STRANA_SERVER__TRUSTED_PROXIES": "127.0.0.1", "STRANA_SERVER__LOG_LEVEL": "warning"}
    env.update(kv.split("=", 1) for kv in args.env)
    data = Path(tempfile.mkdtemp(prefix="strana-mem-"))
    server = Server(data / "data", env=env)
    t0 = time.monotonic()
    server.start()
    started = time.monotonic() - t0
    try:
        pid = server.proc.pid
        idle = settled(pid)
        print(f"`strana serve` healthy after {started:.1f}s; env {env}")
        print(f"idle      server {fmt(idle)}   threads {idle['Threads']:.0f}")
        print("          largest mappings: " + ", ".join(f"{n} {mb:.1f}" for mb, n in mappings(pid)))
        for r in range(1, args.rounds + 1):
            t = time.monotonic()
            counts = drive(server.port, args.hits, seed=r)
            wait_loaded(server.port)
            took = time.monotonic() - t
            after = settled(pid)
            mix = ", ".join(f"{label} {code}: {n}" for (label, code), n in sorted(counts.items()))
            print(f"round {r}   server {fmt(after)}   ({args.hits} hits in {took:.1f}s: {mix})")
        print("          largest mappings: " + ", ".join(f"{n} {mb:.1f}" for mb, n in mappings(pid)))
        server.stop()
        server.start()  # a restart on the store it left: the usual state of a server that has run before
        idle = settled(server.proc.pid)
        print(f"restart   server {fmt(idle)}   (idle again, on the store of the rounds above)")
    finally:
        server.stop()
        print(f"server log: {data / 'data' / 'server.log'}")


# ---------------------------------------------------------------- breakdown (runs in a child process)

BREAKDOWN = r'''
import asyncio, ctypes, gc, os, sys, tempfile, time
from pathlib import Path
TRACE = "--tracemalloc" in sys.argv
if TRACE:
    import tracemalloc
    tracemalloc.start(1)

def status():
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key = line.split(":")[0]
        if key in ("VmRSS", "RssAnon", "RssFile"):
            out[key] = int(line.split()[1]) / 1024
    return out

rows = []
last = status()
def step(name, before=None):
    global last
    now = status()
    base = before or last
    rows.append((name, now["VmRSS"] - base["VmRSS"], now["RssAnon"] - base["RssAnon"],
                 now["RssFile"] - base["RssFile"], now["VmRSS"]))
    last = now

step("python itself (interpreter, site)", {"VmRSS": 0, "RssAnon": 0, "RssFile": 0})
import granian; step("import granian")
import msgspec, litestar; step("import litestar (+msgspec)")
import duckdb; step("import duckdb")
import pyarrow; step("import pyarrow")
import collector.app as appmod; step("import collector.app (the rest: app, reports, auth, enhancers, ...)")
heavy = sorted(m for m in ("polars", "pandas", "numpy", "nats", "confluent_kafka", "pyarrow.parquet",
                           "pyarrow.dataset", "pyarrow.compute", "jinja2", "apscheduler") if m in sys.modules)

inner = []  # (name, delta) of wrapped constructors, measured inside create_app
def wrap(owner, attr, name):
    original = getattr(owner, attr)
    def wrapped(*a, **k):
        before = status()
        try:
            return original(*a, **k)
        finally:
            now = status()
            inner.append((name, now["VmRSS"] - before["VmRSS"], now["RssAnon"] - before["RssAnon"],
                          now["RssFile"] - before["RssFile"]))
    setattr(owner, attr, wrapped)

from collector.enhancers import drop_bots, put_user_agent, put_geolocation
from collector.sinks import duckdb as sink_duckdb, spool
from collector import worker, site_registry
from collector.auth import service
wrap(drop_bots.DropBots, "__init__", "  DropBots() (crawler patterns)")
wrap(put_user_agent.PutUserAgent, "__init__", "  PutUserAgent() (ua-parser resolver)")
wrap(put_geolocation.PutGeolocation, "__init__", "  PutGeolocation() (GeoLite2 open)")
wrap(sink_duckdb.DuckDBSink, "__init__", "  DuckDBSink() (connect + migrations)")
wrap(spool.SpoolingSink, "recover", "  SpoolingSink.recover() (+ loader thread)")
wrap(worker.Worker, "warm_up", "  Worker.warm_up()")
wrap(service.Auth, "__init__", "  Auth() (people, keys)")
wrap(appmod, "Litestar", "  Litestar(...) (routes, DI, schema plugins)")

os.environ["STRANA_SERVER__DATA_DIR"] = tempfile.mkdtemp(prefix="strana-mem-breakdown-")
os.environ["STRANA_SERVER__LOG_LEVEL"] = "warning"
before = status()
app = appmod.create_app()
step("create_app() total")
for name, total, anon, file in inner:
    rows.append((name, total, anon, file, None))
rows.append(("  (the rest of create_app)", rows[-len(inner) - 1][1] - sum(r[1] for r in inner),
             rows[-len(inner) - 1][2] - sum(r[2] for r in inner), rows[-len(inner) - 1][3] - sum(r[3] for r in inner),
             None))

async def lifespan():
    queue = asyncio.Queue()
    await queue.put({"type": "lifespan.startup"})
    sent = []
    async def receive():
        return await queue.get()
    async def send(message):
        sent.append(message["type"])
    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send))
    while "lifespan.startup.complete" not in sent:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)
    step("lifespan startup (bus, worker task, scheduler)")
    await queue.put({"type": "lifespan.shutdown"})
    await task

asyncio.run(lifespan())

class Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Mallinfo2
mi = libc.mallinfo2()
MB = 1 << 20
print("BREAKDOWN")
for name, total, anon, file, at in rows:
    where = f"  -> {at:6.1f}" if at is not None else ""
    print(f"{name:<68}{total:+7.1f} MB (anon {anon:+6.1f}, file {file:+6.1f}){where}")
print(f"heavy modules imported: {', '.join(heavy) or 'none'}")
print(f"glibc malloc (after shutdown): {mi.uordblks / MB:.1f} MB in use, {mi.fordblks / MB:.1f} MB free but held "
      f"(main heap {mi.arena / MB:.1f} MB, mmapped blocks {mi.hblkhd / MB:.1f} MB)")
if TRACE:
    snap = tracemalloc.take_snapshot()
    stats = snap.statistics("filename")
    total = sum(s.size for s in stats)
    print(f"tracemalloc: {total / MB:.1f} MB of Python allocations; top files:")
    for s in stats[:15]:
        print(f"  {s.size / MB:6.2f} MB  {s.count:>8} blocks  {s.traceback[0].filename}")
'''


def breakdown_part(args) -> None:
    env = {**os.environ, **dict(kv.split("=", 1) for kv in args.env)}
    cmd = [sys.executable, "-c", BREAKDOWN] + (["--tracemalloc"] if args.tracemalloc else [])
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    text = out.stdout[out.stdout.find("BREAKDOWN") + len("BREAKDOWN\n"):] if "BREAKDOWN" in out.stdout else ""
    print(text.rstrip() or f"breakdown failed:\n{out.stdout}\n{out.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hits", type=int, default=500, help="requests per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-breakdown", action="store_true")
    parser.add_argument("--no-serve", action="store_true")
    parser.add_argument("--tracemalloc", action="store_true", help="Python allocations by file (breakdown only)")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server (repeatable)")
    args = parser.parse_args()
    if not args.no_serve:
        print("== 1. a fresh `strana serve` (embedded default), RSS from /proc")
        serve_part(args)
    if not args.no_breakdown:
        print("\n== 2. start-up step by step in a plain process (RSS added by each step; the server does the same)")
        breakdown_part(args)
    print(f"\nload average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
