"""The asyncio client: the same `track()` / `pageview()`, a sender task on the running loop.

The HTTP request itself runs on one worker thread (the standard library has no async HTTP client),
so the loop never waits on the network; backoff sleeps and flush waits are asyncio's own.
`track()` and `pageview()` must be called from the loop's thread (from other threads use `Client`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from typing import Any

from strana_sdk._core import delivery, log
from strana_sdk._http import NETWORK_ERRORS
from strana_sdk.client import BaseClient, drive


class AsyncClient(BaseClient):
    """`Client` for asyncio programs.

    >>> client = AsyncClient("https://stats.example.com", site="example.com")
    >>> client.track("signup", props={"plan": "pro"})      # not awaited: returns at once
    >>> await client.flush(timeout=5)
    >>> await client.shutdown(timeout=5)                   # or: async with AsyncClient(...) as client

    The sender task starts on the first `track()` made inside a running loop. Should the program end
    without `shutdown()`, what is still queued is sent at exit from a thread, within `shutdown_timeout`.
    """

    def _reset(self) -> None:
        super()._reset()
        self._wake: asyncio.Event | None = None
        self._interrupt: asyncio.Event | None = None
        self._progress: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    def _start(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not in a loop yet: the event waits in the queue until the first call that is
        self._loop = loop
        self._wake, self._interrupt, self._progress = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="strana-sdk-http")
        self._sender = loop.create_task(self._run(), name="strana-sdk-sender")

    def _wake_sender(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _remaining(self) -> float | None:
        deadline = self._deadline
        return None if deadline is None else deadline - time.monotonic()

    async def _sleep(self, delay: float) -> bool:
        assert self._interrupt is not None
        end = time.monotonic() + delay
        while True:
            now, deadline = time.monotonic(), self._deadline
            if deadline is not None and now >= deadline:
                return False
            if now >= end:
                return True
            try:
                await asyncio.wait_for(self._interrupt.wait(), (end if deadline is None else min(end, deadline)) - now)
                self._interrupt.clear()
            except asyncio.TimeoutError:
                pass

    async def _deliver(self, items: list) -> None:
        loop = asyncio.get_running_loop()
        steps = delivery(items, self.options, self._queue)
        try:
            action, arg = next(steps)
            while True:
                if action == "send":
                    left = self._remaining()
                    if left is not None and left <= 0:
                        result: Any = TimeoutError("shutdown timeout ran out")
                    else:
                        timeout = self.options.timeout if left is None else min(self.options.timeout, left)
                        try:
                            result = await loop.run_in_executor(self._executor, self._transport.post, arg, timeout)
                        except NETWORK_ERRORS as exc:
                            result = exc
                else:
                    result = await self._sleep(arg)
                action, arg = steps.send(result)
        except StopIteration:
            pass

    async def _run(self) -> None:
        assert self._wake is not None and self._progress is not None
        queue = self._queue
        while True:
            if not self._closing:
                try:  # a full batch, flush() or shutdown() wakes it early
                    await asyncio.wait_for(self._wake.wait(), self.options.flush_interval)
                except asyncio.TimeoutError:
                    pass
            self._wake.clear()
            while True:
                left = self._remaining()
                if left is not None and left <= 0:
                    return
                items = queue.take(self._batch_size)
                if not items:
                    break
                try:
                    await self._deliver(items)
                except Exception:  # a bug must not kill the sender: count the batch and carry on
                    log.exception("strana_sdk: could not send a batch of %d events", len(items))
                    queue.settle(failed=len(items))
                self._progress.set()
            if self._closing:
                return

    async def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued so far; wait up to `timeout` seconds. True when all of it was dealt with."""
        mark = self._queue.mark()
        if self._queue.is_settled(mark):
            return True
        if self._sender is None:
            self._start()
        assert self._wake is not None and self._progress is not None
        self._wake.set()
        end = None if timeout is None else time.monotonic() + timeout
        while not self._queue.is_settled(mark):
            self._progress.clear()
            if self._queue.is_settled(mark):
                break
            wait = None if end is None else end - time.monotonic()
            if wait is not None and wait <= 0:
                return False
            try:
                await asyncio.wait_for(self._progress.wait(), wait)
            except asyncio.TimeoutError:
                return self._queue.is_settled(mark)
        return True

    async def shutdown(self, timeout: float | None = None) -> bool:
        """Stop taking events, send what is queued within `timeout` seconds (default `shutdown_timeout`).
        What is still unsent then is counted in `stats.failed`. True if nothing was."""
        if self._closed:
            return self._queue.is_settled(self._queue.mark())
        self._closed = True
        timeout = self._shutdown_timeout if timeout is None else timeout
        mark, failed_before = self._queue.mark(), self._queue.stats().failed
        if self._sender is None and len(self._queue.items):
            self._start()
        self._deadline = time.monotonic() + timeout
        self._closing = True
        sender = self._sender
        if sender is not None:
            assert self._wake is not None and self._interrupt is not None
            self._wake.set()
            self._interrupt.set()
            try:
                await asyncio.wait_for(asyncio.shield(sender), timeout + 1.0)
            except asyncio.TimeoutError:
                sender.cancel()
        self._settle_leftover(timeout)
        if self._executor is not None:
            self._executor.shutdown(wait=False)
        self._transport.close()
        return self._queue.is_settled(mark) and self._queue.stats().failed == failed_before

    aclose = shutdown

    def _settle_leftover(self, timeout: float) -> None:
        leftover = self._queue.take_all()
        if leftover:
            log.error("strana_sdk: %d events were still unsent after %.1fs at shutdown; dropped", len(leftover),
                      timeout)
            self._queue.settle(failed=len(leftover))

    def _shutdown_at_exit(self) -> None:
        """At interpreter exit the loop is usually gone: send what is left with blocking I/O from here."""
        self._closed = True
        loop = self._loop
        if loop is not None and loop.is_running():
            return  # still running (exit from another thread): nothing safe to do from here
        self._deadline = deadline = time.monotonic() + self._shutdown_timeout

        def sleep(delay: float) -> bool:
            if time.monotonic() + delay >= deadline:
                return False
            time.sleep(delay)
            return True

        while time.monotonic() < deadline:
            items = self._queue.take(self._batch_size)
            if not items:
                break
            drive(items, self.options, self._queue, self._transport, sleep, self._remaining)
        self._settle_leftover(self._shutdown_timeout)
        self._transport.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.shutdown()
