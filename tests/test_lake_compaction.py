"""Compaction, retention and file naming on a real S3 server and on a local folder.

The claims proven here: compaction changes no answer; a reader running while
it merges never fails and never counts a row twice; a crash between any two
steps leaves the same answers and the next run finishes; retention deletes
exactly the expired partitions (lake and DuckDB); re-writing a bus offset
range replaces instead of duplicating.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from lake_support import hits, running_weed, s3_config

from collector.compaction import compact
from collector.retention import RetentionPolicy, expire_duckdb, expire_lake
from collector.sinks.duckdb import DuckDBSink
from collector.sinks.lake import Lake, LakeConfig
from collector.sinks.parquet import ParquetSink

TODAY = dt.date(2026, 11, 23)
DAYS = [TODAY - dt.timedelta(days=d) for d in (3, 2, 1, 0)]
SITES = ["example.com", "other.example"]
ANSWERS = [  # the dashboard's kind of questions; each must answer the same before and after
    "SELECT site, count(*), count(DISTINCT visitor_id), count(*) FILTER (WHERE name = 'pageview') "
    "FROM events GROUP BY site ORDER BY site",
    "SELECT pathname, count(*) FROM events WHERE site = 'example.com' AND \"timestamp\" >= '2026-11-21'::TIMESTAMPTZ "
    "GROUP BY 1 ORDER BY 1",
    "SELECT site, day, reason, sum(n)::BIGINT FROM drops GROUP BY ALL ORDER BY ALL",
]


@pytest.fixture(scope="module")
def weed(tmp_path_factory):
    yield from running_weed(tmp_path_factory.mktemp("s3"))


@pytest.fixture(params=["s3", "local"])
def lake(request, tmp_path):
    if request.param == "local":
        return Lake(LakeConfig(path=str(tmp_path / "lake")))
    return Lake(s3_config(request.getfixturevalue("weed"), prefix=tmp_path.name))  # a prefix per test


def fill(sink: ParquetSink, batches: int = 4, rows: int = 50) -> int:
    total = 0
    for day in DAYS:
        for site in SITES:
            for b in range(batches):
                sink.write(hits(site, day, rows, start_visitor=b * 7), {(site, str(day), "bot_ua"): b + 1})
                total += rows
    return total


def answers(sink: ParquetSink) -> list:
    con = sink.reader()
    try:
        return [con.execute(q).fetchall() for q in ANSWERS]
    finally:
        con.close()


def data_files(lake: Lake, kind: str = "events") -> list[str]:
    return [f for f in lake.list(kind) if f.endswith(".parquet")]


def test_compaction_changes_no_answer_and_is_idempotent(lake):
    sink = ParquetSink(lake)
    total = fill(sink)
    before = answers(sink)
    assert before[0][0][1] + before[0][1][1] == total
    assert len(data_files(lake)) == 4 * 2 * 4

    run = compact(lake, TODAY, grace=600)
    assert run.merged_partitions == 2 * 3 * 2  # 3 finished days x 2 sites x (events, drops); today waits
    sink.lake_reader.invalidate()
    assert answers(sink) == before
    assert compact(lake, TODAY, grace=600).merged_partitions == 0  # nothing left to merge

    later = time.time() + 601
    run = compact(lake, TODAY, grace=600, now=later)  # the grace is over: the inputs go
    assert run.deleted_inputs == 2 * 3 * 2 * 4
    sink.lake_reader.invalidate()
    assert answers(sink) == before
    files = data_files(lake)
    assert len(files) == 2 * 3 + 2 * 4  # one file per finished partition, today's untouched
    assert sum(f.rsplit("/", 1)[1].startswith("c-") for f in files) == 6
    assert compact(lake, TODAY, grace=600, now=later).deleted_inputs == 0

    # a late event for a compacted day lands next to the merged file, and the next run merges both
    sink.write(hits("example.com", DAYS[0], 3), {})
    assert compact(lake, TODAY, grace=600, now=later).merged_partitions == 1
    compact(lake, TODAY, grace=600, now=later + 601)
    sink.lake_reader.invalidate()
    assert answers(sink)[0][0][1] == before[0][0][1] + 3
    assert len([f for f in data_files(lake) if f"site=example.com/date={DAYS[0]}" in f]) == 1


def test_a_reader_during_compaction_never_fails_or_double_counts(lake):
    sink = ParquetSink(lake, list_ttl=0)
    fill(sink, batches=6, rows=20)
    expected = answers(sink)
    seen, errors, stop = [], [], threading.Event()
    iterations = [0]

    def read():
        from collector.sinks.lake_reader import LakeReader

        reader = LakeReader(lake, ttl=0)  # lists the lake on every query, like another process would
        while not stop.is_set():
            con = reader.connect()
            try:
                seen.append([con.execute(q).fetchall() for q in ANSWERS])
            except Exception as exc:  # noqa: BLE001 -- the point is that there is none
                errors.append(exc)
            finally:
                con.close()
            iterations[0] += 1

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for _ in range(3):  # merge, merge the late files again, then delete inputs
            compact(lake, TODAY, grace=600)
            sink.write(hits("example.com", DAYS[0], 5), {("example.com", str(DAYS[0]), "bot_ua"): 1})
            expected_now = answers(sink)
            # inputs are deleted once every query that might have listed them is over: two more reader
            # iterations after the merged output became visible (the grace period, made short here)
            target = iterations[0] + 2
            deadline = time.monotonic() + 60
            while iterations[0] < target and time.monotonic() < deadline:
                time.sleep(0.01)
            assert iterations[0] >= target
            compact(lake, TODAY, grace=0)
    finally:
        stop.set()
        thread.join(60)
    assert not errors, errors[:3]
    assert len(seen) > 3
    # the answers may only be the ones before/after each late write, never a double count
    base = expected[0]
    for snapshot in seen:
        counts = dict((r[0], r[1]) for r in snapshot[0])
        assert counts["other.example"] == dict((r[0], r[1]) for r in base)["other.example"]
        extra = counts["example.com"] - dict((r[0], r[1]) for r in base)["example.com"]
        assert extra in (0, 5, 10, 15), snapshot[0]
    assert answers(sink) == expected_now


@pytest.mark.parametrize("crash_at", ["manifest_written", "output_written", "input_deleted"])
def test_a_crash_between_steps_leaves_the_lake_consistent(lake, crash_at):
    sink = ParquetSink(lake, list_ttl=0)
    fill(sink, batches=3, rows=10)
    before = answers(sink)

    class Crash(Exception):
        pass

    def crash(step):
        if step == crash_at:
            raise Crash(step)

    now = time.time()
    if crash_at == "input_deleted":
        compact(lake, TODAY, grace=600, now=now)
        now += 601
    with pytest.raises(Crash):
        compact(lake, TODAY, grace=600, now=now, step=crash)
    assert answers(sink) == before  # whatever step it died after, readers see the same rows once

    run = compact(lake, TODAY, grace=600, now=now)  # a run inside the grace period: safe, maybe busy
    assert answers(sink) == before
    run = compact(lake, TODAY, grace=600, now=now + 601)
    run = compact(lake, TODAY, grace=600, now=now + 1202)
    assert run.busy_partitions == 0
    assert answers(sink) == before
    finished = [f for f in data_files(lake) if f"date={TODAY}" not in f]
    assert len(finished) == 2 * 3 and all(f.rsplit("/", 1)[1].startswith("c-") for f in finished)


def test_retention_deletes_expired_partitions_only(lake):
    sink = ParquetSink(lake)
    fill(sink, batches=1, rows=5)
    policy = RetentionPolicy(default_days=2, per_site={"other.example": 0})  # 0: keep forever
    compact(lake, TODAY, grace=600)  # manifests go with their partition
    gone = expire_lake(lake, policy, TODAY)
    assert gone == 2 * 2  # example.com: the two oldest days, events and drops
    assert expire_lake(lake, policy, TODAY) == 0  # idempotent
    con = sink.reader()
    days = con.execute("SELECT site, min(\"timestamp\")::DATE, count(*) FROM events GROUP BY 1 ORDER BY 1").fetchall()
    assert days == [("example.com", DAYS[2], 10), ("other.example", DAYS[0], 20)]
    assert not [f for f in lake.list("_manifests") if "site=example.com" in f and str(DAYS[0]) in f]
    # readers leave out expired partitions even before the job ran
    keep = ParquetSink(lake, keep=lambda site, day: RetentionPolicy(1).keep(site, day, TODAY), probe=False)
    assert keep.reader().execute("SELECT count(*) FROM events").fetchone()[0] == 10


def test_retention_on_the_duckdb_sink(tmp_path):
    sink = DuckDBSink(tmp_path / "strana.duckdb")
    for day in DAYS:
        for site in SITES:
            sink.write(hits(site, day, 5), {(site, str(day), "bot_ua"): 1})
    policy = RetentionPolicy(default_days=0, per_site={"example.com": 2})
    con = sink.reader()
    assert expire_duckdb(con, policy, TODAY) == 10
    assert expire_duckdb(con, policy, TODAY) == 0
    rows = con.execute("SELECT site, count(*) FROM events GROUP BY 1 ORDER BY 1").fetchall()
    assert rows == [("example.com", 10), ("other.example", 20)]
    assert con.execute("SELECT count(*) FROM drops WHERE site = 'example.com'").fetchone()[0] == 2
    policy = RetentionPolicy(default_days=1, per_site={"example.com": 0})
    assert expire_duckdb(con, policy, TODAY) == 15
    sink.close()


def test_rewriting_an_offset_range_replaces_the_files(lake):
    sink = ParquetSink(lake)
    batch = hits("example.com", TODAY, 10)
    for _ in range(2):  # a consumer that crashed before committing its offset writes the same range again
        sink.write(batch, {("example.com", str(TODAY), "bot_ua"): 2}, {("events", 0): (100, 109)})
    sink.write(hits("example.com", TODAY, 4), {}, {("events", 0): 114})
    names = sorted(f.rsplit("/", 1)[1] for f in data_files(lake))
    assert names == ["part-events-0-100-109.parquet", "part-events-0-110-113.parquet"]
    assert sink.reader().execute("SELECT count(*) FROM events").fetchone()[0] == 14
    assert sink.reader().execute("SELECT sum(n) FROM drops").fetchone()[0] == 2
    assert ParquetSink(lake, probe=False).positions() == {("events", 0): 114}
