"""Soak: N minutes of mixed ingest plus dashboard reads; does memory stay flat, p99 steady, every 2xx stored once?

    .venv/bin/python bench/soak.py [--minutes 10] [--rate EVENTS_PER_S] [--ramp-seconds 8]

Starts `strana serve` (embedded default: spool + DuckDB, full enhancer chain)
on a free port. Without --rate it first ramps the single-event rate (doubling
from 50/s, each step --ramp-seconds long) and keeps the highest rate the
server sustained (>= 95% of the target answered 2xx with a p99 under 500 ms);
the step runs the whole mix below and the reader, and the client is one
asyncio process on the same cores, so that is the rate this machine can both
make and take. Then, for --minutes, an open-loop load:
single events at that rate, plus a pixel hit per 10 events and a batch of 10
per 20 events, each event tagged with a unique `seq` prop; every second a
reader fetches the aggregate stats, a stats query and the dashboard page.
Samples the server's RSS every 10 s and ingest p99 per minute. At the
end: SIGTERM, count rows per seq in the store, and print whether RSS stayed
flat (least-squares slope after minute 2), whether each minute's p99 stayed
within 2x the first minute's, and accepted vs stored (lost, doubled).
Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import httpx
from serve_support import UA, Server, event, exactly_once

TICK = 0.01  # the scheduler's step: requests due in this step are started together
RAMP_SEQS = 10**12  # the ramp's events: apart from the soak's, which are counted
MAX_IN_FLIGHT = 512  # more than this outstanding and a due request is counted as shed, not sent


class Load:
    """Open-loop sender: starts requests on schedule whatever the answers' latency (up to MAX_IN_FLIGHT)."""

    def __init__(self, client: httpx.AsyncClient, first_seq: int = 0):
        self.client = client
        self.seqs = itertools.count(first_seq)
        self.accepted: set[int] = set()
        self.latencies: list[tuple[float, float]] = []  # (sent at, seconds) of ingest requests
        self.errors = 0
        self.shed = 0
        self.in_flight = 0
        self.tasks: set[asyncio.Task] = set()

    async def _send(self, kind: str) -> None:
        self.in_flight += 1
        started = time.monotonic()
        try:
            if kind == "event":
                seqs = [next(self.seqs)]
                r = await self.client.post("/api/event", json=event(seqs[0]))
            elif kind == "pixel":
                seqs = [next(self.seqs)]
                e = event(seqs[0])
                r = await self.client.get(f"/p.gif?d=example.com&u={quote(e['u'])}&p={quote(json.dumps(e['p']))}")
            else:
                seqs = [next(self.seqs) for _ in range(10)]
                r = await self.client.post("/api/v1/batch", json={"events": [event(s) for s in seqs]})
            ok = 200 <= r.status_code < 300 and "x-strana-ignored" not in r.headers
            if ok and kind == "batch":
                ok = r.json()["accepted"] == 10
            if ok:
                self.accepted.update(seqs)
            else:
                self.errors += 1
            self.latencies.append((started, time.monotonic() - started))
        except httpx.HTTPError:
            self.errors += 1
        finally:
            self.in_flight -= 1

    def start(self, kind: str) -> None:
        if self.in_flight >= MAX_IN_FLIGHT:
            self.shed += 1
            return
        task = asyncio.create_task(self._send(kind))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run(self, rate: float, seconds: float, mixed: bool = True) -> None:
        """`rate` single events per second; with `mixed` also a pixel per 10 and a batch of 10 per 20 of them."""
        began = time.monotonic()
        sent = 0
        while (now := time.monotonic()) - began < seconds:
            due = int((now - began) * rate) - sent
            for _ in range(due):
                sent += 1
                self.start("event")
                if mixed and sent % 10 == 0:
                    self.start("pixel")
                if mixed and sent % 20 == 0:
                    self.start("batch")
            await asyncio.sleep(TICK)

    async def drain(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else (values[0] if values else 0.0)


async def ramp(url: str, step_seconds: float) -> float:
    """The highest single-event rate whose whole mix (pixels, batches, the reader) is answered: >= 95% 2xx
    and p99 < 500 ms, doubling from 50/s."""
    best = 0.0
    rate = 50.0
    stop = asyncio.Event()
    side = asyncio.create_task(reader(url, stop, {"reads": 0, "read_errors": 0, "read_seconds": []}))
    limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits, headers={"user-agent": UA}) as client:
        warm = Load(client, RAMP_SEQS + 5 * 10**11)  # connections, caches, first visitors: not measured
        await warm.run(100, 3, mixed=True)
        await warm.drain()
        while rate <= 12_800:
            load = Load(client, RAMP_SEQS + int(rate) * 1_000_000)
            began = time.monotonic()
            await load.run(rate, step_seconds)
            await load.drain()
            answered = len(load.accepted) / (rate * step_seconds * 1.6)  # + a pixel per 10, 10 in a batch per 20
            tail = p99([s for _, s in load.latencies]) * 1000
            print(f"  ramp {rate:7.0f}/s: {answered:6.1%} accepted, p99 {tail:7.1f} ms, shed {load.shed}, "
                  f"{time.monotonic() - began:.1f} s", flush=True)
            if answered < 0.95 or tail > 500:
                break
            best = rate
            rate *= 2
    stop.set()
    await side
    return best or 25.0


