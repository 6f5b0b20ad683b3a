"""A dashboard's cards for today on a big day: from the rollups of today so far, and from raw events.

    .venv/bin/python bench/today_reads.py [--events 3000000] [--recent 140000] [--runs 5] [--memory-limit 256MB]
                                          [--share 1]

Seeds one day of --events events (bench/queries.py's generator over one day instead of 30) into a DuckDB
file, stores all but the last --recent (~10 s of flat-out single events here), builds the partial
rollups (collector/rollups_today.py; timed), stores the rest, then times through the real query layer
each card of a dashboard's first load for `day` (bench/queries.py's list), with the card adding the
--recent events itself, against the same cards with the partial rows hidden (the raw path, as before).
Per card: p50 ms and the most memory DuckDB held while it ran (sampled every 2 ms from another cursor).
Then times one job step over the --recent events. Prints numbers, asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import threading
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from queries import EVENT_IDS, EVENTS_PER_VISIT, SEED_SQL, SITE, TODAY, dashboard  # noqa: E402

from collector import migrate, rollups_today  # noqa: E402
from reports import rollup  # noqa: E402
from reports.stats import answer  # noqa: E402


def seed(path: Path, events: int, recent: int) -> None:
    if path.exists():
        path.unlink()
    con = duckdb.connect(str(path))
    migrate.apply(con)
    visits = int(events / EVENTS_PER_VISIT)
    start = dt.datetime.combine(TODAY, dt.time(), tzinfo=dt.UTC)
    params = {"visits": visits, "visitors": int(visits * 0.6), "start": start, "site": SITE}
    sql = SEED_SQL.replace("{event_id}", EVENT_IDS["seq"]).replace("2592000000000", "86000000000")
    t = time.perf_counter()
    print(f"seeding ~{events:,} events of {TODAY} into {path} ...", flush=True)
    for statement in (s for s in sql.split(";") if s.strip()):
        con.execute(statement, {k: v for k, v in params.items() if f"${k}" in statement})
    n = con.execute("SELECT count(*) FROM seeded").fetchone()[0]
    for lo in range(0, n - recent, 100_000):  # in arrival order, as a server stores them
        con.execute("INSERT INTO events SELECT * FROM seeded WHERE rowid >= ? AND rowid < ? ORDER BY rowid",
                    [lo, min(lo + 100_000, n - recent)])
    con.execute("CHECKPOINT")
    t_build = time.perf_counter()
    how = rollups_today.refresh(con, SITE, TODAY, "UTC")
    print(f"  {n - recent:,} events stored; partial rollups {how} in {time.perf_counter() - t_build:.1f} s")
    con.execute("INSERT INTO events SELECT * FROM seeded WHERE rowid >= ? ORDER BY rowid", [n - recent])
    con.execute("CHECKPOINT")
    con.close()
    print(f"seeded {n:,} events in {time.perf_counter() - t:.1f} s ({recent:,} stored after the partial rows)")


def duckdb_peak(con, run) -> tuple[float, float, float]:
    """(ms, most MB DuckDB held, of which not its cache of the tables' blocks) for run()."""
    probe = con.cursor()
    peak, done = [0, 0], threading.Event()
    held = ("SELECT sum(memory_usage_bytes), sum(memory_usage_bytes) FILTER (WHERE tag <> 'BASE_TABLE') "
            "FROM duckdb_memory()")

    def sample():
        while not done.is_set():
            got = probe.execute(held).fetchone()
            peak[0], peak[1] = max(peak[0], got[0]), max(peak[1], got[1])
            done.wait(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    t = time.perf_counter()
    try:
        run()
    finally:
        ms = (time.perf_counter() - t) * 1000
        done.set()
        sampler.join()
        probe.close()
    return ms, peak[0] / 2**20, peak[1] / 2**20


def time_cards(con, runs: int, hidden: bool) -> dict[str, tuple[float, float, float]]:
    if hidden:  # as before: no partial rows, so a range of only today takes the raw path
        con.execute("BEGIN")
        con.execute("DELETE FROM rollup_partial_status")
    out = {}
    for name, body in dashboard("day", TODAY):
        answer(con, body, None)  # warm-up
        got = [duckdb_peak(con, lambda body=body: answer(con, body, None)) for _ in range(runs)]
        out[name] = (statistics.median(g[0] for g in got), max(g[1] for g in got), max(g[2] for g in got))
    if hidden:
        con.execute("ROLLBACK")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=3_000_000)
    ap.add_argument("--recent", type=int, default=140_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--data", type=Path, default=Path("/tmp/strana-bench"))
    ap.add_argument("--memory-limit", default="256MB", help="as [sink] memory_limit sets it")
    ap.add_argument("--share", type=int, default=1,
                    help=f"reports/rollup.py PARTIAL_SHARE for the partial column (1: read partials whenever "
                         f"possible; the server uses {rollup.PARTIAL_SHARE})")
    args = ap.parse_args()
    rollup.PARTIAL_SHARE = args.share
    args.data.mkdir(parents=True, exist_ok=True)
    path = args.data / f"today-{args.events}-{args.recent}.duckdb"
    seed(path, args.events, args.recent)
    con = duckdb.connect(str(path))
    con.execute("SET memory_limit = ?", [args.memory_limit])
    partial = time_cards(con, args.runs, hidden=False)
    raw = time_cards(con, args.runs, hidden=True)
    print(f"\n{'card (day = today)':28} {'partial ms':>10} {'raw ms':>8} {'ratio':>6} {'partial MB':>12} {'raw MB':>12}"
          f"   (p50 of {args.runs}; MB: most DuckDB held / of it, not table blocks)")
    for name, (ms, mb, qmb) in partial.items():
        rms, rmb, rqmb = raw[name]
        print(f"{name:28} {ms:10.1f} {rms:8.1f} {rms / ms:6.1f} {mb:6.1f}/{qmb:5.1f} {rmb:6.1f}/{rqmb:5.1f}")
    total, rtotal = sum(v[0] for v in partial.values()), sum(v[0] for v in raw.values())
    print(f"{'all cards':28} {total:10.1f} {rtotal:8.1f} {rtotal / total:6.1f}")
    ms, mb, qmb = duckdb_peak(con, lambda: rollups_today.refresh(con, SITE, TODAY, "UTC"))
    print(f"\njob step over the {args.recent:,} events stored since: {ms:.0f} ms, DuckDB at most {mb:.1f} MB "
          f"({qmb:.1f} MB not table blocks)")
    con.close()
    path.unlink()  # it now holds the stepped rows


if __name__ == "__main__":
    main()
