"""What the thread and asyncio clients share: options, counters, the bounded queue, events, retry decisions.

The caller's cost is kept to a tuple and a deque append: `track()` only records
its arguments and the time. The sender turns queued calls into batch events
(assigning each a uuid4 `event_id` once, before the first attempt, so a retry
of an already stored batch is deduplicated by the collector), encodes and
gzips them, and decides what to do with each answer.
"""

from __future__ import annotations

import collections
import datetime as dt
import gzip
import json
import logging
import random
import threading
import uuid
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Optional, Union
from urllib.parse import urlsplit

log = logging.getLogger("strana_sdk")

Revenue = Union[tuple[float, str], Mapping[str, Any]]
"""`(9.5, "EUR")` or `{"amount": 9.5, "currency": "EUR"}`."""
Timestamp = Union[dt.datetime, float, int, str]
"""An aware datetime (naive ones are taken as UTC), epoch seconds, or ISO 8601 text."""

# One queued call: (name, url, referrer, props, revenue, visitor, ip, user_agent, when, event_id).
Item = tuple[str, Optional[str], Optional[str], Optional[dict[str, Any]], Optional[Revenue], Optional[str],
             Optional[str], Optional[str], Any, Optional[str]]

BATCH_PATH = "/api/v1/batch"
MAX_BATCH_EVENTS = 500  # the collector's default [ingest] max_batch_events


@dataclass(frozen=True)
class Stats:
    """Counters since the client was made, in events (except `retries` and `batches`)."""

    queued: int  # waiting to be sent now
    sent: int  # answered 2xx by the collector (stored, or ignored by its rules: see `ignored`)
    ignored: int  # of `sent`, not counted by the collector (a bot, a duplicate event_id, ...)
    dropped: int  # dropped because the queue was full (by the `drop` policy)
    rejected: int  # refused by the collector with a 4xx (bad input): never retried
    failed: int  # given up on: retries exhausted, or still unsent when shutdown's timeout ran out
    retries: int  # batch attempts that failed and were tried again
    batches: int  # batches the collector accepted


class Options:
    """Settings of a client, checked once when it is made."""

    def __init__(self, url: str, site: str, *, batch_size: int = 100, flush_interval: float = 1.0,
                 max_queue: int = 10_000, drop: str = "oldest", max_retries: int | None = 10,
                 backoff: float = 0.5, max_backoff: float = 30.0, timeout: float = 10.0, gzip_level: int = 5,
                 send_timestamps: bool = True, debug: bool = False) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be the collector's http(s) address like https://stats.example.com, got {url!r}")
        if not site or "/" in site:
            raise ValueError(f"site must be a site domain like example.com, got {site!r}")
        if drop not in ("oldest", "newest"):
            raise ValueError(f"drop must be 'oldest' or 'newest', got {drop!r}")
        if not 1 <= batch_size <= MAX_BATCH_EVENTS:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_EVENTS}, got {batch_size}")
        if max_queue < 1 or flush_interval <= 0 or timeout <= 0:
            raise ValueError("max_queue, flush_interval and timeout must be positive")
        self.url = url.rstrip("/")
        self.endpoint = self.url + BATCH_PATH
        self.site = site.lower()
        self.root_url = f"https://{self.site}/"
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.drop = drop
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.gzip_level = gzip_level
        self.send_timestamps = send_timestamps
        self.debug = debug


