"""A local write-ahead spool in front of a sink: the fast way to make a 2xx durable.

A DuckDB commit costs an fsync plus the insert (~10 ms here for a small
group); a synced append to a log file costs no insert (0.3-0.5 ms a group commit
under load here, 2026-12; ~4-7 ms on the slower host of earlier measurements).
So `write()` appends the group (Arrow IPC for the events, msgpack for drop
counts, a CRC per record) to a file opened with O_DSYNC — one syscall that
returns once the data is on disk, as write + fdatasync would — and returns:
the requests in the group get their 2xx. A loader thread then moves what is
spooled into the inner sink in large batches, storing the spool position in the same
transaction as the rows (`bus_positions`, stream "spool"). After a crash,
`recover()` replays from that position: nothing acknowledged is lost and
nothing is stored twice. A torn record at the tail (the crash hit mid-write)
was never acknowledged, so it is cut off.

Once the spool has taken `SPARE_AFTER_BYTES` (real traffic, not a test or an
idle site), the loader keeps the next segment ready: zero-filled and synced
(`spool/spare`), as PostgreSQL pre-zeroes its WAL. Writing into blocks that
are already on disk changes no file size, so an O_DSYNC write costs no journal
commit: ~0.1 ms instead of ~0.3 ms here, and the event loop waits for it. A
record header of zeros is where a segment's records end.

Files: `spool/<segment>.log`, a new segment when one passes `segment_bytes`;
the loader deletes the segments it has loaded, but only after a CHECKPOINT of
the inner sink, so rows that are still only in DuckDB's WAL keep their spool
copy: a torn or truncated WAL (which DuckDB opens without a word, minus the
tail) rolls the spool position back with the rows, and the next start replays
them from the segment that is still there.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from pathlib import Path

import pyarrow as pa

from collector.cpu_priority import lower_this_thread
from collector.events import Rows
from collector.sinks.spool_records import Record, as_arrow, encode, merge, read_records, zeros_at

log = logging.getLogger("strana.spool")
STREAM = "spool"
SPARE = "spare"  # the next segment, zero-filled ahead of need
SPARE_AFTER_BYTES = 1 << 20
ZEROS = memoryview(bytes(1 << 20))
BUSY_SEGMENTS = 8  # loaded segments kept over busy checkpoints before that is worth a warning


class SpoolingSink:
    accepts_rows = True  # the worker may hand `events.Rows` instead of an Arrow batch
    # write() without a bus position is one append: the worker may call it on its event loop (collector/worker.py)
    appends_only = True

    def __init__(self, inner, folder: Path, segment_bytes: int = 64 << 20, max_load_rows: int = 100_000,
                 load_interval: float = 0.25):
        self.inner = inner
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self.max_load_rows = max_load_rows
        self.load_interval = load_interval
        self._urgent = False
        self._pending_count = 0
        self._cond = threading.Condition()
        self._pending: deque[tuple[Record, int, int]] = deque()  # record, segment, end offset
        self._written = (0, 0)  # (segment, end offset) of the last fsynced record
        self._loaded = (0, 0)
        self._closing = False
        self._error: BaseException | None = None
        self._fd: int | None = None
        self._segment = 0
        self._offset = 0
        self._broken = False
        self._loader: threading.Thread | None = None
        self._kept_from = 0  # segments below this one are deleted
        self._drop_retry_at = 0.0
        self._appended = 0  # bytes written since start: a spare is kept only for a spool in real use
        self._spare_ready = False  # set by the loader's thread, taken by the writer's
        self._spare_retry_at = 0.0
        self._preallocated = False  # the current segment was a spare

    # ---- the inner sink's reading side passes through
    def reader(self):
        return self.inner.reader()

    def recent_client_ids(self, *args, **kwargs):
        return self.inner.recent_client_ids(*args, **kwargs)

    def recent_sessions(self, *args, **kwargs):
        return self.inner.recent_sessions(*args, **kwargs)

    def _path(self, segment: int) -> Path:
        return self.folder / f"{segment:08d}.log"

    def _segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.folder.glob("*.log") if p.stem.isdigit())

    def recover(self) -> int:
        """Replay what was spooled but not loaded (after a crash); start the loader. Returns events replayed."""
        done_seg, done_off = self._stored_position()
        replayed = 0
        (self.folder / SPARE).unlink(missing_ok=True)  # zeros only, but sized for the last run's segments
        segments = self._segments()
        for seg in segments:
            path = self._path(seg)
            if seg < done_seg:
                path.unlink()
                continue
            start = done_off if seg == done_seg else 0
            end = start
            for record, end in read_records(path, start):
                self._store(record, {(STREAM, seg): end})
                replayed += record.rows
            if end < path.stat().st_size:  # the zeros of a spare, or a torn record: this segment takes no more
                if not zeros_at(path, end):
                    log.warning("spool %s: cut a torn record at byte %d (it was never acknowledged)", path.name, end)
                os.truncate(path, end)
        self._segment = (segments[-1] + 1) if segments else max(done_seg + 1, 0)
        self._drop_loaded(segments)  # all loaded now
        self._open_segment(self._segment)
        self._kept_from = self._segment
        self._loader = threading.Thread(target=self._load_loop, name="strana-spool-loader", daemon=True)
        self._loader.start()
        if replayed:
            log.warning("spool: replayed %d events that were acknowledged but not yet loaded", replayed)
        return replayed

    def _open_segment(self, segment: int) -> None:
        """A new segment, written from 0 at `_offset`: the spare when one is ready, else an empty file."""
        path = self._path(segment)
        preallocated = False
        if self._spare_ready:
            self._spare_ready = False
            try:
                os.rename(self.folder / SPARE, path)
                preallocated = True
            except OSError as exc:
                log.warning("spool: the spare segment is gone (%s); starting an empty one", exc)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_DSYNC, 0o600)
        if self._fd is not None:
            os.close(self._fd)
        self._segment, self._fd, self._preallocated = segment, fd, preallocated
        dir_fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the new file's name is durable too
        finally:
            os.close(dir_fd)

    def _drop_loaded(self, segments: list[int]) -> bool:
        """Delete loaded segments once their rows are in the database file, not only in DuckDB's WAL."""
        if not segments:
            return True
        try:
            if hasattr(self.inner, "checkpoint"):
                self.inner.checkpoint()
        except Exception as exc:  # busy: keep the segments (harmless, below the stored position); next time
            # A today_rollups step holds a write transaction for a second or two, so under load this is routine
            # (54 times in two 10-minute soaks); a warning is kept for what is not, or segments piling up.
            busy = "other write transactions active" in str(exc)
            level = logging.INFO if busy and len(segments) <= BUSY_SEGMENTS else logging.WARNING
            log.log(level, "spool: checkpoint failed (%s); keeping %d loaded segment(s) for now", exc, len(segments))
            return False
        for seg in segments:
            self._path(seg).unlink(missing_ok=True)
        return True

    def _store(self, record: Record, position) -> None:
        self.inner.write(as_arrow(record.events), record.drops, position, record.quarantine, record.replayed)

    def write(self, events: pa.RecordBatch | Rows | None, drops: dict, position=None,
              quarantine: list | None = None, replayed: list | None = None) -> None:
        """Durable on return (O_DSYNC). Called from one thread at a time (the worker's loop or its store thread)."""
        record = Record(events, drops, list(quarantine or ()), list(replayed or ()))
        if position is not None:  # a bus position must be stored with the rows: go straight through
            self.wait_loaded()
            return self._store(record, position)
        if self._error is not None:
            raise RuntimeError(f"the store failed earlier: {self._error}")
        if self._broken:  # the last failure left a tail we could not cut: continue in a fresh segment
            self._open_segment(self._segment + 1)
            self._offset, self._broken = 0, False
        data = encode(record)
        try:
            written = os.pwrite(self._fd, data, self._offset)  # on disk when it returns: the fd is O_DSYNC
            if written != len(data):
                raise OSError(f"short write to the spool ({written} of {len(data)} bytes)")
        except OSError:
            # Disk full or I/O error: nothing of this record may stay, or later records would sit behind a
            # torn one. The caller answers 503; the client retries.
            try:
                os.ftruncate(self._fd, self._offset)
                self._preallocated = False  # its zeros went with the tail
            except OSError:
                self._broken = True
            raise
        self._offset += len(data)
        self._appended += len(data)
        with self._cond:
            # The loader sleeps until something is pending, then out its load interval unless a batch fills:
            # wake it only for those. A wake-up per group commit cost it a GIL hand-off each, for nothing.
            wake = not self._pending or self._pending_count < self.max_load_rows <= self._pending_count + record.rows
            self._pending.append((record, self._segment, self._offset))
            self._pending_count += record.rows
            self._written = (self._segment, self._offset)
            if wake:
                self._cond.notify_all()
        # The record is durable: a failed rotation must not undo its 2xx. A spare that is ready replaces an
        # empty-file segment at once (an append to one costs a journal commit).
        if self._offset >= self.segment_bytes or (self._spare_ready and not self._preallocated):
            # Only a new file here: the old one is deleted by the loader once it is loaded and checkpointed.
            # Waiting for that here held every group commit behind a load and a CHECKPOINT (a p99 spike).
            old = self._segment
            try:
                self._open_segment(old + 1)
            except OSError as exc:
                log.warning("spool: could not start a new segment (%s); staying on %s", exc, self._path(old).name)
                return
            self._offset = 0

    def _load_loop(self) -> None:
        lower_this_thread()  # loading is behind the 2xx, not in front of it: ingest keeps the CPU first
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending and self._closing:
                    return
                # Everything pending is already durable, so loading can wait to grow: one DuckDB commit per
                # `load_interval` instead of one per group commit (each costs an fsync and a position upsert).
                # A reader waiting for its writes (wait_loaded) or a full batch cuts the wait short.
                deadline = time.monotonic() + self.load_interval
                while (not self._closing and not self._urgent and self._pending_rows() < self.max_load_rows
                       and (left := deadline - time.monotonic()) > 0):
                    self._cond.wait(left)
                self._urgent = False
                take, rows = [], 0
                while self._pending and rows < self.max_load_rows:
                    item = self._pending.popleft()
                    take.append(item)
                    rows += item[0].rows
                self._pending_count -= rows
            merged = merge([record for record, _, _ in take])
            segment, end = take[-1][1], take[-1][2]
            for attempt in range(100):
                try:
                    if attempt and getattr(self.inner, "invalid", False):
                        self._reopen_and_catch_up(segment, end)
                    else:
                        self._store(merged, {(STREAM, segment): end})
                    break
                except Exception as exc:  # keep what was acknowledged: it is in the spool, retry
                    log.error("loading the spool into the store failed (attempt %d): %s", attempt + 1, exc)
                    time.sleep(min(5.0, 0.1 * 2**attempt))
            else:
                self._error = RuntimeError("the store keeps failing; events stay in the spool for the next start")
                with self._cond:
                    self._cond.notify_all()
                return
            with self._cond:
                self._loaded = (segment, end)
                self._cond.notify_all()
            if segment > self._kept_from and time.monotonic() >= self._drop_retry_at:
                # A record of `segment` is loaded, so every record of the segments before it is too.
                if self._drop_loaded([seg for seg in self._segments() if seg < segment]):
                    self._kept_from = segment
                else:
                    self._drop_retry_at = time.monotonic() + 5.0
            self._keep_a_spare()

    def _stored_position(self) -> tuple[int, int]:
        """(segment, offset) up to which the inner sink holds the spool's records; (-1, 0): none yet."""
        cur = self.inner.reader()
        try:
            row = cur.execute("SELECT part, next_offset FROM bus_positions WHERE stream = ? "
                              "ORDER BY part DESC LIMIT 1", [STREAM]).fetchone()
        finally:
            cur.close()
        return tuple(row) if row else (-1, 0)

    def _reopen_and_catch_up(self, segment: int, end: int) -> None:
        """The inner store was invalidated (DuckDB after a commit it could not revert): open it again, as a
        restart would, and load from the segments on disk what the reopened file lacks, up to (segment, end).
        The failed load may or may not have committed: the position stored with the rows says which, so
        nothing is loaded twice. Segments are deleted only once a later one is loaded and checkpointed, so
        every record after the stored position is still on disk; records after `end` are still pending."""
        self.inner.reopen()
        done_seg, done_off = self._stored_position()
        if (done_seg, done_off) >= (segment, end):
            log.warning("spool: the store was reopened; the failed load had committed")
            return
        loaded = 0
        for seg in self._segments():
            if seg < done_seg or seg > segment:
                continue
            chunk, rows = [], 0
            for record, rec_end in read_records(self._path(seg), done_off if seg == done_seg else 0):
                if seg == segment and rec_end > end:
                    break
                chunk.append(record)
                rows += record.rows
                if rows >= self.max_load_rows:
                    self._store(merge(chunk), {(STREAM, seg): rec_end})
                    loaded, chunk, rows = loaded + rows, [], 0
                chunk_end = rec_end
            if chunk:
                self._store(merge(chunk), {(STREAM, seg): chunk_end})
                loaded += rows
        log.warning("spool: the store was reopened; %d events loaded again from the spool", loaded)

    def wait_loaded(self, timeout: float | None = None) -> bool:
        """Block until everything written so far is in the inner sink (read-your-writes for reports)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._written
            if self._loaded < target:
                self._urgent = True
                self._cond.notify_all()
            while self._loaded < target and self._error is None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return self._loaded >= target

    def _pending_rows(self) -> int:
        return self._pending_count

    def backlog_rows(self) -> int:
        """Rows spooled (durable) but not loaded yet: held in memory until the loader takes them. 0 once the
        loader has failed: nothing will drain then, and the next write says why."""
        return 0 if self._error is not None else self._pending_rows()

    def _keep_a_spare(self) -> None:
        """On the loader's thread, once the spool is in real use: zero-fill and sync the next segment, in 1 MB
        writes synced every 8 MB (so the disk never holds a group commit behind 64 MB of zeros)."""
        if (self._spare_ready or self._appended < SPARE_AFTER_BYTES or self._closing
                or time.monotonic() < self._spare_retry_at):
            return
        path = self.folder / SPARE
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                done = chunks = 0
                while done < self.segment_bytes:
                    done += os.write(fd, ZEROS[: self.segment_bytes - done])
                    chunks += 1
                    if chunks % 8 == 0:
                        os.fdatasync(fd)
                os.fdatasync(fd)
            finally:
                os.close(fd)
        except OSError as exc:  # e.g. a full disk: empty-file segments still work; try again in a minute
            path.unlink(missing_ok=True)
            self._spare_retry_at = time.monotonic() + 60
            log.warning("spool: could not prepare the next segment (%s); appending to an empty file for now", exc)
            return
        self._spare_ready = True

    def lag(self) -> int:
        with self._cond:
            return self._pending_rows()

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._loader is not None:
            self._loader.join()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._spare_ready = False
        (self.folder / SPARE).unlink(missing_ok=True)
        done = self._error is None and not self._pending
        self.inner.close()  # checkpoints: only then are the loaded segments no longer needed
        if done:
            for seg in self._segments():
                self._path(seg).unlink(missing_ok=True)
