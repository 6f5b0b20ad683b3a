"""SIGKILL of the embedded server at random moments under load, N rounds (default 20): is every 2xx stored once?

    .venv/bin/python bench/faults.py [--rounds 20] [--concurrency 48]

Each round starts `strana serve` on the same data folder, fires single events
and batches (each event tagged with a unique `seq` prop) from 48 concurrent
clients, and SIGKILLs the whole process group at a random moment 0.5-4 s in.
After the last round one more start replays the spool and a SIGTERM closes it;
then the store is counted per seq. Prints per round accepted / stored / lost /
doubled, and the totals. Asserts nothing (tests/test_durability.py keeps 3
rounds in the suite).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import tempfile
import threading
import time
from pathlib import Path

import httpx
from serve_support import UA, Server, event, exactly_once

ROUND = 10**9  # seqs of round n: n * ROUND ..


async def fire(url: str, base: int, concurrency: int, accepted: set, stop: threading.Event) -> int:
    """Send until `stop` or the server dies; returns how many seqs were tried."""
    tried = 0

    async def one(client: httpx.AsyncClient) -> None:
        nonlocal tried
        while not stop.is_set():
            seq = base + tried  # a round's seqs are base .. base + 10**9 - 1 (batches from base + 5 * 10**8)
            tried += 1
            try:
                if seq % 10 == 0:  # a batch of 5 events, ids from the seq: a retry would not double them
                    first = base + 500_000_000 + (seq - base) * 5
                    seqs = range(first, first + 5)
                    body = {"events": [{**event(s), "event_id": f"f-{s}"} for s in seqs]}
                    r = await client.post("/api/v1/batch", json=body)
                else:
                    seqs = [seq]
                    r = await client.post("/api/event", json=event(seq))
            except httpx.HTTPError:
                await asyncio.sleep(0.01)  # refused or cut off: not accepted
                continue
            if 200 <= r.status_code < 300 and "x-strana-ignored" not in r.headers:
                accepted.update(seqs)

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits, headers={"user-agent": UA}) as client:
        await asyncio.gather(*(one(client) for _ in range(concurrency)))
    return tried


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=48)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    data = Path(tempfile.mkdtemp(prefix="strana-faults-")) / "data"
    rounds: list[tuple[int, set[int], float]] = []
    for n in range(args.rounds):
        server = Server(data).start()
        accepted: set[int] = set()
        stop = threading.Event()
        base = n * ROUND
        sender = threading.Thread(target=asyncio.run,
                                  args=(fire(server.url, base, args.concurrency, accepted, stop),))
        sender.start()
        after = rng.uniform(0.5, 4.0)
        time.sleep(after)  # a random moment under load: the point of this script
        server.stop(signal.SIGKILL)
        stop.set()
        sender.join(60)
        rounds.append((base, accepted, after))
        print(f"round {n + 1:2d}: SIGKILL after {after:.1f} s, {len(accepted)} events accepted", flush=True)
    final = Server(data).start()
    final.stop()
    counts = final.counts()
    print(f"\n{'round':>5} {'accepted':>9} {'stored':>8} {'lost':>5} {'doubled':>8}")
    total = [0, 0, 0, 0]
    for n, (_, accepted, _) in enumerate(rounds):
        mine = {s: c for s, c in counts.items() if s // ROUND == n}
        lost, doubled = exactly_once(accepted, mine)
        stored = sum(mine.values())
        for i, v in enumerate((len(accepted), stored, lost, doubled)):
            total[i] += v
        print(f"{n + 1:>5} {len(accepted):>9} {stored:>8} {lost:>5} {doubled:>8}")
    print(f"{'total':>5} {total[0]:>9} {total[1]:>8} {total[2]:>5} {total[3]:>8}")
    print("stored may exceed accepted: a request whose answer the SIGKILL cut off may still have been stored "
          f"(that is not a double). Data: {data}")


if __name__ == "__main__":
    main()