class Queue:
    """A bounded FIFO that never blocks the caller; counts what it drops and what has been settled.

    `put` is called on the caller's thread, everything else on the sender's. `settle` records the
    fate of events taken earlier, so `wait_settled` can tell a flush when everything queued before it
    has been sent, rejected or given up on.
    """

    def __init__(self, max_size: int, drop: str) -> None:
        self.items: collections.deque[Item] = collections.deque()
        self.max_size = max_size
        self.drop_oldest = drop == "oldest"
        self.lock = threading.Lock()
        self.settled_cond = threading.Condition(threading.Lock())
        self.put_total = 0  # items accepted into the queue
        self.settled_total = 0  # items whose fate is known (sent, rejected, failed, or dropped as oldest)
        self.dropped = 0
        self.sent = self.ignored = self.rejected = self.failed = self.retries = self.batches = 0

    def put(self, item: Item) -> int:
        """Append; returns the queue's length after (0 when the item itself was dropped)."""
        with self.lock:
            items = self.items
            if len(items) >= self.max_size:
                self.dropped += 1
                if not self.drop_oldest:
                    return 0
                items.popleft()
                self.settled_total += 1
            items.append(item)
            self.put_total += 1
            return len(items)

    def take(self, n: int) -> list[Item]:
        with self.lock:
            items = self.items
            k = min(n, len(items))
            return [items.popleft() for _ in range(k)]

    def take_all(self) -> list[Item]:
        with self.lock:
            out = list(self.items)
            self.items.clear()
            return out

    def settle(self, *, sent: int = 0, ignored: int = 0, rejected: int = 0, failed: int = 0, batches: int = 0) -> None:
        with self.settled_cond:
            with self.lock:
                self.sent += sent
                self.ignored += ignored
                self.rejected += rejected
                self.failed += failed
                self.batches += batches
                self.settled_total += sent + rejected + failed
            self.settled_cond.notify_all()

    def count_retry(self) -> None:
        with self.lock:
            self.retries += 1

    def mark(self) -> int:
        """How many items have been put so far: pass it to `wait_settled`."""
        with self.lock:
            return self.put_total

    def wait_settled(self, mark: int, timeout: float | None) -> bool:
        with self.settled_cond:
            return self.settled_cond.wait_for(lambda: self.settled_total >= mark, timeout)

    def is_settled(self, mark: int) -> bool:
        with self.lock:
            return self.settled_total >= mark

    def stats(self) -> Stats:
        with self.lock:
            return Stats(queued=len(self.items), sent=self.sent, ignored=self.ignored, dropped=self.dropped,
                         rejected=self.rejected, failed=self.failed, retries=self.retries, batches=self.batches)


def _iso(when: Any) -> str | None:
    if when is None:
        return None
    if isinstance(when, str):
        return when
    if isinstance(when, dt.datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        return when.isoformat()
    return dt.datetime.fromtimestamp(float(when), tz=dt.timezone.utc).isoformat()


def to_event(item: Item, opts: Options) -> dict[str, Any]:
    """A queued call → one event of the batch API (Plausible's short keys plus the server-side fields)."""
    name, url, referrer, props, revenue, visitor, ip, user_agent, when, event_id = item
    event: dict[str, Any] = {"n": name, "u": url or opts.root_url, "d": opts.site,
                             "event_id": event_id or str(uuid.uuid4())}
    if referrer:
        event["r"] = referrer
    if props:
        event["p"] = props
    if revenue is not None:
        if isinstance(revenue, Mapping):
            event["$"] = {"amount": revenue.get("amount"), "currency": revenue.get("currency")}
        else:
            amount, currency = revenue
            event["$"] = {"amount": amount, "currency": currency}
    if visitor is not None:
        event["visitor"] = str(visitor)
    if ip:
        event["ip"] = ip
    if user_agent:
        event["user_agent"] = user_agent
    if when is not None and (opts.send_timestamps or not isinstance(when, float)):
        event["timestamp"] = _iso(when)
    return event


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str).encode()


def encode(events: list[dict[str, Any]], level: int) -> tuple[bytes, list[dict[str, Any]], list[dict[str, Any]]]:
    """gzip(JSON) of a batch → (body, events in it, events that cannot be JSON at all, e.g. a NaN amount)."""
    try:
        raw = _dumps({"events": events})
    except ValueError:
        good, bad = [], []
        for event in events:
            try:
                _dumps(event)
                good.append(event)
            except ValueError:
                bad.append(event)
        events = good
        raw = _dumps({"events": good})
        return gzip.compress(raw, compresslevel=level), events, bad
    return gzip.compress(raw, compresslevel=level), events, []


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body.decode("utf-8", "replace"))
        except ValueError:
            return None

    def message(self) -> str:
        data = self.json()
        if isinstance(data, dict) and data.get("error"):
            return str(data["error"])
        return self.body.decode("utf-8", "replace")[:500] or f"HTTP {self.status}"


# What to do after an attempt.
OK, RETRY, REJECT, SPLIT, PARTIAL = "ok", "retry", "reject", "split", "partial"


def judge(reply: Reply, n_events: int) -> str:
    if 200 <= reply.status < 300:
        return OK
    if reply.status == 429 or reply.status >= 500:
        return RETRY
    if reply.status == 413 and n_events > 1:
        return SPLIT
    if reply.status == 422:
        data = reply.json()
        if isinstance(data, dict) and isinstance(data.get("errors"), list) and data["errors"]:
            return PARTIAL
    return REJECT


