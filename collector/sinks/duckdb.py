"""The embedded store: one DuckDB file that holds events, drop counts, quarantine, salts and bus positions.

One process owns the file (DuckDB allows one writer and then no other
process may open it). `write` is called from one dedicated thread and commits
events, drop counts and the bus position together, so a batch is stored
whole or not at all.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
import weakref
from pathlib import Path

import duckdb
import pyarrow as pa

from collector import migrate
from collector.cpu_priority import run_lowered

log = logging.getLogger("strana.duckdb")

# A serving process holds the store for days: freed memory should go back to the system, not stay parked in
# an allocator. DuckDB's jemalloc purges it from a background thread. Without that a server kept ~25 MB more
# RSS after a few hundred hits (bench/memory.py: worker anon 120 MB vs ~100 MB after 1,500 hits).
# pyarrow's default pool is mimalloc in the wheels we pin, so the jemalloc decay below only matters for a
# build that defaults to jemalloc; bench/memory.py --env ARROW_DEFAULT_MEMORY_POOL=mimalloc|jemalloc|system
# showed no difference between the three (252-256 MB after 3 rounds of 1,500 hits).
# (A SET, not connect's config: another connection to the file in this process with other config would fail.)


def release_memory(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("SET allocator_background_threads = true")
    try:
        pa.jemalloc_set_decay_ms(0)
    except NotImplementedError:  # a pyarrow built without jemalloc: the system allocator, nothing to do
        pass


def query_threads(setting: int) -> int:
    """[sink] threads; 0 is DuckDB's own default, one thread per core.

    Measured on 2 cores: DuckDB on 1 thread let single events run at 5,833/s in bench/soak_max.py's third
    minute (p99 25.4 ms) against 4,997/s (27.2 ms) on 2, with 5% fewer dashboard reads. But on 1 thread the
    aggregate's count(DISTINCT visitor_id) ran out of a 256 MB memory_limit from ~5M visitors in a day (the
    one hash table doubles to 128 MB), where 2 threads still fit at 5.6M. Reads that fail cost more than
    ingest that slows, so the default stays DuckDB's."""
    return setting if setting > 0 else (os.cpu_count() or 1)


def _open(path: Path, read_only: bool, memory_limit: str, threads: int) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path), read_only=read_only)
    release_memory(con)
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if memory_limit:  # unset, DuckDB caches up to 80% of RAM: a server's RSS then grows with the data read
        try:
            con.execute("SET memory_limit = ?", [str(memory_limit)])
        except duckdb.Error:
            con.close()
            raise ValueError(f"[sink] memory_limit: {memory_limit!r} is not an amount of memory "
                             "(write it like 512MB or 4GB)") from None
    return con


def invalidated(exc: BaseException) -> bool:
    """DuckDB's fatal state: once a commit fails and cannot be reverted (seen when a load ran out of
    memory_limit while reports held it), every statement fails until the database is opened again."""
    return isinstance(exc, duckdb.FatalException) or "database has been invalidated" in str(exc)


