"""Python SDK benchmark: the caller's cost of track() and the sustained throughput to a local collector.

    .venv/bin/python bench/sdk.py [--events 100000]

Starts `strana serve` on a free port with a temporary data folder, then
1. times track() / pageview() on the caller's thread (µs per call; the sender thread runs meanwhile,
   as it would in an app, so its share of the GIL is included), median of chunks;
2. sends --events events as fast as the caller can queue them and reports events/s until flush()
   returns, i.e. until the collector has answered 2xx for all of them (committed to DuckDB).
Prints numbers, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import strana_sdk

ROOT = Path(__file__).resolve().parent.parent
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_collector(data_dir: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "collector.cli", "serve", "--host", "127.0.0.1", "--port",
                             str(port), "--data-dir", data_dir], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("strana serve did not start")


def per_call_us(fn, calls: int, chunks: int = 20) -> float:
    times = []
    per = calls // chunks
    for _ in range(chunks):
        t0 = time.perf_counter_ns()
        for _ in range(per):
            fn()
        times.append((time.perf_counter_ns() - t0) / per / 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--calls", type=int, default=200_000)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as data_dir:
        proc, url = start_collector(data_dir)
        try:
            print(f"python {sys.version.split()[0]}, strana-sdk {strana_sdk.__version__}, collector {url}")

            client = strana_sdk.Client(url, site="bench.example", batch_size=500, max_queue=4 * args.calls)
            props = {"plan": "pro", "step": "2"}
            cases = {
                "track(name)": lambda: client.track("signup"),
                "track(name, props, revenue, ip, user_agent)": lambda: client.track(
                    "purchase", props=props, revenue=(9.5, "EUR"), ip="203.0.113.9", user_agent=UA),
                "pageview(url, referrer, user_agent, ip)": lambda: client.pageview(
                    "https://bench.example/pricing", referrer="https://news.ycombinator.com/", user_agent=UA,
                    ip="203.0.113.9"),
            }
            floor = per_call_us(lambda: None, args.calls)
            print(f"\ncaller's cost (median of 20 chunks of {args.calls // 20} calls; empty lambda call "
                  f"{floor:.3f} µs):")
            for label, fn in cases.items():
                print(f"  {label:48s} {per_call_us(fn, args.calls):6.2f} µs/call")
            client.flush(timeout=120)
            client.shutdown(timeout=30)
            print(f"  after flush: {client.stats}")

            for batch_size in (100, 500):
                client = strana_sdk.Client(url, site="bench.example", batch_size=batch_size, max_queue=args.events)
                t0 = time.perf_counter()
                for i in range(args.events):
                    client.track("load", props={"i": i}, ip="203.0.113.9", user_agent=UA)
                queued = time.perf_counter() - t0
                ok = client.flush(timeout=600)
                total = time.perf_counter() - t0
                stats = client.stats
                client.shutdown(timeout=30)
                print(f"\nthroughput, batch_size={batch_size}: {args.events} events queued in {queued:.2f}s, "
                      f"all answered 2xx after {total:.2f}s -> {stats.sent / total:,.0f} events/s "
                      f"(flush ok={ok}, {stats})")
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(60)


if __name__ == "__main__":
    main()
