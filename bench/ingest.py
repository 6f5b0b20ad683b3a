# ruff: noqa: E501 -- Lua snippets read better unwrapped
"""Ingest benchmark: single events, batches and pixels against a running `strana serve`, next to a bare floor.

    .venv/bin/python bench/ingest.py [--duration 15] [--connections 64]

Starts a bare Granian app (202, nothing else) on ASGI, the floor the target is
set against, and on RSGI, the protocol `strana serve` speaks; then Strana
(embedded default, full enhancer chain, durable group commit), all on free
loopback ports. It drives each
with wrk (Debian package `wrk`) for a fixed time with realistic URLs, referrers,
user agents and client addresses (sent as X-Forwarded-For; the bench trusts
127.0.0.1 as a proxy so GeoIP and visitor ids see many visitors), then prints
requests/s, events/s, p50/p99 latency, errors, events stored vs accepted, and
the single-event rate as a ratio of each floor. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

UAS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.{v} "
    "Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{v} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 "
    "Mobile Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_{v} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 "
    "Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 "
    "Safari/537.36 Edg/{v}.0.0.0",
]
REFERRERS = ["", "", "", "https://www.google.com/", "https://news.ycombinator.com/", "https://www.reddit.com/r/x/",
             "https://duckduckgo.com/", "https://t.co/abc", "https://chatgpt.com/", "https://blog.example.org/post"]
PATHS = ["/", "/pricing", "/blog/", "/docs/start", "/about", "/blog/how-we-built-it", "/signup", "/docs/api"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up in {timeout}s")


def lua_script(kind: str, batch_size: int) -> str:
    rnd = random.Random(7)
    uas = [ua.format(v=rnd.randint(100, 140)) for ua in UAS for _ in range(20)]
    lua = ["local uas = " + "{" + ",".join(json.dumps(u) for u in uas) + "}",
           "local refs = {" + ",".join(json.dumps(r) for r in REFERRERS) + "}",
           "local paths = {" + ",".join(json.dumps(p) for p in PATHS) + "}",
           "math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))",
           "local function ip() return string.format('%d.%d.%d.%d', math.random(1,223), math.random(0,255), "
           "math.random(0,255), math.random(1,254)) end"]
    if kind == "event":
        lua.append("""
