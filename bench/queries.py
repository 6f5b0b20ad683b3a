"""Dashboard query timing over 10 M events (30 days, one site), and bytes per event on disk.

    .venv/bin/python bench/queries.py [--events 10000000] [--runs 5] [--data /tmp/strana-bench] [--reseed]

Seeds a DuckDB file with DuckDB SQL itself (range() + hash-based columns:
zipf-like pages, visits of 1-10 pageviews with ~40% bounces, engagement and
custom events, sources, UTMs, countries, devices), in arrival (time) order as
the collector writes them, with time-ordered session ids, event ids as ingest makes them (one process's
prefix + a counter; --event-id, --client-ids for other mixes) and the
visit rollups put_session stamps (visit_seq, interaction_seq, duration_delta:
computed here with window functions, as migration 005 backfills them). Visitor ids are keyed by the UTC
day the visit began, as the daily salt and put_session's prev_visitor_id make them. Builds the daily rollups
(migrations 007-008, collector/rollups.py; the days not built yet, or built by an older rollup version, are
built and timed), prints bytes per event (the whole file / the events) and each column's share
(bench/storage.py). Then times, through the real query layer
(reports/query: parse → plan → SQL → result, in process, no HTTP), the queries
a dashboard's first load makes: p50/p95 per query over --runs runs, and the
whole first load run sequentially, for several periods (--periods): `30d` and `7d` (whole days, all rolled
up), `month` and `day` with today = the data's last day (2026-10-31) *not* rolled up (its rollups are hidden
in a transaction that is rolled back), as the dashboard sees them before the hourly job has run; then `30d`
again without rollups (the raw path). The seeded file is kept and reused (--reseed to seed again).
Prints numbers, asserts nothing. The machine is shared, so numbers are noisy: compare runs on the same machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from storage import report as storage_report  # noqa: E402 -- bench/storage.py, beside this file

from collector import migrate, rollups  # noqa: E402
from reports import rollup  # noqa: E402
from reports.stats import answer  # noqa: E402

SITE = "bench.example"
END = dt.date(2026, 11, 1)  # the 30 days before this date hold the data
EVENTS_PER_VISIT = 5.4  # measured mean of the generator below; sizes the number of visits

SEED_SQL = """
CREATE TEMP TABLE visits AS
SELECT i AS sid,
       hash(i, 'visitor') % $visitors AS vid,
       $start::TIMESTAMPTZ + to_microseconds((hash(i, 'start') % 2592000000000)::BIGINT) AS t0,
       (CASE WHEN hash(i, 'bounce') % 100 < 40 THEN 1 ELSE 2 + hash(i, 'pages') % 9 END)::BIGINT AS n,
       (hash(i, 'source') % 100)::BIGINT AS src
FROM range($visits) t(i);

CREATE TEMP TABLE pv AS
SELECT v.*, j.j AS j,
       t0 + to_seconds((j.j * (10 + hash(sid, j.j, 'gap') % 170)::BIGINT)) AS ts,
       CASE WHEN hash(sid, j.j, 'page') % 10 < 2 THEN '/'
            ELSE '/p/' || floor(exp((hash(sid, j.j, 'zipf') % 1000000) / 1000000.0 * ln(3000)))::INT END AS path
FROM visits v, LATERAL (SELECT unnest(range(v.n)) AS j) j;

CREATE TEMP TABLE raw AS
SELECT sid, vid, t0, j, src, ts, path, 'pageview' AS name, true AS interactive, NULL::UTINYINT AS scroll,
       NULL::UINTEGER AS eng, NULL::DOUBLE AS rev FROM pv
UNION ALL
SELECT sid, vid, t0, j, src, ts + INTERVAL 5 SECOND, path, 'engagement', false, (hash(sid, j, 's') % 101)::UTINYINT,
       (500 + hash(sid, j, 'e') % 120000)::UINTEGER, NULL FROM pv WHERE hash(sid, j, 'eng') % 10 < 3
UNION ALL
SELECT sid, vid, t0, j, src, ts + INTERVAL 2 SECOND, path,
       CASE hash(sid, j, 'which') % 4 WHEN 0 THEN 'Signup' WHEN 1 THEN 'Download' WHEN 2 THEN 'Outbound Link: Click'
            ELSE 'Purchase' END, true, NULL, NULL,
       CASE WHEN hash(sid, j, 'which') % 4 = 3 THEN 5 + (hash(sid, j, 'rev') % 20000) / 100.0 END
FROM pv WHERE hash(sid, j, 'custom') % 100 < 5;