class DuckDBSink:
    def __init__(self, path: str | Path, *, read_only: bool = False, memory_limit: str = "", threads: int = 0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # opened from a lowered thread, so the threads DuckDB starts for queries and loads run below ingest
        self._opener = lambda: _open(self.path, read_only, memory_limit, threads)
        self.con = run_lowered(self._opener)
        self.invalid = False  # a write met DuckDB's fatal state: reopen() before writing again
        self._lock = threading.Lock()  # no reader is handed out of a connection being closed
        self._readers: weakref.WeakSet = weakref.WeakSet()  # what close() must stop: a job may be mid-step
        if not read_only:
            migrate.apply(self.con)

    def reader(self) -> duckdb.DuckDBPyConnection:
        """A connection for queries from another thread of this process."""
        with self._lock:
            cursor = self.con.cursor()
            self._readers.add(cursor)
            return cursor

    def reopen(self, timeout: float = 60.0) -> None:
        """Close the database and open it again, as a restart would: what was committed comes back from the
        file and its WAL. Readers asking meanwhile wait; a query still running on the old database (it fails
        fast there) is waited for, since DuckDB refuses to close under it."""
        with self._lock:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    self.con.close()  # and every cursor handed out of it
                    break
                except duckdb.Error:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            self.con = run_lowered(self._opener)
            self.invalid = False
        log.warning("duckdb: %s was invalidated (a commit or checkpoint failed) and has been opened again", self.path)

    def write(self, events: pa.RecordBatch | None, drops: dict[tuple[str, str, str], int],
              position: dict[tuple[str, int], int] | None = None, quarantine: list | None = None,
              replayed: list[bytes] | None = None) -> None:
        con = self.con
        try:
            con.execute("BEGIN")
            if events is not None and events.num_rows:
                incoming = events  # noqa: F841 -- read by DuckDB's replacement scan (4x cheaper than register)
                con.execute("INSERT INTO events SELECT * FROM incoming")
            if drops:
                con.executemany("INSERT INTO drops VALUES (?, ?, ?, ?)",
                                [[site, day, reason, n] for (site, day, reason), n in drops.items()])
            if quarantine:
                con.executemany(
                    "INSERT INTO quarantine VALUES (?, ?, make_timestamptz(?), ?, ?, ?, ?, ?, NULL) "
                    "ON CONFLICT (id) DO NOTHING",
                    [[uuid.UUID(bytes=q.id), q.site, q.received_at, q.source, q.reason, q.detail, q.payload,
                      q.context] for q in {q.id: q for q in quarantine}.values()],
                )
            if replayed:
                con.execute("UPDATE quarantine SET replayed_at = now() "
                            "WHERE id IN (SELECT unnest(?::UUID[])) AND replayed_at IS NULL",
                            [[uuid.UUID(bytes=i) for i in replayed]])
            if position:
                con.executemany(
                    "INSERT INTO bus_positions VALUES (?, ?, ?) "
                    "ON CONFLICT (stream, part) DO UPDATE SET next_offset = excluded.next_offset",
                    [[stream, part, offset] for (stream, part), offset in position.items()],
                )
            con.execute("COMMIT")
        except BaseException as exc:
            if invalidated(exc):
                self.invalid = True
                raise
            try:
                con.execute("ROLLBACK")
            except duckdb.Error as failed:
                self.invalid = self.invalid or invalidated(failed)
            raise

    def positions(self) -> dict[tuple[str, int], int]:
        """Where the stored rows end on the bus: (stream, partition) -> next offset/sequence to read."""
        rows = self.con.execute("SELECT stream, part, next_offset FROM bus_positions").fetchall()
        return {(stream, part): offset for stream, part, offset in rows}

    def recent_client_ids(self, hours: int = 24, limit: int = 500_000) -> list[bytes]:
        def fetch(n: int) -> list[bytes]:
            rows = self.con.execute("SELECT event_id FROM events WHERE received_at > now() - to_hours(?) "
                                    "ORDER BY received_at DESC LIMIT ?", [hours, n]).fetchall()
            return [r[0].bytes for r in rows]

        return self._within_memory("recent client ids", fetch, [limit, limit // 10, limit // 100])

    def recent_sessions(self, minutes: int = 30, limit: int = 500_000) -> list[tuple[int, int, int, int, int, int]]:
        """(visitor_id, session_id, first and last timestamp in µs, events, interactions) of the latest
        session of each visitor seen in the last minutes: put_session carries on counting from there.

        At most `limit` visitors (put_session's table holds no more), the latest seen: a busy
        half hour has millions (8.6M after a flat-out soak), and loading them all took 2.3 GB at start-up."""
        def fetch(window: int) -> list[tuple]:
            return self.con.execute(
                "WITH recent AS (SELECT visitor_id, arg_max(session_id, timestamp) AS session_id FROM events "
                "WHERE timestamp > now() - to_minutes(?) AND visitor_id IS NOT NULL GROUP BY visitor_id "
                "ORDER BY max(timestamp) DESC LIMIT ?) "
                "SELECT r.visitor_id, r.session_id, epoch_us(min(e.timestamp)), epoch_us(max(e.timestamp)), "
                "greatest(count(*), max(e.visit_seq)), greatest(count(*) FILTER (WHERE e.interactive AND "
                "e.name <> 'engagement'), max(e.interaction_seq)) "
                "FROM recent r JOIN events e ON e.session_id = r.session_id AND e.visitor_id = r.visitor_id "
                "GROUP BY r.visitor_id, r.session_id",
                [window, limit],
            ).fetchall()

        return self._within_memory("open visits", fetch, [minutes, minutes // 3, minutes // 10])

    @staticmethod
    def _within_memory(what: str, fetch, sizes: list[int]) -> list:
        """Start-up's reloads read recent events; with more of them than [sink] memory_limit can group (1.5M
        visitors in the last 30 minutes did not fit 32MB), a smaller window serves, then none: a server that
        starts with fewer open visits counts a few visits twice, one that cannot start counts nothing."""
        for size in sizes:
            try:
                return fetch(size)
            except duckdb.OutOfMemoryException:
                log.warning("duckdb: reloading %s (%s) needs more than [sink] memory_limit; trying less", what, size)
        log.warning("duckdb: starting without %s: raise [sink] memory_limit to keep them over a restart", what)
        return []

    def checkpoint(self) -> None:
        """Move the WAL into the database file: what was committed no longer depends on the WAL. A checkpoint
        that cannot write the file (disk full) invalidates the database: reopen() then, once there is room."""
        try:
            self.con.execute("CHECKPOINT")
        except duckdb.Error as exc:
            self.invalid = self.invalid or invalidated(exc)
            raise

    def close(self, timeout: float = 30.0) -> None:
        """Checkpoint and close, on shutdown. A scheduled job may still be running in its thread (the
        scheduler does not wait for one; a today_rollups run can take tens of seconds), and DuckDB refuses to
        close under a running query, which exited `strana serve` with a traceback and no checkpoint after a
        SIGTERM: its queries are interrupted and its cursors closed first (an uncommitted step rolls back; the
        job is resumable)."""
        with self._lock:
            deadline = time.monotonic() + timeout
            while True:
                for cursor in list(self._readers):
                    try:
                        cursor.interrupt()
                    except duckdb.Error:  # closed by its user already
                        pass
                    try:
                        cursor.close()
                    except duckdb.Error:  # busy: its query ends at the interrupt; next round
                        continue
                    self._readers.discard(cursor)
                if not self._readers or time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            try:
                self.con.execute("CHECKPOINT")
            finally:
                self.con.close()
