"""The NATS JetStream bus (nats-py): ingest publishes and waits for the stream's ack, workers store exactly once.

Why: JetStream is the lighter of the two brokers to run (one static binary,
file storage, KV for the salts) and its publish ack means the event is on
the stream's disk. One stream, `[bus] topic`, holds subjects
`<topic>.<partition>`; a visitor always lands in the same one (see wire.py).
Each message carries `Nats-Msg-Id` (the event id in hex, or a hash of the ids
of a multi-event message), so a retried publish inside the stream's duplicate
window is stored once.

Partitioned consumers: a worker owns a fixed set of partition subjects
(`[worker] partitions`, default all) through one durable pull consumer
filtered on them, named after the set. Exactly once into the sink: the worker
stores each partition's next stream sequence in the same transaction as the
rows (`bus_positions`). At start the consumer is recreated to begin at the
lowest stored sequence of its partitions, and every message below its
partition's stored sequence (redeliveries, replays) is acked and skipped, so
nothing is stored twice and nothing waits for an ack timeout after a crash.
The same reopening happens when the connection comes back (a broker restart):
messages handed to a fetch that died with the connection would otherwise sit
un-acked for the whole ack wait (60 s). Lag is exact here: the consumer's
pending count, and `unacked` its delivered-but-not-acked count.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import nats
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from collector.bus import BusError, BusUnavailable, Envelope
from collector.bus.wire import decode, split

log = logging.getLogger("strana.nats")


def connect_options(bus, *, reconnect: bool = True) -> dict:
    opts: dict = {"servers": [s.strip() for s in bus.servers.split(",") if s.strip()],
                  "connect_timeout": max(1, bus.connect_timeout_ms // 1000), "name": "strana"}
    if reconnect:
        opts.update(allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=0.5)
    else:
        opts.update(allow_reconnect=False, max_reconnect_attempts=0)
    if bus.nats_credentials:
        opts["user_credentials"] = bus.nats_credentials
    if bus.nats_token:
        opts["token"] = bus.nats_token
    return opts


async def _quiet(*_args) -> None:
    return None


async def connect(bus, *, reconnect: bool = True, on_reconnect=_quiet):
    """A connection, or a BusError naming `[bus] servers` and the addresses tried."""
    errors: list[BaseException] = []
    connected = False

    async def on_error(exc) -> None:
        if connected:
            log.warning("nats: %s", exc)
        else:
            errors.append(exc)  # reported once, in the BusError below

    try:
        nc = await asyncio.wait_for(
            nats.connect(**connect_options(bus, reconnect=reconnect), error_cb=on_error,
                         disconnected_cb=_quiet, reconnected_cb=on_reconnect),
            timeout=bus.connect_timeout_ms / 1000 + 1)
    except (NatsError, OSError, TimeoutError) as exc:
        cause = errors[-1] if errors else exc
        raise BusError(f"[bus] servers: cannot reach NATS at {bus.servers} ({cause or type(cause).__name__})") from None
    connected = True
    return nc


async def ensure_stream(settings) -> None:
    """Check the servers answer with JetStream on, and make the events stream."""
    bus = settings.bus
    nc = await connect(bus, reconnect=False)
    try:
        js = nc.jetstream(timeout=bus.connect_timeout_ms / 1000)
        subjects = [f"{bus.topic}.*"]
        try:
            info = await js.stream_info(bus.topic)
            if info.config.subjects != subjects:
                raise BusError(f"[bus] topic: stream {bus.topic} at {bus.servers} has subjects "
                               f"{info.config.subjects}, expected {subjects}")
        except NotFoundError:
            await js.add_stream(StreamConfig(name=bus.topic, subjects=subjects, storage=StorageType.FILE,
                                             duplicate_window=120.0))
        except (NatsError, TimeoutError) as exc:
            raise BusError(f"[bus] servers: NATS at {bus.servers} has no JetStream ({exc})") from None
    finally:
        await nc.close()


@dataclass
class NatsDelivery:
    envelopes: list[Envelope]
    position: dict[tuple[str, int], int]
    messages: list = field(repr=False)
    bus: NatsBus = field(repr=False)

    def ack(self) -> None:
        self.bus._stored(self)

    def fail(self, exc: BaseException) -> None:
        self.bus._retry(self)


class NatsBus:
    def __init__(self, settings, *, consume: bool = False):
        bus = settings.bus
        self.settings = settings
        self.topic = bus.topic
        self.stream = f"nats:{bus.topic}"
        self.partitions = bus.partitions
        self.max_in_flight = bus.max_in_flight
        self.timeout = bus.publish_timeout_ms / 1000
        self.batch = settings.ingest.commit_rows
        self.consume = consume
        self.owned: list[int] = list(range(bus.partitions))
        self.next: dict[int, int] = {}  # partition -> next stream sequence not yet stored
        self.nc = None
        self.sub = None
        self.durable = ""
        self._in_flight = 0
        self._closed = False
        self._pending_acks: set[asyncio.Task] = set()
        self._lag: dict = {}
        self._reopen = False

    async def start(self) -> None:
        self.nc = await connect(self.settings.bus, on_reconnect=self._reconnected)
        self.js = self.nc.jetstream(timeout=self.timeout)
        if self.consume:
            await self._open_consumer()

    # ---- ingest side ----

    def pending(self) -> int:
        return self._in_flight

    async def publish(self, envelope: Envelope) -> None:
        if self._closed:
            raise BusUnavailable("shutting down")
        n = len(envelope.events) + 1
        if self._in_flight + n > self.max_in_flight:
            raise BusUnavailable("the broker is not keeping up: too many events waiting for its ack")
        self._in_flight += n
        try:
            await asyncio.gather(*(
                self.js.publish(f"{self.topic}.{part}", body, timeout=self.timeout,
                                headers={"Nats-Msg-Id": msg_id} if msg_id else None)
                for part, body, msg_id in split(envelope, self.partitions)))
        except (NatsError, TimeoutError, OSError) as exc:
            raise BusUnavailable(f"the broker did not acknowledge the event: {type(exc).__name__}") from None
        finally:
            self._in_flight -= n

    # ---- worker side ----

    async def _reconnected(self) -> None:
        self._reopen = self.consume

    def consume_from(self, positions: dict[tuple[str, int], int], owned: list[int] | None) -> None:
        self.next = {part: seq for (stream, part), seq in positions.items() if stream == self.stream}
        if owned is not None:
            self.owned = owned

    async def _open_consumer(self) -> None:
        """(Re)create this worker's durable consumer at the lowest stored sequence of its partitions: after a
        crash, what was fetched but not stored comes back at once instead of after the ack timeout."""
        group = self.settings.bus.group
        if self.owned == list(range(self.partitions)):
            self.durable = f"{group}-all"
        else:
            self.durable = f"{group}-p" + "_".join(map(str, self.owned))
        start = min((self.next.get(p, 1) for p in self.owned), default=1)
        subjects = [f"{self.topic}.{p}" for p in self.owned]
        config = ConsumerConfig(
            durable_name=self.durable, ack_policy=AckPolicy.ALL, ack_wait=60.0, max_ack_pending=100_000,
            max_deliver=-1, deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start,
            **({"filter_subject": subjects[0]} if len(subjects) == 1 else {"filter_subjects": subjects}))
        try:
            await self.js.delete_consumer(self.topic, self.durable)
        except NotFoundError:
            pass
        await self.js.add_consumer(self.topic, config)
        if self.sub is not None:
            try:
                await self.sub.unsubscribe()
            except NatsError:
                pass
        self.sub = await self.js.pull_subscribe_bind(durable=self.durable, stream=self.topic)
        log.info("nats: consumer %s on partitions %s from sequence %d", self.durable, self.owned, start)

    async def deliveries(self):
        while not self._closed:
            if self._reopen:  # every earlier delivery is stored or nak'ed by now: no batch is in two hands
                self._reopen = False
                try:
                    await self._open_consumer()
                except (NatsError, TimeoutError) as exc:
                    log.warning("nats: reopening the consumer failed (%s); retrying", type(exc).__name__)
                    self._reopen = True
                    await asyncio.sleep(0.5)
                    continue
            try:
                msgs = await self.sub.fetch(self.batch, timeout=0.25)
            except TimeoutError:
                continue
            except NatsError as exc:
                log.warning("nats: fetch failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(0.5)
                continue
            envelopes, nxt = [], {}
            for msg in msgs:
                part = int(msg.subject.rsplit(".", 1)[1])
                seq = msg.metadata.sequence.stream
                if seq < self.next.get(part, 0):
                    continue  # already stored (a redelivery): acked with the rest of the batch
                try:
                    envelopes.append(decode(msg.data))
                except Exception as exc:
                    log.error("nats: skipping undecodable message %s#%d: %s", msg.subject, seq, exc)
                nxt[part] = seq + 1
            if not nxt:
                if msgs:
                    self._ack_last(msgs)
                continue
            position = {(self.stream, part): seq for part, seq in nxt.items()}
            yield NatsDelivery(envelopes, position, msgs, self)

    def _stored(self, delivery: NatsDelivery) -> None:
        for (_, part), seq in delivery.position.items():
            self.next[part] = seq
        self._ack_last(delivery.messages)

    def _ack_last(self, msgs) -> None:
        """AckPolicy.ALL: acking the last message of a batch acks every one before it."""
        task = asyncio.ensure_future(msgs[-1].ack())
        self._pending_acks.add(task)
        task.add_done_callback(self._pending_acks.discard)

    def _retry(self, delivery: NatsDelivery) -> None:
        """The store failed: ask for the batch again after a pause (positions are unchanged, so no skip)."""
        for msg in delivery.messages:
            task = asyncio.ensure_future(msg.nak(delay=1.0))
            self._pending_acks.add(task)
            task.add_done_callback(self._pending_acks.discard)

    async def refresh_lag(self) -> None:
        try:
            info = await self.sub.consumer_info()
            self._lag = {"lag": info.num_pending, "unacked": info.num_ack_pending}
        except (NatsError, TimeoutError, AttributeError):
            pass

    def status(self) -> dict:
        return {"bus": "nats", "stream": self.topic, "consumer": self.durable, "partitions": self.owned,
                "next_sequences": dict(sorted(self.next.items())), "lag": self._lag.get("lag"),
                "unacked": self._lag.get("unacked"), "in_flight": self._in_flight}

    async def stop(self) -> None:
        self._closed = True

    async def close(self) -> None:
        if self._pending_acks:
            await asyncio.wait(self._pending_acks, timeout=5)
        if self.nc is not None:
            await self.nc.close()  # acks are flushed by close; nothing else is owed to the server