request = function()
  local body = '{"n":"pageview","u":"https://example.com' .. paths[math.random(#paths)] .. '?utm_source=bench","d":"example.com","r":"' .. refs[math.random(#refs)] .. '"}'
  return wrk.format("POST", "/api/event", {["Content-Type"]="text/plain", ["User-Agent"]=uas[math.random(#uas)], ["X-Forwarded-For"]=ip()}, body)
end""")
    elif kind == "pixel":
        lua.append("""
request = function()
  return wrk.format("GET", "/p.gif?d=example.com&u=https%3A%2F%2Fexample.com" .. paths[math.random(#paths)], {["User-Agent"]=uas[math.random(#uas)], ["X-Forwarded-For"]=ip()})
end""")
    else:
        lua.append(f"""
local bodies = {{}}
for b = 1, 20 do
  local items = {{}}
  for i = 1, {batch_size} do
    items[i] = '{{"n":"pageview","u":"https://example.com' .. paths[math.random(#paths)] .. '","d":"example.com","ip":"' .. ip() .. '","user_agent":"' .. uas[math.random(#uas)] .. '","r":"' .. refs[math.random(#refs)] .. '"}}'
  end
  bodies[b] = '{{"events":[' .. table.concat(items, ",") .. ']}}'
end
request = function()
  return wrk.format("POST", "/api/v1/batch", {{["Content-Type"]="application/json"}}, bodies[math.random(#bodies)])
end""")
    return "\n".join(lua)


def run_wrk(url: str, script: str, duration: int, connections: int, threads: int = 2) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", f.name, url],
                         capture_output=True, text=True, check=True).stdout
    os.unlink(f.name)

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]

    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "requests": requests,
            "non2xx": non2xx, "errors": errors, "p50": ms("50%"), "p99": ms("99%")}


def stored_events(url: str) -> int:
    with urllib.request.urlopen(f"{url}/api/v1/stats/aggregate?site=example.com&period=all", timeout=60) as r:
        return json.loads(r.read())["results"]["events"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=15, help="seconds per phase")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--durability", choices=["spool", "commit"], default="spool",
                        help="what a 2xx waits for ([ingest] durability)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install -y wrk")

    procs = []
    try:
        floors = {}
        for step, (interface, target) in enumerate((("asgi", "bench.bare_app:app"), ("rsgi", "bench.bare_app:rsgi")),
                                                   start=1):
            port = free_port()
            procs.append(subprocess.Popen([str(Path(PY).parent / "granian"), "--interface", interface, "--loop",
                                           "uvloop", "--workers", "1", "--host", "127.0.0.1", "--port", str(port),
                                           "--no-log", target], cwd=ROOT, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
            bare = f"http://127.0.0.1:{port}"
            wait_http(bare + "/")
            print(f"[{step}/5] floor: bare Granian {interface.upper()} app answering 202, {args.duration}s ...",
                  flush=True)
            floors[interface] = run_wrk(bare, lua_script("event", 1).replace("/api/event", "/"), args.duration,
                                        args.connections)
            procs.pop().terminate()

        data = tempfile.mkdtemp(prefix="strana-bench-")
        port = free_port()
        env = {**os.environ, "STRANA_SERVER__TRUSTED_PROXIES": "127.0.0.1", "STRANA_SERVER__LOG_LEVEL": "warning",
               "STRANA_INGEST__DURABILITY": args.durability}
        procs.append(subprocess.Popen([PY, "-m", "collector.cli", "serve", "--port", str(port), "--data-dir", data],
                                      cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/healthz")
        results = {}
        for step, (kind, per) in enumerate((("event", 1), ("batch", args.batch_size), ("pixel", 1)), start=3):
            print(f"[{step}/5] strana: {kind} x{per}, {args.duration}s ...", flush=True)
            before = stored_events(url)
            r = run_wrk(url, lua_script(kind, args.batch_size), args.duration, args.connections)
            r["accepted"] = (r["requests"] - r["non2xx"]) * per
            r["stored"] = stored_events(url) - before
            r["eps"] = r["rps"] * per
            results[kind] = r
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)

    print()
    print(f"{'phase':<18}{'req/s':>10}{'events/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'sock err':>9}"
          f"{'accepted':>10}{'stored':>10}")
    for interface, floor in floors.items():
        print(f"{'floor ' + interface.upper():<18}{floor['rps']:>10.0f}{'':>11}{floor['p50']:>9.2f}"
              f"{floor['p99']:>9.2f}{floor['non2xx']:>9}{floor['errors']:>9}")
    for kind, r in results.items():
        print(f"{kind:<18}{r['rps']:>10.0f}{r['eps']:>11.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}{r['non2xx']:>9}"
              f"{r['errors']:>9}{r['accepted']:>10}{r['stored']:>10}")
    ratio = results["event"]["rps"] / floors["asgi"]["rps"]
    native = results["event"]["rps"] / floors["rsgi"]["rps"]
    print(f"\ndurability: {args.durability}; load average at the end: {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores (the floor and Strana share them with wrk)")
    print(f"\nsingle-event ingest = {ratio:.1%} of the ASGI floor (target >= 30%), {native:.1%} of the RSGI "
          f"floor (Strana's own protocol); "
          f"batch = {results['batch']['eps']:.0f} events/s (target >= 100,000); "
          f"lost = {sum(max(0, r['accepted'] - r['stored']) for r in results.values())} (accepted but not stored; "
          "stored may exceed accepted: wrk does not count answers that arrive after its deadline)")


if __name__ == "__main__":
    main()
