"""Soak at the top rate: 10 minutes of wrk flat out (single events + batches + pixels) plus dashboard reads.

    .venv/bin/python bench/soak_max.py [--minutes 10] [--event-connections 48]

bench/soak.py drives the server from one Python process, which tops out near
200 events/s here; this one uses wrk (Debian package `wrk`), closed-loop, so
the rate is whatever the embedded server sustains on this machine with the
mix running at once: wrk on /api/event (--event-connections), a second wrk
posting batches of 10 (4 connections) and a third loading the pixel (8
connections), restarted every minute so each minute has its own p99; a
thread reads the aggregate stats, a stats query and the dashboard page once a
second. Every event and batch item carries a unique numeric `seq` prop. Samples
the server's RSS every 10 s. At the end it reads strana_events_accepted_total
from /metrics (what the server acknowledged), SIGTERMs, and counts rows per
seq in the store: lost = accepted - stored, doubled = seqs stored twice.
Prints per-minute rates, p99 and RSS (with the memory DuckDB says it holds and
put_session's open visits, glibc's heap in use / held free and Python's
allocated blocks, from /metrics), the RSS slope after --warm-up minutes (2), the same slope for RSS less
what DuckDB holds (capped by memory_limit), and whether
each minute's p99 stayed within 2x the first minute's. Asserts nothing.

    .venv/bin/python bench/soak_max.py --rate 2000

holds a fixed load instead (the same mix: /api/event at 2,000 requests/s,
batches of 10 at 200/s, pixels at ~667/s; wrk's delay() keeps each request to
its slot on a clock): flat out, the rate falls as the dashboard's reads of
today's growing raw rows take more of the two cores, so a fixed rate the
server holds for the whole run is what shows whether memory and p99 stay flat.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import PATHS, REFERRERS, UAS  # noqa: E402
from serve_support import UA, Server  # noqa: E402

COMMON = """
local uas = {%(uas)s}
local refs = {%(refs)s}
local paths = {%(paths)s}
local n = 0
local counter = 1
setup = function(thread) thread:set("tid", counter); counter = counter + 1 end
init = function(args) tid = tid or 0; math.randomseed(os.time() + tid * 7919) end  -- tid: set by setup()
local function seq() n = n + 1; return string.format("%%d", %(base)d + tid * 1000000000 + n) end
local function ip() return string.format('%%d.%%d.%%d.%%d', math.random(1,223), math.random(0,255),
  math.random(0,255), math.random(1,254)) end
