"""The batch path in one process, no HTTP: events/s and where the time goes. Prints numbers, asserts nothing.

    .venv/bin/python bench/batch.py [--requests 200] [--concurrency 16] [--profile]

Builds the app as `strana serve` does (create_app: full edge chain, memory bus,
worker, spool durability on a temporary data dir) and calls the
/api/v1/batch ASGI route directly with the bodies bench/ingest.py sends (500
events, a random client address each, 140 user agents, the usual referrers),
`--concurrency` requests at a time so group commits form as under load. Prints
events/s and, per stage, µs per event measured on the same bodies in
isolation: parse, edge chain, worker side (dedupe, put_session, to_arrow).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import PATHS, REFERRERS, UAS  # noqa: E402


def bodies(n_bodies: int, size: int, seed: int = 7) -> list[bytes]:
    rnd = random.Random(seed)
    uas = [ua.format(v=rnd.randint(100, 140)) for ua in UAS for _ in range(20)]

    def ip() -> str:
        return f"{rnd.randint(1, 223)}.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}"

    out = []
    for _ in range(n_bodies):
        events = [{"n": "pageview", "u": f"https://example.com{rnd.choice(PATHS)}", "d": "example.com", "ip": ip(),
                   "user_agent": rnd.choice(uas), "r": rnd.choice(REFERRERS)} for _ in range(size)]
        out.append(json.dumps({"events": events}).encode())
    return out


async def call(app, body: bytes) -> int:
    scope = {"type": "http", "method": "POST", "path": "/api/v1/batch", "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 5555), "query_string": b""}
    sent = False
    status = []

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    return status[0]


async def drive(app, payloads: list[bytes], requests: int, concurrency: int) -> tuple[float, dict]:
    queue = list(range(requests))
    codes: dict = {}

    async def client():
        while queue:
            i = queue.pop()
            code = await call(app, payloads[i % len(payloads)])
            codes[code] = codes.get(code, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return time.perf_counter() - started, codes


def stages(app, payloads: list[bytes]) -> dict[str, float]:
    """µs per event of each stage on its own, on fresh copies of the same bodies (never-seen event ids)."""
    from collector.events import to_arrow

    route = app.routes["/api/v1/batch"]
    runtime = app.runtime
    out = {}
    n = 0
    parsed = []
    started = time.perf_counter()
    for body in payloads:
        hits, _, _ = route._parse(body, time.time_ns() // 1000)
        parsed.append(hits)
        n += len(hits)
    out["parse"] = (time.perf_counter() - started) / n * 1e6
    started = time.perf_counter()
    kept = [runtime.edge.chain.run(hits).kept for hits in parsed]
    out["edge chain"] = (time.perf_counter() - started) / n * 1e6
    started = time.perf_counter()
    for hits in kept:
        hits.sort(key=lambda h: h.timestamp)
        runtime.worker.chain.run(hits)
    out["consumer chain"] = (time.perf_counter() - started) / n * 1e6
    started = time.perf_counter()
    for hits in kept:
        to_arrow(hits)
    out["to_arrow"] = (time.perf_counter() - started) / n * 1e6
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile the driven run, print the top 40")
    args = parser.parse_args()
    data = tempfile.mkdtemp(prefix="strana-batchbench-")
    os.environ.update({"STRANA_SERVER__LOG_LEVEL": "warning", "STRANA_INGEST__DURABILITY": "spool"})
    from collector.settings import load

    settings = load(None, {**os.environ, "STRANA_SERVER__DATA_DIR": data})
    from collector.app import create_app

    app = create_app(settings)
    payloads = bodies(20, args.batch_size)

    async def run():
        await app.runtime.start(jobs=False)
        try:
            await drive(app, payloads, 20, args.concurrency)  # warm up
            results = []
            for _ in range(args.rounds):
                if args.profile:
                    import cProfile
                    import pstats

                    prof = cProfile.Profile()
                    prof.enable()
                seconds, codes = await drive(app, payloads, args.requests, args.concurrency)
                if args.profile:
                    prof.disable()
                    pstats.Stats(prof).sort_stats("tottime").print_stats(40)
                results.append((seconds, codes))
            return results
        finally:
            await app.runtime.stop()

    results = asyncio.run(run())
    for seconds, codes in sorted(results, key=lambda r: r[0]):
        print(f"{args.requests} requests x {args.batch_size} events, {args.concurrency} at a time: "
              f"{args.requests * args.batch_size / seconds:,.0f} events/s ({seconds:.2f} s), answers {codes}")
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for stage, us in stages(app, payloads).items():
            best[stage] = min(us, best.get(stage, us))
    print("stages alone, best of rounds (µs/event): " + ", ".join(f"{k} {v:.2f}" for k, v in best.items()))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