def bad_indexes(reply: Reply) -> dict[int, str]:
    """A 422 for a batch lists each bad event by index: index → "field: message"."""
    out: dict[int, str] = {}
    for err in reply.json().get("errors", []):
        if isinstance(err, dict) and isinstance(err.get("index"), int):
            out[err["index"]] = f"{err.get('field')}: {err.get('message')}"
    return out


def retry_after(reply: Reply | None) -> float | None:
    if reply is None:
        return None
    value = reply.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, (when - dt.datetime.now(dt.timezone.utc)).total_seconds())


def backoff_delay(attempt: int, opts: Options, reply: Reply | None) -> float:
    """Exponential backoff with jitter (half fixed, half random); the server's Retry-After wins when longer."""
    ceiling = min(opts.max_backoff, opts.backoff * (2 ** (attempt - 1)))
    delay = ceiling / 2 + random.uniform(0, ceiling / 2)
    hint = retry_after(reply)
    return max(delay, min(hint, 300.0)) if hint is not None else delay


def ignored_count(reply: Reply) -> int:
    data = reply.json()
    if isinstance(data, dict) and isinstance(data.get("ignored"), list):
        return len(data["ignored"])
    return 0


def describe(events: Sequence[dict[str, Any]]) -> str:
    names = collections.Counter(e.get("n") for e in events)
    return ", ".join(f"{n}×{c}" for n, c in names.most_common(5))


def enable_debug_logging() -> None:
    """debug=True: make each batch visible even when the app has not configured logging."""
    log.setLevel(logging.DEBUG)
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        log.addHandler(handler)


def delivery(items: list[Item], opts: Options, queue: Queue) -> Generator[tuple[str, Any], Any, None]:
    """The life of one batch, without I/O: yields ("send", body) and gets back a Reply or the exception
    raised, yields ("sleep", seconds) and gets back False when it must give up (shutdown's deadline).
    The thread client and the asyncio client drive it with their own I/O."""
    pending = [[to_event(item, opts) for item in items]]
    while pending:
        events = pending.pop()
        body, events, unencodable = encode(events, opts.gzip_level)
        if unencodable:
            log.error("dropped %d event(s) that cannot be sent as JSON (a NaN or infinite number?): %s",
                      len(unencodable), describe(unencodable))
            queue.settle(rejected=len(unencodable))
        if not events:
            continue
        attempt = 0
        while True:
            result = yield ("send", body)
            reply: Reply | None = None
            if isinstance(result, BaseException):
                verdict, why = RETRY, f"{type(result).__name__}: {result}"
            else:
                reply = result
                verdict, why = judge(reply, len(events)), f"HTTP {reply.status}: {reply.message()}"
            if verdict == OK:
                ignored = ignored_count(reply) if reply else 0
                queue.settle(sent=len(events), ignored=ignored, batches=1)
                if opts.debug:
                    log.debug("sent %d events (%d bytes gzipped, attempt %d): %s -> HTTP %d %s", len(events),
                              len(body), attempt + 1, describe(events), reply.status if reply else 0,
                              reply.body.decode("utf-8", "replace")[:300] if reply else "")
                break
            if verdict == RETRY:
                attempt += 1
                if opts.max_retries is not None and attempt > opts.max_retries:
                    log.error("gave up on a batch of %d events after %d attempts: %s", len(events), attempt, why)
                    queue.settle(failed=len(events))
                    break
                delay = backoff_delay(attempt, opts, reply)
                queue.count_retry()
                log.warning("batch of %d events not stored (%s); retry %d in %.2fs", len(events), why, attempt, delay)
                if not (yield ("sleep", delay)):
                    log.error("gave up on a batch of %d events at shutdown: %s", len(events), why)
                    queue.settle(failed=len(events))
                    break
                continue
            assert reply is not None
            if verdict == SPLIT:
                half = len(events) // 2
                log.warning("collector found a batch of %d events too large (%s); sending it in halves",
                            len(events), why)
                pending += [events[half:], events[:half]]
                break
            bad = bad_indexes(reply) if verdict == PARTIAL else {}
            if bad:
                for index, message in sorted(bad.items()):
                    log.error("collector rejected event %r (HTTP %d), not retrying: %s",
                              events[index].get("n") if index < len(events) else index, reply.status, message)
                rest = [event for i, event in enumerate(events) if i not in bad]
                queue.settle(rejected=len(events) - len(rest))
                if rest:  # a batch is all or nothing: the others were not stored, send them on their own
                    pending.append(rest)
                break
            log.error("collector rejected a batch of %d events, not retrying: %s", len(events), why)
            queue.settle(rejected=len(events))
            break
