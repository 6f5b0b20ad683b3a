"""The edge enhancer chain alone: events/s and µs per event, warm and cold. Prints numbers, asserts nothing.

    .venv/bin/python bench/enhancers.py [--events 100000] [--geoip PATH]

The chain is built as app.py builds it (`edge_chain(settings, salts)`), with
an in-memory stand-in for the salt keeper. The stream is realistic: a mix of
desktop, phone and tablet browsers (with ~2% bots), IPv4 and IPv6 addresses,
referrers of every channel, some campaigns. "warm": 2,000 distinct UAs and
5,000 addresses that the caches have seen. "cold": every UA and every address
never seen before (a flood of made-up UAs), on a chain whose caches are full of
other strings. Only `Chain.run` is timed; building the hits is not. Each is
run --rounds times; the best and the median are printed. Target
(DESIGN.md): < 10 µs/event warm, < 50 µs cold.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.enhancers import edge_chain  # noqa: E402
from collector.events import Hit  # noqa: E402
from collector.settings import load  # noqa: E402

TEMPLATES = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.{b}.{p} "
    "Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.{b}.{p} "
    "Safari/537.36 Edg/{v}.0.{b}.{p}",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{v}.0) Gecko/20100101 Firefox/{v}.{p}",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.{p} "
    "Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.{b}.{p} Safari/537.36",
    "Mozilla/5.0 (Linux; Android {a}; {m}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.{b}.{p} Mobile "
    "Safari/537.36",
    "Mozilla/5.0 (Linux; Android {a}; {m}) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/{s}.0 "
    "Chrome/{v}.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{p} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.{p} Mobile/15E{b} Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 17_{p} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.{p} "
    "Mobile/15E{b} Safari/604.1",
    "Mozilla/5.0 (Linux; Android {a}; {t}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.{b}.{p} "
    "Safari/537.36",
]
BOTS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "curl/8.{p}.0",
    "python-requests/2.{p}.0", "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
]
PHONES = ["SM-S918B", "SM-A546B", "Pixel 8", "Pixel 7a", "K", "moto g power (2022)", "M2101K6G", "CPH2449"]
TABLETS = ["SM-X710", "SM-T870", "SM-X200", "Lenovo TB-X606F"]
REFERRERS = ["", "", "", "https://www.google.com/", "https://www.google.de/search?q=x", "https://www.bing.com/",
             "https://duckduckgo.com/", "https://news.ycombinator.com/item?id=1", "https://t.co/abc",
             "https://www.facebook.com/", "https://chatgpt.com/", "https://mail.google.com/mail/u/0/",
             "https://blog.example.org/post", "https://example.com/other", "https://github.com/x/y"]
PAGES = ["https://example.com/", "https://example.com/pricing", "https://example.com/blog/post-1",
         "https://example.com/?utm_source=newsletter&utm_medium=email", "https://example.com/?gclid=abc"]


class Salts:
    def __init__(self):
        self.salt = secrets.token_bytes(32)

    def pair(self, day: int):
        return self.salt, None


def user_agent(rng: random.Random, unique: int | None = None) -> str:
    if rng.random() < 0.02:
        template = rng.choice(BOTS)
    else:
        template = rng.choice(TEMPLATES)
    b = rng.randint(4000, 6500) if unique is None else 10_000 + unique
    return template.format(v=rng.randint(110, 127), b=b, p=rng.randint(0, 9), a=rng.randint(10, 14),
                           m=rng.choice(PHONES), t=rng.choice(TABLETS), s=rng.randint(20, 25))


def address(rng: random.Random) -> str:
    if rng.random() < 0.25:
        return f"2a02:{rng.randint(0x8100, 0x81ff):x}:{rng.getrandbits(16):x}::{rng.getrandbits(16):x}"
    return f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def hits(rng: random.Random, uas: list[str], ips: list[str], n: int) -> list[Hit]:
    return [Hit(site="example.com", url=rng.choice(PAGES), raw_referrer=rng.choice(REFERRERS), via="event",
                user_agent=uas[i % len(uas)], ip=ips[i % len(ips)], timestamp=1_790_000_000_000_000)
            for i in range(n)]


def run(chain, batch: list[Hit], size: int = 500) -> float:
    started = time.perf_counter()
    for i in range(0, len(batch), size):
        chain.run(batch[i:i + size])
    return time.perf_counter() - started


def measure(label: str, chain, make, rounds: int) -> None:
    """Best and median of `rounds` runs (the machine is shared: the best run is the least disturbed)."""
    results = []
    for _ in range(rounds):
        batch = make()
        before = dict(chain.seconds)
        seconds = run(chain, batch)
        steps = {name: (chain.seconds[name] - before[name]) / len(batch) * 1e6 for name in chain.names}
        results.append((seconds / len(batch) * 1e6, steps))
    results.sort(key=lambda r: r[0])
    best, steps = results[0]
    median = results[len(results) // 2][0]
    n = len(batch)
    print(f"{label:5s} {n:>8,d} events x {rounds}: best {1e6 / best:>9,.0f} events/s = {best:5.1f} µs/event, "
          f"median {median:5.1f} µs/event")
    print("      per step in the best run (µs/event): " + ", ".join(f"{k} {v:.1f}" for k, v in steps.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--geoip", default="", help="City .mmdb (default: the bundled 2018 GeoLite2 file)")
    args = parser.parse_args()
    settings = load(None, {**os.environ, "STRANA_GEOIP__DATABASE": args.geoip})
    rng = random.Random(7)

    started = time.perf_counter()
    chain = edge_chain(settings, Salts())
    print(f"chain built in {time.perf_counter() - started:.2f} s: {' → '.join(chain.names)}")

    uas = [user_agent(rng) for _ in range(2000)]
    ips = [address(rng) for _ in range(5000)]
    run(chain, hits(rng, uas, ips, 10_000))  # warm the caches
    measure("warm", chain, lambda: hits(rng, uas, ips, args.events), args.rounds)

    n_cold = max(args.events // 5, 1)
    unique = iter(range(10**9))

    def cold():  # never seen: a unique build number in every UA, a fresh random address
        return hits(rng, [user_agent(rng, unique=next(unique)) for _ in range(n_cold)],
                    [address(rng) for _ in range(n_cold)], n_cold)

    measure("cold", chain, cold, args.rounds)


if __name__ == "__main__":
    main()
