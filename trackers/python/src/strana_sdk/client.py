"""The thread client: `track()` appends to a bounded queue and returns; one daemon thread sends batches."""

from __future__ import annotations

import atexit
import datetime as dt
import os
import ssl
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any, Callable

from strana_sdk._core import (
    Item,
    Options,
    Queue,
    Revenue,
    Stats,
    Timestamp,
    delivery,
    enable_debug_logging,
    log,
)
from strana_sdk._http import NETWORK_ERRORS, Transport


def explicit_time(timestamp: Timestamp) -> Any:
    """A caller's timestamp, kept apart from the float the client records itself (see Options.send_timestamps)."""
    if isinstance(timestamp, (int, float)) and not isinstance(timestamp, bool):
        return dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc)
    return timestamp


def drive(items: list[Item], opts: Options, queue: Queue, transport: Transport,
          sleep: Callable[[float], bool], remaining: Callable[[], float | None]) -> None:
    """Run one batch's delivery with blocking I/O."""
    steps = delivery(items, opts, queue)
    try:
        action, arg = next(steps)
        while True:
            if action == "send":
                left = remaining()
                if left is not None and left <= 0:
                    result: Any = TimeoutError("shutdown timeout ran out")
                else:
                    try:
                        result = transport.post(arg, opts.timeout if left is None else min(opts.timeout, left))
                    except NETWORK_ERRORS as exc:
                        result = exc
            else:
                result = sleep(arg)
            action, arg = steps.send(result)
    except StopIteration:
        pass


class BaseClient:
    """What both clients share: settings, the queue, and the caller's side (cheap, never blocking)."""

    def __init__(self, url: str, site: str, *, batch_size: int = 100, flush_interval: float = 1.0,
                 max_queue: int = 10_000, drop: str = "oldest", max_retries: int | None = 10,
                 backoff: float = 0.5, max_backoff: float = 30.0, timeout: float = 10.0,
                 shutdown_timeout: float = 5.0, gzip_level: int = 5, send_timestamps: bool = True,
                 debug: bool = False, ssl_context: ssl.SSLContext | None = None) -> None:
        self.options = Options(url, site, batch_size=batch_size, flush_interval=flush_interval,
                               max_queue=max_queue, drop=drop, max_retries=max_retries, backoff=backoff,
                               max_backoff=max_backoff, timeout=timeout, gzip_level=gzip_level,
                               send_timestamps=send_timestamps, debug=debug)
        if debug:
            enable_debug_logging()
        self._ssl_context = ssl_context
        self._shutdown_timeout = shutdown_timeout
        self._batch_size = batch_size
        self._closed = False
        self._sender: Any = None
        self._reset()
        atexit.register(_shutdown_at_exit, weakref.ref(self))

    def _reset(self) -> None:
        self._queue = Queue(self.options.max_queue, self.options.drop)
        self._put = self._queue.put
        self._transport = Transport(self.options.url, self._ssl_context)
        self._deadline: float | None = None
        self._closing = False
        self._sender = None

    def _start(self) -> None:
        raise NotImplementedError

    def _wake_sender(self) -> None:
        raise NotImplementedError

    def _shutdown_at_exit(self) -> None:
        raise NotImplementedError

    def track(self, name: str, props: Mapping[str, Any] | None = None, revenue: Revenue | None = None,
              url: str | None = None, *, referrer: str | None = None, visitor: Any | None = None,
              ip: str | None = None, user_agent: str | None = None, timestamp: Timestamp | None = None,
              event_id: str | None = None) -> None:
        """Queue one event and return at once. With no `url`, the event belongs to the site's root page.

        `visitor` is your user key (hashed by the collector, never stored); `ip` and `user_agent` are
        the visitor's, used for location, device and the visitor id, never stored. `event_id` defaults
        to a fresh uuid4; pass your own (an order number) to make the event idempotent across runs.
        """
        if self._closed:
            self._queue.dropped += 1
            return
        n = self._put((name, url, referrer, dict(props) if props else None, revenue, visitor, ip, user_agent,
                       time.time() if timestamp is None else explicit_time(timestamp), event_id))
        if self._sender is None:
            self._start()
        elif n and n % self._batch_size == 0:
            self._wake_sender()

    def pageview(self, url: str, *, referrer: str | None = None, user_agent: str | None = None,
                 ip: str | None = None, visitor: Any | None = None, props: Mapping[str, Any] | None = None,
                 timestamp: Timestamp | None = None) -> None:
        """Queue a pageview of `url` (the middleware calls this for each HTML page it serves)."""
        self.track("pageview", props, None, url, referrer=referrer, visitor=visitor, ip=ip, user_agent=user_agent,
                   timestamp=timestamp)

    @property
    def stats(self) -> Stats:
        return self._queue.stats()

    def __repr__(self) -> str:
        return f"<strana_sdk.{type(self).__name__} {self.options.url} site={self.options.site!r} {self.stats}>"