local function event(extra)
  return '{"n":"pageview","u":"https://example.com' .. paths[math.random(#paths)] .. '","d":"example.com","r":"'
    .. refs[math.random(#refs)] .. '","p":{"seq":"' .. seq() .. '"}' .. extra .. '}'
end
"""

REQUEST = {
    "event": """
request = function()
  return wrk.format("POST", "/api/event", {["Content-Type"]="text/plain", ["User-Agent"]=uas[math.random(#uas)],
    ["X-Forwarded-For"]=ip()}, event(""))
end""",
    "batch": """
request = function()
  local items = {}
  for i = 1, 10 do
    items[i] = event(',"ip":"' .. ip() .. '","user_agent":"' .. uas[math.random(#uas)] .. '"')
  end
  return wrk.format("POST", "/api/v1/batch", {["Content-Type"]="application/json"},
    '{"events":[' .. table.concat(items, ",") .. ']}')
end""",
    "pixel": """
request = function()
  return wrk.format("GET", "/p.gif?d=example.com&u=https%3A%2F%2Fexample.com" .. paths[math.random(#paths)],
    {["User-Agent"]=uas[math.random(#uas)], ["X-Forwarded-For"]=ip()})
end""",
}
PER_REQUEST = {"event": 1, "batch": 10, "pixel": 1}
RATE_SHARE = {"event": 1.0, "batch": 0.1, "pixel": 1 / 3}  # requests/s of each kind per --rate event/s

# --rate: wrk's delay() holds each request back to its slot on a fixed schedule (a LuaJIT clock), so the rate
# stays put whatever the latency does, up to what the server can take; behind by more than a second, no burst.
PACING = """
local ffi = require("ffi")
ffi.cdef[[ typedef struct { long tv_sec; long tv_nsec; } strana_ts; int clock_gettime(int, strana_ts *); ]]
local ts = ffi.new("strana_ts")
local function now_ms() ffi.C.clock_gettime(1, ts); return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6 end
local gap, next_at = %(gap_ms)f, nil
delay = function()
  local t = now_ms()
  if next_at == nil or next_at < t - 1000 then next_at = t end
  local wait = next_at - t
  next_at = next_at + gap
  return wait > 0 and wait or 0
end
"""


RUN = 10**15  # a run on a kept store numbers its seqs above the store's: seq // RUN is the run


def script(kind: str, minute: int, rate: float | None = None, run: int = 0) -> str:
    base = run * RUN + {"event": 1, "batch": 2, "pixel": 3}[kind] * 10**14 + minute * 10**12
    text = COMMON % {"uas": ",".join(json.dumps(u.format(v=100 + i)) for i, u in enumerate(UAS * 3)),
                     "refs": ",".join(json.dumps(r) for r in REFERRERS),
                     "paths": ",".join(json.dumps(p) for p in PATHS), "base": base}
    pacing = PACING % {"gap_ms": 1000 / (rate * RATE_SHARE[kind])} if rate else ""
    return text + pacing + REQUEST[kind]


def parse(out: str) -> dict:
    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)] if m else float("nan")

    requests = int(m.group(1)) if (m := re.search(r"(\d+) requests in", out)) else 0
    non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return {"requests": requests, "ok": requests - non2xx, "non2xx": non2xx, "errors": errors, "p99": ms("99%"),
            "p50": ms("50%")}


def minute(url: str, n: int, seconds: int, connections: dict, folder: Path, rate: float | None = None,
           run: int = 0) -> dict:
    procs = {}
    for kind, conns in connections.items():
        path = folder / f"{kind}-{n}.lua"
        path.write_text(script(kind, n, rate, run))
        procs[kind] = subprocess.Popen(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", str(path),
                                        url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return {kind: parse(p.communicate()[0]) for kind, p in procs.items()}


def read_loop(url: str, stop: threading.Event, stats: dict) -> None:
    query = json.dumps({"site_id": "example.com", "date_range": "day", "metrics": ["visitors", "pageviews"],
                        "dimensions": ["event:page"]}).encode()
    while not stop.is_set():
        began = time.monotonic()
        for req in (urllib.request.Request(url + "/api/v1/stats/aggregate?site=example.com"),
                    urllib.request.Request(url + "/api/v1/query", data=query,
                                           headers={"content-type": "application/json"}),
                    urllib.request.Request(url + "/example.com", headers={"user-agent": UA})):
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    r.read()
                stats["reads"] += 1
            except Exception as exc:  # say which read failed and how: a count alone explains nothing
                stats["read_errors"] += 1
                detail = exc.read()[:200].decode(errors="replace") if isinstance(exc, urllib.error.HTTPError) else ""
                print(f"  read failed: {req.full_url}: {exc!r} {detail}", file=sys.stderr, flush=True)
        stats["read_seconds"].append(time.monotonic() - began)
        stop.wait(max(0.0, 1.0 - (time.monotonic() - began)))


def gauges(url: str) -> dict[str, float | str]:
    """The server's own memory gauges: DuckDB's count (MB), put_session's open visits, glibc's heap in use and
    free but held (MB; DuckDB and pyarrow allocate with their own jemalloc, outside it) and Python's blocks (M)."""
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=30) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out = {}
    for name, key, scale in (("strana_duckdb_memory_bytes", "duckdb", 2**-20), ("strana_active_visitors", "visits", 1),
                             ('strana_malloc_bytes{state="in_use"}', "malloc", 2**-20),
                             ('strana_malloc_bytes{state="free"}', "mfree", 2**-20),
                             ("strana_python_allocated_blocks", "pyblocks", 1e-6)):
        if m := re.search(rf"^{re.escape(name)} ([\d.e+]+)$", text, re.M):
            out[key] = float(m.group(1)) * scale
    tagged = r'^strana_duckdb_memory_tag_bytes\{tag="([^"]+)"\} ([\d.e+]+)$'
    tags = [(float(v), t) for t, v in re.findall(tagged, text, re.M)]
    if tags:
        used, tag = max(tags)
        out["top_tag"] = f"{tag}:{used / 2**20:.0f}"
    return out


def sample_loop(server: Server, stop: threading.Event, samples: list, began: float, inside: list) -> None:
    while not stop.is_set():
        rss = server.rss_mb()
        if rss is not None:
            samples.append((time.monotonic() - began, rss))
        inside.append({"t": time.monotonic() - began, **gauges(server.url), **server.rss_split_mb()})
        stop.wait(10)


def accepted(url: str) -> int:
    with urllib.request.urlopen(url + "/metrics", timeout=30) as r:
        text = r.read().decode()
    return int(sum(float(v) for v in re.findall(r"^strana_events_accepted_total\{[^}]*\} ([\d.e+]+)$", text, re.M)))


def stored_before(data_dir: Path) -> tuple[int, int]:
    """(events stored, the run number for the next run's seqs) of a stopped server's store."""
    import duckdb

    with duckdb.connect(str(data_dir / "strana.duckdb"), read_only=True) as db:
        n, top = db.execute("SELECT count(*), max(TRY_CAST(props['seq'] AS BIGINT)) FROM events").fetchone()
    return n, (top or 0) // RUN + 1


def slope_mb_per_min(samples: list[tuple[float, float]], after_s: float = 120) -> float:
    pts = [(t / 60, rss) for t, rss in samples if t >= after_s]
    if len(pts) < 2:
        return float("nan")
    mx, my = sum(x for x, _ in pts) / len(pts), sum(y for _, y in pts) / len(pts)
    den = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / den if den else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=int, default=10)
    ap.add_argument("--event-connections", type=int, default=48)
    ap.add_argument("--no-reads", action="store_true", help="ingest only (to see what the dashboard reads cost)")
    ap.add_argument("--rate", type=float, default=None, metavar="EVENTS_PER_S",
                    help="a fixed load instead of flat out: /api/event at this many requests/s, batches of 10 at "
                         "a tenth of it, pixels at a third (a soak at a rate the server holds, not at its ceiling)")
    ap.add_argument("--seconds", type=int, default=60, help="length of a 'minute' (shorter for a quick try)")
    ap.add_argument("--warm-up", type=int, default=2, metavar="MINUTES",
                    help="minutes left out of the RSS slopes (caches filling: visits, DuckDB's buffer, heap)")
    ap.add_argument("--from-store", type=Path, metavar="DATA_DIR",
                    help="start on a copy of this data directory (one kept by --keep): a server mid-day, with "
                         "today's events already stored, instead of an empty one")
    ap.add_argument("--keep", type=Path, metavar="DATA_DIR", help="move the data directory here at the end")
    ap.add_argument("--env", action="append", default=[], metavar="STRANA_X__Y=value",
                    help="a setting for the server, e.g. STRANA_SINK__MEMORY_LIMIT=256MB (repeatable)")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    folder = Path(tempfile.mkdtemp(prefix="strana-soakmax-"))
    before, run = 0, 0
    if args.from_store:
        if not (args.from_store / "strana.duckdb").exists():
            raise SystemExit(f"--from-store {args.from_store}: no strana.duckdb there (keep one with --keep DIR)")
        shutil.copytree(args.from_store, folder / "data")
        before, run = stored_before(folder / "data")
        print(f"starting on a copy of {args.from_store}: {before:,} events stored; this is run {run}", flush=True)
    env = {"STRANA_SERVER__TRUSTED_PROXIES": "127.0.0.1", "STRANA_SERVER__LOG_LEVEL": "warning",
           **dict(item.split("=", 1) for item in args.env)}
    server = Server(folder / "data", env=env).start()
    connections = {"event": args.event_connections, "batch": 4, "pixel": 8}
    stop, stats, samples = threading.Event(), {"reads": 0, "read_errors": 0, "read_seconds": []}, []
    inside: list[dict] = []
    began = time.monotonic()
    threads = [threading.Thread(target=sample_loop, args=(server, stop, samples, began, inside), daemon=True)]
    if not args.no_reads:
        threads.append(threading.Thread(target=read_loop, args=(server.url, stop, stats), daemon=True))
    for t in threads:
        t.start()
    rows = []
    try:
        print(f"{'min':>3} {'events/s':>9} {'ev p50':>7} {'ev p99':>7} {'batch/s':>8} {'b p99':>7} {'pixel/s':>8} "
              f"{'non2xx':>6} {'errors':>6} {'RSS MB':>7} {'anon':>6} {'file':>6} {'DuckDB':>7} {'visits':>7} "
              f"{'malloc':>7} {'m free':>7} {'py Mblk':>7} {'DuckDB top (MB)':>16}",
              flush=True)
        for n in range(args.minutes):
            r = minute(server.url, n, args.seconds, connections, folder, args.rate, run)
            rows.append(r)
            rss = samples[-1][1] if samples else float("nan")
            last, nan = (inside[-1] if inside else {}), float("nan")
            ev, batch, secs = r["event"], r["batch"], args.seconds
            print(f"{n + 1:>3} {ev['ok'] / secs:>9.0f} {ev['p50']:>7.1f} {ev['p99']:>7.1f} "
                  f"{batch['ok'] * 10 / secs:>8.0f} {batch['p99']:>7.1f} {r['pixel']['ok'] / secs:>8.0f} "
                  f"{sum(x['non2xx'] for x in r.values()):>6} {sum(x['errors'] for x in r.values()):>6} "
                  f"{rss:>7.1f} {last.get('RssAnon', nan):>6.0f} {last.get('RssFile', nan):>6.0f} "
                  f"{last.get('duckdb', nan):>7.1f} {last.get('visits', nan):>7.0f} "
                  f"{last.get('malloc', nan):>7.1f} {last.get('mfree', nan):>7.1f} {last.get('pyblocks', nan):>7.2f} "
                  f"{last.get('top_tag', '-'):>16}",
                  flush=True)
        stop.set()
        for t in threads:
            t.join(60)
        acked = accepted(server.url)
    finally:
        stop.set()
        server.stop()
    counts = {seq: n for seq, n in server.counts().items() if seq // RUN == run}
    stored = stored_before(server.data_dir)[0] - before
    if args.keep:
        shutil.rmtree(args.keep, ignore_errors=True)
        shutil.move(server.data_dir, args.keep)
        print(f"data directory kept in {args.keep} (start the next run on it with --from-store {args.keep})")
    shutil.rmtree(folder, ignore_errors=True)
    pixels = sum(r["pixel"]["ok"] for r in rows)
    tagged_ok = sum(r["event"]["ok"] + r["batch"]["ok"] * 10 for r in rows)
    stored_tagged = sum(counts.values())
    doubled = sum(1 for c in counts.values() if c > 1)
    first = rows[0]["event"]["p99"]
    worst = max(r["event"]["p99"] for r in rows[1:]) if len(rows) > 1 else first
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wrk shares them)")
    print(f"ingest over {args.minutes} min: {tagged_ok:,} tagged events answered 2xx as wrk counted them "
          f"({tagged_ok / (args.seconds * args.minutes):.0f}/s) + {pixels:,} pixel hits")
    print(f"accepted by the server (strana_events_accepted_total, all ways in): {acked:,}; rows stored"
          f"{' by this run' if before else ''}: {stored:,} "
          f"(lost: {max(0, acked - stored)}); tagged rows stored: "
          f"{stored_tagged:,} (distinct seqs {len(counts):,}); doubled seqs: {doubled}; "
          f"tagged answered 2xx but not stored: {max(0, tagged_ok - len(counts))}")
    print(f"reads: {stats['reads']} ok, {stats['read_errors']} failed; read round p99 "
          f"{sorted(stats['read_seconds'])[int(len(stats['read_seconds']) * 0.99) - 1] * 1000:.0f} ms"
          if stats["read_seconds"] else "reads: none")
    after = args.warm_up * args.seconds
    print(f"RSS: {samples[0][1]:.1f} MB at start, {samples[-1][1]:.1f} MB at the end, "
          f"slope after minute {args.warm_up}: {slope_mb_per_min(samples, after):+.2f} MB/min"
          if samples else "RSS: no samples")
    # DuckDB's share is bounded by [sink] memory_limit and swings with the read in flight at the sample;
    # what is left is everything else the process holds (Python, the visits table, glibc's heap, Granian)
    rest = [(x["t"], x["RssAnon"] + x["RssFile"] - x["duckdb"]) for x in inside
            if {"RssAnon", "RssFile", "duckdb"} <= x.keys()]
    if rest:
        print(f"RSS minus what DuckDB holds (its share is capped by memory_limit): {rest[0][1]:.1f} MB at start, "
              f"{rest[-1][1]:.1f} MB at the end, slope after minute {args.warm_up}: "
              f"{slope_mb_per_min(rest, after):+.2f} MB/min; DuckDB's largest: "
              f"{max(x['duckdb'] for x in inside if 'duckdb' in x):.1f} MB")
    print(f"event p99: first minute {first:.1f} ms, worst later minute {worst:.1f} ms "
          f"({'within' if worst <= 2 * first else 'OVER'} 2x)")


if __name__ == "__main__":
    main()