async def reader(url: str, stop: asyncio.Event, stats: dict) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30, headers={"user-agent": UA}) as client:
        while not stop.is_set():
            began = time.monotonic()
            for method, path, body in (("GET", "/api/v1/stats/aggregate?site=example.com", None),
                                       ("POST", "/api/v1/query", {"site_id": "example.com", "date_range": "day",
                                                                  "metrics": ["visitors", "pageviews"],
                                                                  "dimensions": ["event:page"]}),
                                       ("GET", "/example.com", None)):
                try:
                    r = await client.request(method, path, json=body)
                    stats["reads"] += 1
                    stats["read_errors"] += r.status_code >= 400
                except httpx.HTTPError:
                    stats["read_errors"] += 1
            stats["read_seconds"].append(time.monotonic() - began)
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, 1.0 - (time.monotonic() - began)))
            except TimeoutError:
                pass


async def sampler(server: Server, stop: asyncio.Event, samples: list, began: float) -> None:
    while not stop.is_set():
        rss = server.rss_mb()
        if rss is not None:
            samples.append((time.monotonic() - began, rss))
        try:
            await asyncio.wait_for(stop.wait(), 10)
        except TimeoutError:
            pass


def slope_mb_per_min(samples: list[tuple[float, float]]) -> float:
    xs, ys = [t / 60 for t, _ in samples], [r for _, r in samples]
    if len(xs) < 2:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


async def soak(server: Server, rate: float, minutes: float) -> tuple[Load, list, dict]:
    limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT)
    stop = asyncio.Event()
    samples: list[tuple[float, float]] = []
    stats = {"reads": 0, "read_errors": 0, "read_seconds": []}
    async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits,
                                 headers={"user-agent": UA}) as client:
        load = Load(client)
        began = time.monotonic()
        side = [asyncio.create_task(reader(server.url, stop, stats)),
                asyncio.create_task(sampler(server, stop, samples, began))]
        await load.run(rate, minutes * 60)
        await load.drain()
        stop.set()
        await asyncio.gather(*side)
    load.began = began
    return load, samples, stats


def report(load: Load, samples: list, stats: dict, counts: dict, rate: float, minutes: float) -> None:
    print(f"\nsoak: {minutes:g} min at {rate:.0f} single events/s (+ pixels, batches), "
          f"{len(load.latencies)} ingest requests, {load.errors} not accepted, {load.shed} shed by the client")
    per_minute: dict[int, list[float]] = {}
    for sent, seconds in load.latencies:
        per_minute.setdefault(int((sent - load.began) // 60), []).append(seconds)
    firsts = None
    worst = 0.0
    print("minute   requests   p50 ms   p99 ms")
    for minute in sorted(per_minute):
        values = per_minute[minute]
        tail = p99(values) * 1000
        firsts = firsts or tail
        worst = max(worst, tail / firsts)
        print(f"{minute + 1:6d} {len(values):10d} {statistics.median(values) * 1000:8.1f} {tail:8.1f}")
    print("RSS of the server (MB) every 10 s: " + " ".join(f"{r:.0f}" for _, r in samples))
    later = [(t, r) for t, r in samples if t >= 120] if minutes > 2.5 else samples[len(samples) // 3:]
    slope = slope_mb_per_min(later)
    print(f"memory: slope after warm-up {slope:+.2f} MB/min over {len(later)} samples -> "
          f"{'flat' if abs(slope) < 1.0 else 'GROWING' if slope > 0 else 'shrinking'} (flat: |slope| < 1 MB/min)")
    print(f"p99: worst minute {worst:.2f}x the first minute's -> {'steady' if worst <= 2 else 'DEGRADED'} "
          "(steady: within 2x)")
    reads = stats["read_seconds"]
    print(f"reads: {stats['reads']} (aggregate, query, dashboard page each second), {stats['read_errors']} errors, "
          f"p99 of a round of three {p99(reads) * 1000:.0f} ms")
    lost, doubled = exactly_once(load.accepted, counts)
    stored = sum(counts.values())
    print(f"accepted {len(load.accepted)}, stored {stored}, lost {lost}, doubled {doubled} -> "
          f"{'exactly once' if not lost and not doubled else 'NOT exactly once'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=None, help="single events/s (default: ramp first)")
    parser.add_argument("--ramp-seconds", type=float, default=8)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="strana-soak-")) / "data"
    server = Server(data).start()
    try:
        rate = args.rate
        if rate is None:
            print("ramp: the whole mix plus the reader, doubling the single-event rate")
            rate = asyncio.run(ramp(server.url, args.ramp_seconds))
            print(f"ramp: highest sustained rate {rate:.0f}/s")
        print(f"soak: {args.minutes:g} min at {rate:.0f}/s", flush=True)
        load, samples, stats = asyncio.run(soak(server, rate, args.minutes))
    finally:
        server.stop()
    counts = {seq: n for seq, n in server.counts().items() if seq < RAMP_SEQS}
    report(load, samples, stats, counts, rate, args.minutes)
    print(f"data: {data}")


if __name__ == "__main__":
    main()
