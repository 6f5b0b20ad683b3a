"""Time to a fully rendered dashboard over 10 M events (30 days, one site) in headless Chromium.

    .venv/bin/python bench/dashboard.py [--events 10000000] [--runs 5] [--data /tmp/strana-dash-bench]

Seeds `<data>/strana.duckdb` with bench/queries.py's DuckDB-SQL seeder when it
is missing, starts a real `strana serve` on it, and loads `/<site>` in Debian's
chromium (Playwright): the first load after the server starts (cold: columns
read from disk), then --runs more. A load is navigation start → the `load`
event: the server renders every card before it answers, so that is when the
page is complete. Also prints each run's server time (time to first byte).
Prints numbers, asserts nothing; the machine is shared, so compare runs made
on the same machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import StranaServer  # noqa: E402

from bench.queries import END, SITE, seed  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
TIMING = """() => {
  const n = performance.getEntriesByType('navigation')[0];
  return {ttfb: n.responseStart - n.startTime, load: n.loadEventEnd - n.startTime, bytes: n.transferSize};
}"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--data", type=Path, default=Path("/tmp/strana-dash-bench"))
    ap.add_argument("--path", default=f"/{SITE}?date={END.isoformat()}", help="the page to load")
    args = ap.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    store = args.data / "strana.duckdb"
    if not store.exists():
        seed(store, args.events, "v4")
    server = StranaServer(args.data).start(timeout=120)
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
            results = []
            for i in range(args.runs + 1):
                ctx = browser.new_context(viewport={"width": 1280, "height": 800})
                page = ctx.new_page()
                page.goto(server.url + args.path, wait_until="load", timeout=300_000)
                timing = page.evaluate(TIMING)
                cards = page.locator("section.card").count()
                ctx.close()
                results.append(timing)
                label = "cold (first load after start)" if i == 0 else f"warm run {i}"
                print(f"{label:32} load {timing['load']:8.0f} ms   server (TTFB) {timing['ttfb']:8.0f} ms   "
                      f"{cards} cards, {timing['bytes'] / 1024:.0f} kB", flush=True)
            browser.close()
        warm = [r["load"] for r in results[1:]]
        if warm:
            print(f"\nfully rendered dashboard: cold {results[0]['load']:.0f} ms, warm median "
                  f"{statistics.median(warm):.0f} ms (min {min(warm):.0f}, max {max(warm):.0f}); target < 1000 ms")
        t = time.perf_counter()
        n = httpx.post(server.url + "/api/v1/query", timeout=300, json={
            "site_id": SITE, "metrics": ["pageviews"], "date_range": "30d", "date": END.isoformat()}).json()
        print(f"(dataset: {n['results'][0]['metrics'][0]:,} pageviews in the period; that query took "
              f"{(time.perf_counter() - t) * 1000:.0f} ms over HTTP)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
