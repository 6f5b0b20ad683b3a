"""Daily salts in a compacted Kafka topic, so every ingest process on Kafka hashes visitors with the same salt.

Why a topic: Kafka is the only shared store such a deployment has. The topic
(`[bus] salts`, one partition) is made with `cleanup.policy=compact,delete`
and a 3-day retention: compaction keeps one record per day key, a tombstone
deletes a day, and retention removes old salts even on a broker that never
compacts. How soon a deleted salt's bytes leave the broker's disk is the
broker's retention: a salt is unrecoverable from Strana at once, and from
the broker within three days.

Reading to the end of a topic needs its end offset, which tansu reports
wrongly, so `load` writes a marker record first and reads until it sees it.
The first record for a day wins (every reader sees the same order), so two
ingest processes creating a day's salt at once agree on one.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition

from collector.bus import BusError
from collector.bus.kafka import client_config

MARKER = b"marker"


class KafkaSaltStore:
    def __init__(self, settings):
        bus = settings.bus
        self.topic = bus.salts
        self.timeout = bus.connect_timeout_ms / 1000 + 10
        self.config = client_config(bus)
        self.producer = Producer({**self.config, "enable.idempotence": True, "acks": "all"})
        self.lock = threading.Lock()

    def _send(self, key: bytes, value: bytes | None) -> None:
        errors = []
        self.producer.produce(self.topic, value, key, partition=0, on_delivery=lambda err, _m: errors.append(err))
        self.producer.flush(self.timeout)
        if not errors or errors[0] is not None:
            raise BusError(f"[bus] salts: could not write to topic {self.topic} ({errors[0] if errors else 'timeout'})")

    def load(self) -> dict[dt.date, bytes]:
        with self.lock:
            marker = secrets.token_hex(8).encode()
            self._send(MARKER, marker)
            consumer = Consumer({**self.config, "group.id": "strana-salts-reader", "enable.auto.commit": False})
            try:
                consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
                salts: dict[dt.date, bytes] = {}
                deadline = time.monotonic() + self.timeout
                while time.monotonic() < deadline:
                    for msg in consumer.consume(1000, 0.5):
                        if msg.error():
                            continue
                        key, value = msg.key(), msg.value()
                        if key == MARKER:
                            if value == marker:
                                return salts
                            continue
                        day = dt.date.fromisoformat(key.decode())
                        if value is None:
                            salts.pop(day, None)
                        else:
                            salts.setdefault(day, value)
                raise BusError(f"[bus] salts: could not read topic {self.topic} to its end in {self.timeout:.0f}s")
            except KafkaException as exc:
                raise BusError(f"[bus] salts: could not read topic {self.topic} ({exc})") from None
            finally:
                consumer.close()

    def create(self, day: dt.date, salt: bytes) -> bytes:
        if (kept := self.load().get(day)) is not None:
            return kept
        with self.lock:
            self._send(day.isoformat().encode(), salt)
        return self.load()[day]  # the first one written for the day wins; load() reads up to our own write

    def delete_before(self, day: dt.date) -> int:
        old = [d for d in self.load() if d < day]
        with self.lock:
            for d in old:
                self._send(d.isoformat().encode(), None)  # a tombstone: compaction drops the salt
        return len(old)

    def close(self) -> None:
        self.producer.flush(5)
