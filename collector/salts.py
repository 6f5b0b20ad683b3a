"""Daily random salts for visitor ids: made when a day starts, deleted the day after.

Salts live in the store (never in config) so every process that writes ids
reads the same ones. `pair(day)` is on the hot path and answers from memory;
it goes to the store only when the day changes. `rotate()` is the scheduled
job: it makes today's salt and deletes everything older than yesterday's.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from typing import Protocol

EPOCH = dt.date(1970, 1, 1)


def day_date(day: int) -> dt.date:
    return EPOCH + dt.timedelta(days=day)


class SaltStore(Protocol):
    def load(self) -> dict[dt.date, bytes]: ...
    def create(self, day: dt.date, salt: bytes) -> bytes: ...  # keeps an existing one; returns the kept salt
    def delete_before(self, day: dt.date) -> int: ...


class DuckDBSaltStore:
    def __init__(self, connect):
        self.connect = connect  # a new cursor each call: the store may be reopened (DuckDBSink.reopen)
        self.lock = threading.Lock()

    def _rows(self, sql: str, params: list) -> list[tuple]:
        # A cursor per call, closed with it: a result left open on a long-lived cursor keeps its transaction
        # open, and then no CHECKPOINT can run (the spool keeps its segments; shutdown fails).
        with self.lock, self.connect() as cur:
            return cur.execute(sql, params).fetchall()

    def load(self) -> dict[dt.date, bytes]:
        return {day: bytes(salt) for day, salt in self._rows("SELECT day, salt FROM salts", [])}

    def create(self, day: dt.date, salt: bytes) -> bytes:
        self._rows("INSERT INTO salts VALUES (?, ?) ON CONFLICT (day) DO NOTHING", [day, salt])
        return bytes(self._rows("SELECT salt FROM salts WHERE day = ?", [day])[0][0])

    def delete_before(self, day: dt.date) -> int:
        return self._rows("DELETE FROM salts WHERE day < ?", [day])[0][0]


class SaltKeeper:
    def __init__(self, store: SaltStore):
        self.store = store
        self._day: int | None = None
        self._pair: tuple[bytes, bytes | None] = (b"", None)
        self._lock = threading.Lock()

    def pair(self, day: int) -> tuple[bytes, bytes | None]:
        if day != self._day:
            self._refresh(day)
        return self._pair

    def _refresh(self, day: int) -> None:
        with self._lock:
            if day == self._day:
                return
            today = day_date(day)
            salts = self.store.load()
            if today not in salts:
                # The store answers with the salt it kept: another process may have won the race.
                # Not a re-read of load(): a listing right after a write can miss it (NATS KV's keys()).
                salts[today] = self.store.create(today, secrets.token_bytes(32))
            self._pair = (salts[today], salts.get(today - dt.timedelta(days=1)))
            self._day = day

    def rotate(self, day: int) -> int:
        """Make today's salt, delete those before yesterday; returns how many were deleted."""
        self._refresh(day)
        deleted = self.store.delete_before(day_date(day) - dt.timedelta(days=1))
        self._day = None  # re-read on next use
        return deleted