CREATE TEMP TABLE seeded AS
SELECT {event_id} AS event_id, $site, name, ts,
       ts + to_milliseconds((hash(sid, j, name, 'lag') % 900)::BIGINT), 'event', $site, path, NULL,
       CASE WHEN j = 0 THEN ['https://www.google.com/', 'https://news.ycombinator.com/', 'https://t.co/x',
                             'https://duckduckgo.com/', NULL, NULL, NULL, NULL][1 + src % 8] END,
       NULL,
       CASE WHEN j = 0 THEN ['Google', 'Hacker News', 'Twitter', 'DuckDuckGo', 'Newsletter', 'Bing', NULL, NULL]
                            [1 + src % 8] END,
       CASE WHEN j = 0 THEN ['Organic Search', 'Social', 'Social', 'Organic Search', 'Email', 'Paid Search',
                             'Direct', 'Direct'][1 + src % 8] ELSE 'Direct' END,
       CASE WHEN j = 0 AND src % 8 IN (4, 5) THEN ['newsletter', 'bing'][src % 8 - 3] END,
       CASE WHEN j = 0 AND src % 8 IN (4, 5) THEN ['email', 'cpc'][src % 8 - 3] END,
       CASE WHEN j = 0 AND src % 8 IN (4, 5) THEN ['november', 'brand'][src % 8 - 3] END,
       NULL, NULL, NULL,
       ['US', 'DE', 'GB', 'FR', 'IN', 'BR', 'CA', 'NL', 'JP', 'ES', 'US', 'US', 'DE', 'PL', 'SE', 'IT']
           [(1 + hash(vid, 'c') % 16)::BIGINT],
       NULL, NULL,
       ['Chrome', 'Safari', 'Firefox', 'Edge', 'Chrome', 'Chrome', 'Samsung Internet', 'Opera']
           [(1 + hash(vid, 'b') % 8)::BIGINT],
       (100 + hash(vid, 'bv') % 32)::VARCHAR,
       ['Windows', 'Mac', 'iOS', 'Android', 'Linux', 'Windows', 'Android', 'iOS'][(1 + hash(vid, 'o') % 8)::BIGINT],
       NULL,
       ['desktop', 'desktop', 'mobile', 'mobile', 'desktop', 'desktop', 'mobile', 'tablet']
           [(1 + hash(vid, 'o') % 8)::BIGINT],
       hash(vid, 'id', epoch_us(t0) // 86400000000) >> 1,
       (epoch_ms(t0) << 22) | (hash(sid, 'id') & 4194303), interactive,
       CASE WHEN name = 'Signup' THEN MAP {'plan': ['free', 'pro'][(1 + hash(sid, 'plan') % 2)::BIGINT]} END,
       rev, CASE WHEN rev IS NOT NULL THEN 'EUR' END, scroll, eng,
       row_number() OVER w,
       CASE WHEN interactive AND name <> 'engagement'
            THEN sum((interactive AND name <> 'engagement')::INTEGER) OVER w END,
       coalesce(epoch_us(ts) - epoch_us(lag(ts) OVER w), 0)
FROM raw
WINDOW w AS (PARTITION BY sid ORDER BY ts ROWS UNBOUNDED PRECEDING)
ORDER BY ts;
"""


TODAY = END - dt.timedelta(days=1)  # the data's last day, taken as today by `month` and `day`
PERIODS = {  # name -> (date_range, the request's today, the first day whose rollups are hidden or None)
    "30d": ("30d", END, None),
    "7d": ("7d", END, None),
    "month": ("month", TODAY, TODAY),
    "day": ("day", TODAY, TODAY),
}


def dashboard(period: str = "30d", today: dt.date = END) -> list[tuple[str, dict]]:
    base = {"site_id": SITE, "date_range": period, "date": today.isoformat()}
    series = "time:day" if period != "day" else "time:hour"  # what `time` means for the period
    cards = [
        ("aggregate+comparison", {"metrics": ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate",
                                              "visit_duration"],
                                  "include": {"comparisons": {"mode": "previous_period"}}}),
        (f"timeseries:{series[5:]}", {"metrics": ["visitors"], "dimensions": [series]}),
    ]
    for dim in ("event:page", "visit:entry_page", "visit:exit_page", "visit:source", "visit:channel",
                "visit:country", "visit:device", "visit:browser", "visit:os", "event:name"):
        metrics = ["visitors", "events"] if dim == "event:name" else ["visitors"]
        cards.append((f"top10 {dim}", {"metrics": metrics, "dimensions": [dim], "pagination": {"limit": 10}}))
    return [(name, {**base, **body}) for name, body in cards]


# Event ids as collector/events.py new_event_id makes them: one process's prefix, then a counter in arrival
# (= storage) order. v7 and v4 are the layouts ids had before, kept to compare.
EVENT_IDS = {
    "seq": "(((1790000000000::UHUGEINT << 80) | (8::UHUGEINT << 76) | (1234::UHUGEINT << 64) | (2::UHUGEINT << 62) "
           "| (987654::UHUGEINT << 40)) + (row_number() OVER (ORDER BY ts))::UHUGEINT)::UUID",
    "v7": "((epoch_ms(ts)::UHUGEINT << 80) | (gen_random_uuid()::UHUGEINT & ((1::UHUGEINT << 76) - 1)) "
          "| (7::UHUGEINT << 76))::UUID",
    "v4": "gen_random_uuid()",
}


# A server checkpoints when its WAL passes 16 MiB (DuckDB's default), ~60,000 events at ~276 bytes of WAL
# each (measured): a file written that way takes ~2.5 bytes per event more than one written in one go.
CHECKPOINT_EVERY = 60_000


def seed(path: Path, events: int, uuid_kind: str, client_ids: float = 0.0,
         checkpoint_every: int = CHECKPOINT_EVERY) -> None:
    if path.exists():
        path.unlink()
    con = duckdb.connect(str(path))
    migrate.apply(con)
    visits = int(events / EVENTS_PER_VISIT)
    t = time.perf_counter()
    print(f"seeding ~{events:,} events ({visits:,} visits) into {path} ...", flush=True)
    start = dt.datetime.combine(END - dt.timedelta(days=30), dt.time(), tzinfo=dt.UTC)
    params = {"visits": visits, "visitors": int(visits * 0.6), "start": start, "site": SITE}
    event_id = EVENT_IDS[uuid_kind]
    if client_ids:  # a share of events sent with ids of their own (the Python SDK sends a uuid4 with each)
        event_id = (f"CASE WHEN hash(sid, j, name, 'client') % 100000 < {round(client_ids * 1000)} "
                    f"THEN gen_random_uuid() ELSE {event_id} END")
    for i, statement in enumerate(s for s in SEED_SQL.replace("{event_id}", event_id).split(";") if s.strip()):
        used = {k: v for k, v in params.items() if f"${k}" in statement}
        con.execute(statement, used)
        print(f"  step {i + 1}/5 done at {time.perf_counter() - t:.1f} s", flush=True)
    # Stored in arrival order as a server writes them: inserts of 1,000 events (the spool loader's batches
    # are smaller still), a checkpoint every `checkpoint_every` events.
    n = con.execute("SELECT count(*) FROM seeded").fetchone()[0]
    step = min(1000, checkpoint_every) if checkpoint_every else n
    checkpoints, since = 0, 0
    for lo in range(0, n, step):
        con.execute("INSERT INTO events SELECT * FROM seeded WHERE rowid >= ? AND rowid < ? ORDER BY rowid",
                    [lo, lo + step])
        since += step
        if since >= (checkpoint_every or n) or lo + step >= n:
            con.execute("CHECKPOINT")
            checkpoints, since = checkpoints + 1, 0
    print(f"  step 5/5 done at {time.perf_counter() - t:.1f} s ({checkpoints} checkpoints)", flush=True)
    con.close()
    print(f"seeded in {time.perf_counter() - t:.1f} s", flush=True)


def storage(path: Path) -> None:
    """Bytes per event: the whole file (events, rollups, every other table) and each column's share."""
    print(f"\n== storage ({'with' if _rolled_up(path) else 'without'} the daily rollups) ==")
    storage_report(path)


def _rolled_up(path: Path) -> bool:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM rollup_status").fetchone()[0] > 0
    finally:
        con.close()


def build(path: Path, again: bool) -> None:
    con = duckdb.connect(str(path))
    migrate.apply(con)
    if again:
        con.execute("DELETE FROM rollup_status")
    t = time.perf_counter()
    now = dt.datetime.combine(END, dt.time(1, 30), tzinfo=dt.UTC)
    n = rollups.build_pending(con, lambda site: "UTC", now=now, rebuild=0)
    took = time.perf_counter() - t
    if n:
        con.execute("CHECKPOINT")
        print(f"daily rollups (version {rollups.VERSION}): {n} site-days built in {took:.1f} s "
              f"({took / n:.2f} s per site-day)")
    rows = con.execute("SELECT count(*) FROM rollup_days").fetchone()[0]
    print(f"daily rollups: {rows:,} rows")
    con.close()


def bench(path: Path, runs: int, periods: list[str]) -> None:
    for name in periods:
        period, today, hidden = PERIODS[name]
        note = f", rollups of {hidden} and after hidden (not rolled up yet)" if hidden else ""
        print(f"\n== {name}: date_range {period!r}, today {today}{note} ==")
        bench_once(path, runs, period, today, hidden)
    real = rollup.rows
    rollup.rows = lambda *args: None
    try:
        print("\n== 30d without rollups (raw path) ==")
        bench_once(path, runs, "30d", END, None)
    finally:
        rollup.rows = real


MEMORY_LIMIT = {"value": ""}  # --memory-limit: as [sink] memory_limit sets it in a server ("": DuckDB's default)


def bench_once(path: Path, runs: int, period: str, today: dt.date, hidden: dt.date | None) -> None:
    con = duckdb.connect(str(path))
    if MEMORY_LIMIT["value"]:
        con.execute("SET memory_limit = ?", [MEMORY_LIMIT["value"]])
    if hidden:  # as before the job reaches the day: its rows deleted in a transaction rolled back at the end
        con.execute("BEGIN")
        for table in ("rollup_days", "rollup_status"):
            con.execute(f"DELETE FROM {table} WHERE day >= $d", {"d": hidden})
    cards = dashboard(period, today)
    times: dict[str, list[float]] = {name: [] for name, _ in cards}
    loads, yardstick = [], []
    start = dt.datetime.combine(END - dt.timedelta(days=30), dt.time(), tzinfo=dt.UTC)
    count = 'SELECT count(*) FROM events WHERE site = $site AND "timestamp" >= $start AND "timestamp" < $end'
    bounds = {"site": SITE, "start": start, "end": start + dt.timedelta(days=30)}
    for _name, body in cards:  # warm-up: first read of each column from disk
        answer(con, body, None)
    for _ in range(runs):
        t = time.perf_counter()
        con.execute(count, bounds).fetchall()
        yardstick.append((time.perf_counter() - t) * 1000)
        t_load = time.perf_counter()
        for name, body in cards:
            t = time.perf_counter()
            answer(con, body, None)
            times[name].append((time.perf_counter() - t) * 1000)
        loads.append((time.perf_counter() - t_load) * 1000)
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    if hidden:
        con.execute("ROLLBACK")
    con.close()
    unit = statistics.median(yardstick)
    print(f"\n{'query':32} {'p50 ms':>8} {'p95 ms':>8} {'p50/count(*)':>13}   (runs={runs}, DuckDB threads={threads})")
    print(f"{'yardstick: count(*) of 30 days':32} {unit:8.1f} {_p95(yardstick):8.1f} {1:13.1f}")
    for name, values in times.items():
        p50 = statistics.median(values)
        print(f"{name:32} {p50:8.1f} {_p95(values):8.1f} {p50 / unit:13.1f}")
    print(f"{'whole first load (sequential)':32} {statistics.median(loads):8.1f} {_p95(loads):8.1f} "
          f"{statistics.median(loads) / unit:13.1f}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--data", type=Path, default=Path("/tmp/strana-bench"))
    ap.add_argument("--reseed", action="store_true", help="seed again even if the file exists")
    ap.add_argument("--storage-only", action="store_true", help="seed and report bytes per event, no timing")
    ap.add_argument("--rebuild-rollups", action="store_true", help="build (and time) every day's rollups again")
    ap.add_argument("--periods", default=",".join(PERIODS),
                    help=f"comma-separated periods to time, of {', '.join(PERIODS)} (default: all)")
    ap.add_argument("--event-id", choices=tuple(EVENT_IDS), default="seq",
                    help="event_id layout: seq (prefix + counter, as ingest makes them), v7 (ms + random, as "
                         "ingest made them before) or v4 (random)")
    ap.add_argument("--client-ids", type=float, default=0.0, metavar="PCT",
                    help="percent of events that carry a random id of their own (as SDK clients send)")
    ap.add_argument("--checkpoint-every", type=int, default=CHECKPOINT_EVERY, metavar="N",
                    help="store the seeded events with a CHECKPOINT every N events, as a server does (0: in one go)")
    ap.add_argument("--memory-limit", default="", metavar="SIZE",
                    help="time the queries under this DuckDB memory_limit, as [sink] memory_limit sets it (e.g. 256MB)")
    args = ap.parse_args()
    MEMORY_LIMIT["value"] = args.memory_limit
    args.data.mkdir(parents=True, exist_ok=True)
    extra = (f"-client{args.client_ids:g}" if args.client_ids else "") + \
        (f"-ckpt{args.checkpoint_every}" if args.checkpoint_every != CHECKPOINT_EVERY else "")
    path = args.data / f"bench-{args.events}-{args.event_id}{extra}-daily.duckdb"
    if args.reseed or not path.exists():
        seed(path, args.events, args.event_id, args.client_ids, args.checkpoint_every)
    if not args.storage_only:
        build(path, args.rebuild_rollups)
    storage(path)
    if not args.storage_only:
        bench(path, args.runs, [p for p in args.periods.split(",") if p])


if __name__ == "__main__":
    main()
