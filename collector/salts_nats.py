"""Daily salts in a NATS KV bucket, so every ingest process on JetStream hashes visitors with the same salt.

Why KV: it is JetStream's own replicated store, next to the events, with
`history=1` so a key holds one value and a purge removes it from the
bucket's stream: a deleted salt is gone, not kept as an old revision.
`create` uses KV create (only if absent), so when two ingest processes make
a day's salt at once, one wins and both read the winner.

`SaltKeeper` calls this store synchronously (once per day, off the hot path
after the first request of the day), so the store runs its own connection
on a private event loop in a thread and the calls wait on it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading

from nats.js.api import StorageType
from nats.js.errors import BucketNotFoundError, KeyValueError

from collector.bus.nats import connect


class NatsSaltStore:
    def __init__(self, settings):
        self.bus = settings.bus
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="strana-salts", daemon=True)
        self.thread.start()
        self.nc = None
        self.js = None
        self.kv = self._run(self._open())

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(self.bus.connect_timeout_ms / 1000 + 10)

    async def _open(self):
        self.nc = await connect(self.bus)
        js = self.js = self.nc.jetstream()
        try:
            return await js.key_value(self.bus.salts)
        except BucketNotFoundError:
            return await js.create_key_value(bucket=self.bus.salts, history=1, storage=StorageType.FILE,
                                             description="Strana daily visitor-id salts")

    async def _keys(self) -> list[str]:
        # The bucket stream's subjects, not kv.keys(): that watcher can signal "no more keys" before a
        # just-written one arrives (nats-py compares the consumer's pending count with what it has delivered),
        # and a salt that seems missing would be made twice. Purged keys still list here; _load skips them.
        prefix = f"$KV.{self.bus.salts}."  # JetStream KV: bucket B is stream KV_B, key K is subject $KV.B.K
        info = await self.js.stream_info(f"KV_{self.bus.salts}", subjects_filter=prefix + ">")
        return [subject.removeprefix(prefix) for subject in (info.state.subjects or {})]

    async def _load(self) -> dict[dt.date, bytes]:
        out = {}
        for key in await self._keys():
            try:
                entry = await self.kv.get(key)
            except KeyValueError:
                continue  # deleted meanwhile
            if entry.value:
                out[dt.date.fromisoformat(key)] = bytes(entry.value)
        return out

    async def _create(self, day: dt.date, salt: bytes) -> bytes:
        try:
            await self.kv.create(day.isoformat(), salt)
        except KeyValueError:
            pass  # another process made it first: keep theirs
        return bytes((await self.kv.get(day.isoformat())).value)

    async def _delete_before(self, day: dt.date) -> int:
        old = [d for d in await self._load() if d < day]  # a purged key lists until compaction: count salts
        for d in old:
            await self.kv.purge(d.isoformat())
        return len(old)

    def load(self) -> dict[dt.date, bytes]:
        return self._run(self._load())

    def create(self, day: dt.date, salt: bytes) -> bytes:
        return self._run(self._create(day, salt))

    def delete_before(self, day: dt.date) -> int:
        return self._run(self._delete_before(day))

    def close(self) -> None:
        if self.nc is not None:
            self._run(self.nc.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