class Client(BaseClient):
    """Send events to a Strana collector from any Python program, without ever blocking the caller.

    >>> client = Client("https://stats.example.com", site="example.com")
    >>> client.track("signup", props={"plan": "pro"}, revenue=(9.5, "EUR"), visitor=user.id)

    Events wait in a bounded queue (`max_queue`; when full, `drop="oldest"` or `"newest"` is dropped
    and counted in `stats.dropped`) and a background thread sends them in gzipped batches of up to
    `batch_size`, at least every `flush_interval` seconds. Network errors, 429 and 5xx are retried
    with exponential backoff and jitter, honouring Retry-After, up to `max_retries` times (None:
    until shutdown); every event carries a uuid4 `event_id`, so a retry never counts it twice. A 4xx
    is not retried: it is logged with the collector's message. `shutdown()` runs at exit.
    """

    def __init__(self, url: str, site: str, **options: Any) -> None:
        super().__init__(url, site, **options)
        if hasattr(os, "register_at_fork"):  # a pre-forking server: the child starts its own sender
            ref = weakref.ref(self)
            os.register_at_fork(after_in_child=lambda: _reset_in_child(ref))

    def _reset(self) -> None:
        super()._reset()
        self._wake = threading.Event()
        self._interrupt = threading.Event()
        self._start_lock = threading.Lock()

    def _wake_sender(self) -> None:
        self._wake.set()

    # ---- sending ----

    def _start(self) -> None:
        with self._start_lock:
            if self._sender is None:
                thread = threading.Thread(target=self._run, name="strana-sdk-sender", daemon=True)
                thread.start()
                self._sender = thread

    def _remaining(self) -> float | None:
        deadline = self._deadline
        return None if deadline is None else deadline - time.monotonic()

    def _sleep(self, delay: float) -> bool:
        end = time.monotonic() + delay
        while True:
            now, deadline = time.monotonic(), self._deadline
            if deadline is not None and now >= deadline:
                return False
            if now >= end:
                return True
            if self._interrupt.wait((end if deadline is None else min(end, deadline)) - now):
                self._interrupt.clear()

    def _run(self) -> None:
        queue, opts = self._queue, self.options
        while True:
            if not self._closing:
                self._wake.wait(opts.flush_interval)  # a full batch, flush() or shutdown() wakes it early
            self._wake.clear()
            while True:
                left = self._remaining()
                if left is not None and left <= 0:
                    return
                items = queue.take(self._batch_size)
                if not items:
                    break
                try:
                    drive(items, opts, queue, self._transport, self._sleep, self._remaining)
                except Exception:  # a bug must not kill the sender: count the batch and carry on
                    log.exception("strana_sdk: could not send a batch of %d events", len(items))
                    queue.settle(failed=len(items))
            if self._closing:
                return

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued so far; wait up to `timeout` seconds. True when all of it was dealt with
        (sent, or rejected by the collector); False on timeout, with the rest still queued or in retry."""
        mark = self._queue.mark()
        if self._queue.is_settled(mark):
            return True
        if self._sender is None:
            self._start()
        self._wake.set()
        return self._queue.wait_settled(mark, timeout)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Stop taking events, send what is queued within `timeout` seconds (default `shutdown_timeout`),
        then stop the sender. What is still unsent then is counted in `stats.failed`. True if nothing was."""
        if self._closed:
            return self._queue.is_settled(self._queue.mark())
        self._closed = True
        timeout = self._shutdown_timeout if timeout is None else timeout
        mark, failed_before = self._queue.mark(), self._queue.stats().failed
        self._deadline = time.monotonic() + timeout
        self._closing = True
        self._wake.set()
        self._interrupt.set()
        thread = self._sender
        if thread is not None:
            thread.join(timeout + 1.0)
        leftover = self._queue.take_all()
        if leftover:
            log.error("strana_sdk: %d events were still unsent after %.1fs at shutdown; dropped", len(leftover),
                      timeout)
            self._queue.settle(failed=len(leftover))
        self._transport.close()
        return self._queue.is_settled(mark) and self._queue.stats().failed == failed_before

    close = shutdown

    def _shutdown_at_exit(self) -> None:
        self.shutdown()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()


def _reset_in_child(ref: Callable[[], Client | None]) -> None:
    client = ref()
    if client is not None:
        client._reset()  # the parent's queue and thread are not ours: start afresh


def _shutdown_at_exit(ref: Callable[[], BaseClient | None]) -> None:
    client = ref()
    if client is not None and not client._closed:
        client._shutdown_at_exit()


