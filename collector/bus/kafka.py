"""The Kafka bus (confluent-kafka): ingest publishes with acks=all, workers consume and store exactly once.

Why confluent-kafka: its idempotent producer works against every broker we
tried, tansu included (aiokafka's does not). Its calls block, so:

- the producer's delivery callbacks are served by `poll()` in a thread and
  resolve the request's future with `loop.call_soon_threadsafe`; `publish`
  never blocks the event loop. At most `[bus] max_in_flight` events wait for
  the broker's ack; past that ingest answers 503 instead of growing memory,
  and a message not acked within `publish_timeout_ms` fails (503) too.
- every consumer call runs in one dedicated thread.

Exactly once into the sink: the worker stores each partition's next offset
in the same transaction as the rows (`bus_positions`); when a partition is
assigned (statically with `[worker] partitions`, or by the group's
`on_assign`), the consumer seeks to that stored offset, and it skips any
message below it. The group's committed offset is written only after the
store committed, for lag and for a partition's first owner. tansu reports
wrong end offsets (ListOffsets latest), so nothing here depends on them; lag
uses the high watermark seen on fetches and is approximate.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_STORED, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from collector.bus import BusError, BusUnavailable, Envelope
from collector.bus.wire import decode, split

log = logging.getLogger("strana.kafka")
FENCED = (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError._FATAL)


def client_config(bus) -> dict:
    """Connection settings shared by producer, consumer and admin; TLS/SASL options pass through."""
    return {"bootstrap.servers": bus.brokers, "logger": log,
            **{str(k): v if isinstance(v, bool | int | float) else str(v) for k, v in bus.kafka_options.items()}}


def ensure_topics(settings) -> None:
    """Check the brokers answer and make the events and salts topics; a clear BusError if not."""
    bus = settings.bus
    admin = AdminClient(client_config(bus))
    try:
        topics = admin.list_topics(timeout=bus.connect_timeout_ms / 1000).topics
    except KafkaException as exc:
        raise BusError(f"[bus] brokers: cannot reach Kafka at {bus.brokers} ({exc.args[0].str()})") from None
    wanted = []
    if bus.topic not in topics:
        wanted.append(NewTopic(bus.topic, bus.partitions, 1))
    elif len(topics[bus.topic].partitions) != bus.partitions:
        raise BusError(f"[bus] partitions = {bus.partitions}, but topic {bus.topic} at {bus.brokers} has "
                       f"{len(topics[bus.topic].partitions)}")
    if bus.salts not in topics:
        # compacted: one salt per day key; delete: the broker drops old salts even if it never compacts
        wanted.append(NewTopic(bus.salts, 1, 1, config={"cleanup.policy": "compact,delete",
                                                         "retention.ms": str(3 * 86_400_000)}))
    for name, future in admin.create_topics(wanted).items() if wanted else ():
        try:
            future.result(bus.connect_timeout_ms / 1000)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise BusError(f"[bus] topic: cannot create {name} at {bus.brokers} ({exc.args[0].str()})") from None


@dataclass
class KafkaDelivery:
    envelopes: list[Envelope]
    position: dict[tuple[str, int], int]
    first: dict[int, int]
    bus: KafkaBus = field(repr=False)

    def ack(self) -> None:
        self.bus._stored(self)

    def fail(self, exc: BaseException) -> None:
        self.bus._rewind(self)


class KafkaBus:
    def __init__(self, settings, *, consume: bool = False):
        bus = settings.bus
        self.settings = settings
        self.topic = bus.topic
        self.stream = f"kafka:{bus.topic}"
        self.partitions = bus.partitions
        self.max_in_flight = bus.max_in_flight
        self.batch = settings.ingest.commit_rows
        self.consume = consume
        self.producer: Producer | None = None
        self.consumer: Consumer | None = None
        self.owned: list[int] | None = None
        self.next: dict[int, int] = {}  # partition -> next offset not yet stored (from the sink, then acks)
        self.assigned: set[int] = set()
        self.lag: dict[int, int] = {}
        self._in_flight = 0
        self._closed = False
        self._threads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="strana-kafka-consumer")
        self._poller: threading.Thread | None = None
        self._backoff = 0.0
        self._drain_until = 0.0
        self._retired: list[Producer] = []
        self._generation = 0

    # ---- ingest side ----

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        cfg = client_config(self.settings.bus)
        if not self.consume:
            self.producer = self._new_producer()
            self._poller = threading.Thread(target=self._poll_producer, name="strana-kafka-poll", daemon=True)
            self._poller.start()
        else:
            await self.loop.run_in_executor(self._threads, self._open_consumer, cfg)

    def _new_producer(self) -> Producer:
        timeout = self.settings.bus.publish_timeout_ms
        gen = self._generation
        return Producer({**client_config(self.settings.bus), "enable.idempotence": True, "acks": "all",
                         "linger.ms": 2, "message.timeout.ms": timeout, "request.timeout.ms": min(timeout, 30000),
                         "error_cb": lambda err: self._on_error(err, gen)})

    def _on_error(self, err, generation: int) -> None:
        if err.fatal():
            self.loop.call_soon_threadsafe(self._replace_producer, err, generation)

    def _replace_producer(self, err, generation: int) -> None:
        """An idempotent producer that hit a fatal error (tansu fences it after the epoch bump that follows a
        timed-out message) takes nothing more: put a new one in its place, fail what the old one still held
        (those requests get 503), and keep polling it until its callbacks have all run."""
        if self._closed or generation != self._generation:
            return  # already replaced
        self._generation += 1
        log.warning("kafka: producer failed for good (%s); starting a new one", err.str())
        old, self.producer = self.producer, self._new_producer()
        old.purge(in_queue=True, in_flight=True, blocking=False)
        self._retired.append(old)

    def _poll_producer(self) -> None:
        while not self._closed or (len(self.producer) and time.monotonic() < self._drain_until):
            self.producer.poll(0.05)
            for old in list(self._retired):
                old.poll(0)
                if not len(old):
                    self._retired.remove(old)

    def pending(self) -> int:
        return self._in_flight

    async def publish(self, envelope: Envelope) -> None:
        if self._closed:
            raise BusUnavailable("shutting down")
        n = len(envelope.events) + 1
        if self._in_flight + n > self.max_in_flight:
            raise BusUnavailable("the broker is not keeping up: too many events waiting for its ack")
        futures = []
        self._in_flight += n
        try:
            for part, body, _ in split(envelope, self.partitions):
                future = self.loop.create_future()
                self.producer.produce(self.topic, body, partition=part,
                                      on_delivery=self._resolver(future, self._generation))
                futures.append(future)
            await asyncio.gather(*futures)
        except BufferError:
            raise BusUnavailable("the producer's queue is full") from None
        except KafkaException as exc:
            raise BusUnavailable(f"the broker refused the event: {exc.args[0].str()}") from None
        finally:
            self._in_flight -= n

    def _resolver(self, future: asyncio.Future, generation: int):
        def resolve(err, _msg) -> None:
            self.loop.call_soon_threadsafe(_settle, future, err)
            if err is not None and (err.fatal() or err.code() in FENCED):
                self.loop.call_soon_threadsafe(self._replace_producer, err, generation)
        return resolve

    # ---- worker side ----

    def consume_from(self, positions: dict[tuple[str, int], int], owned: list[int] | None) -> None:
        """Where the sink got to (bus_positions), and the partitions this worker owns (None: the group decides)."""
        self.next = {part: offset for (stream, part), offset in positions.items() if stream == self.stream}
        self.owned = owned

    def _open_consumer(self, cfg: dict) -> None:
        bus = self.settings.bus
        self.consumer = Consumer({**cfg, "group.id": bus.group, "enable.auto.commit": False,
                                  "auto.offset.reset": "earliest", "session.timeout.ms": bus.session_timeout_ms,
                                  "heartbeat.interval.ms": max(100, bus.session_timeout_ms // 5),
                                  "max.poll.interval.ms": max(60_000, bus.session_timeout_ms)})
        if self.owned is not None:
            parts = [TopicPartition(self.topic, p, self.next.get(p, OFFSET_STORED)) for p in self.owned]
            self.consumer.assign(parts)
            self.assigned = set(self.owned)
        else:
            self.consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _on_assign(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        """Seek to what this worker's sink stored; a partition it never stored starts at the group's offset.
        The later of the two wins, so a partition handed back after another worker moved it on is not re-read."""
        committed = {tp.partition: tp.offset for tp in consumer.committed(parts, timeout=10)}
        for tp in parts:
            stored, group = self.next.get(tp.partition, -1), committed.get(tp.partition, -1)
            tp.offset = max(stored, group) if max(stored, group) >= 0 else OFFSET_STORED
            if tp.offset >= 0:
                self.next[tp.partition] = tp.offset
        consumer.assign(parts)
        self.assigned |= {tp.partition for tp in parts}
        log.info("kafka: assigned partitions %s", sorted(self.assigned))

    def _on_revoke(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        self.assigned -= {tp.partition for tp in parts}
        for tp in parts:
            self.lag.pop(tp.partition, None)

    def _poll(self) -> tuple[list[Envelope], dict[int, int], dict[int, int]]:
        envelopes, first, nxt = [], {}, {}
        for msg in self.consumer.consume(self.batch, 0.25):
            if msg.error():
                log.warning("kafka: %s", msg.error().str())
                continue
            part, offset = msg.partition(), msg.offset()
            if offset < self.next.get(part, -1):
                continue  # already stored: a redelivery after a rewind or a restart
            try:
                envelopes.append(decode(msg.value()))
            except Exception as exc:
                log.error("kafka: skipping undecodable message %s/%d@%d: %s", self.topic, part, offset, exc)
            first.setdefault(part, offset)
            nxt[part] = offset + 1
        for part in self.assigned:
            _, high = self.consumer.get_watermark_offsets(TopicPartition(self.topic, part), cached=True)
            if high is not None and high >= 0 and part in self.next:
                self.lag[part] = max(0, high - self.next[part])
        return envelopes, first, nxt

    async def deliveries(self):
        while not self._closed:
            if self._backoff:
                await asyncio.sleep(self._backoff)
                self._backoff = 0.0
            envelopes, first, nxt = await self.loop.run_in_executor(self._threads, self._poll)
            if first:
                position = {(self.stream, part): offset for part, offset in nxt.items()}
                yield KafkaDelivery(envelopes, position, first, self)

    def _stored(self, delivery: KafkaDelivery) -> None:
        for (_, part), offset in delivery.position.items():
            self.next[part] = offset
        offsets = [TopicPartition(self.topic, part, off) for (_, part), off in delivery.position.items()]
        self._threads.submit(self._commit, offsets)

    def _commit(self, offsets: list[TopicPartition]) -> None:
        try:  # after the sink committed: only for lag and for a partition's next owner
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            log.info("kafka: offset commit not taken (%s); the sink holds the position", exc.args[0].str())

    def _rewind(self, delivery: KafkaDelivery) -> None:
        """The store failed: read the same messages again, after a pause."""
        self._backoff = 1.0
        self._threads.submit(lambda: [self.consumer.seek(TopicPartition(self.topic, part, offset))
                                      for part, offset in delivery.first.items()])

    def status(self) -> dict:
        return {"bus": "kafka", "topic": self.topic, "partitions": sorted(self.assigned),
                "next_offsets": dict(sorted(self.next.items())), "lag": sum(self.lag.values()),
                "lag_note": "approximate: high watermark seen on the last fetch", "in_flight": self._in_flight}

    async def stop(self) -> None:
        """Take no more events; wait (at most the publish timeout) for the acks of those sent."""
        self._drain_until = time.monotonic() + self.settings.bus.publish_timeout_ms / 1000 + 1
        self._closed = True
        if self._poller:
            await asyncio.to_thread(self._poller.join)

    async def close(self) -> None:
        if self.consumer is not None:
            await asyncio.get_running_loop().run_in_executor(self._threads, self.consumer.close)
        self._threads.shutdown(wait=True)


def _settle(future: asyncio.Future, err) -> None:
    if future.done():
        return
    if err is None:
        future.set_result(None)
    else:
        future.set_exception(BusUnavailable(f"the broker did not acknowledge the event: {err.str()}"))
