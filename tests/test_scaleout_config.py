"""Scale-out set-up: clear one-line errors for a missing broker, shared salt stores, the wire format's privacy."""

from __future__ import annotations

import datetime as dt
import os
import subprocess

import pytest
from brokers import Nats, Tansu
from conftest import ROOT, STRANA, free_port

from collector.bus import BusError, Envelope, parse_partitions
from collector.bus.wire import WIRE_FIELDS, decode, partition_of, split
from collector.events import FIELD_NAMES, Hit
from collector.salts import SaltKeeper
from collector.settings import load


def run_cli(args: list[str], env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*STRANA, *args], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("kind, setting", [("kafka", "brokers"), ("nats", "servers")])
@pytest.mark.parametrize("command", [["serve", "--role", "ingest"], ["worker"]])
def test_unreachable_broker_is_one_clear_line(tmp_path, kind, setting, command):
    address = f"127.0.0.1:{free_port()}"
    env = {"STRANA_BUS__KIND": kind, f"STRANA_BUS__{setting.upper()}": address,
           "STRANA_BUS__CONNECT_TIMEOUT_MS": "1000", "STRANA_SERVER__DATA_DIR": str(tmp_path)}
    done = run_cli(command, env)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"[bus] {setting}" in lines[0] and address in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_role_and_bus_must_fit(tmp_path):
    done = run_cli(["serve", "--role", "ingest"], {"STRANA_SERVER__DATA_DIR": str(tmp_path)})
    assert done.returncode == 1 and "[bus] kind = memory" in done.stderr and "Traceback" not in done.stderr
    done = run_cli(["serve"], {"STRANA_BUS__KIND": "nats", "STRANA_SERVER__DATA_DIR": str(tmp_path)})
    assert done.returncode == 1 and "--role ingest" in done.stderr and "Traceback" not in done.stderr


# ---- the wire: only anonymous fields travel, a visitor always lands in one partition

def test_wire_carries_no_transient_field():
    assert set(WIRE_FIELDS) == {*FIELD_NAMES, "prev_visitor_id", "client_event_id"}
    hit = Hit(event_id=b"\x01" * 16, site="example.com", visitor_id=42, prev_visitor_id=7, ip="198.51.100.7",
              user_agent="Mozilla/5.0 (Secret UA)", url="https://example.com/?email=a@b", raw_referrer="https://r/?q=x",
              params="email=a@b", visitor_key="user-123", props={"plan": "pro"})
    [(part, body, msg_id)] = split(Envelope([hit], {("example.com", "2025-01-01", "bot_ua"): 3}), 8)
    for secret in (b"198.51.100.7", b"Secret UA", b"email", b"user-123", b"q=x"):
        assert secret not in body
    assert part == partition_of("example.com", 42, 8) and msg_id == hit.event_id.hex()
    envelope = decode(body)
    [back] = envelope.events
    assert (back.visitor_id, back.prev_visitor_id, back.props) == (42, 7, {"plan": "pro"})
    assert envelope.drops == {("example.com", "2025-01-01", "bot_ua"): 3}


def test_partitions_setting():
    assert parse_partitions("", 8) is None
    assert parse_partitions("0-2,5", 8) == [0, 1, 2, 5]
    for bad in ("8", "a-b", "3-9"):
        with pytest.raises(BusError, match=r"\[worker\] partitions"):
            parse_partitions(bad, 8)


# ---- salts shared by every ingest process through the bus

@pytest.fixture(params=["kafka", "nats"])
def salt_stores(request, tmp_path):
    broker = {"kafka": Tansu, "nats": Nats}[request.param](tmp_path / "broker").start()
    settings = load(environ=broker.env())
    if request.param == "kafka":
        from collector.app import check_bus
        from collector.salts_kafka import KafkaSaltStore as Store

        check_bus(settings, "ingest")
    else:
        from collector.salts_nats import NatsSaltStore as Store
    stores = [Store(settings), Store(settings)]
    yield stores
    for store in stores:
        store.close()
    broker.stop()


def test_salts_are_shared_and_deleted(salt_stores):
    a, b = salt_stores
    today = dt.date(2025, 3, 2)
    a.create(today - dt.timedelta(days=2), b"old" * 8)
    assert a.create(today, b"A" * 32) == b"A" * 32
    assert b.create(today, b"B" * 32) == b"A" * 32  # a second process racing for the same day keeps the first salt
    assert a.load()[today] == b.load()[today] == b"A" * 32
    day = (today - dt.date(1970, 1, 1)).days
    assert SaltKeeper(a).pair(day) == SaltKeeper(b).pair(day) == (b"A" * 32, None)
    assert b.delete_before(today - dt.timedelta(days=1)) == 1
    assert set(a.load()) == {today}
    assert b.delete_before(today - dt.timedelta(days=1)) == 0  # nothing left to delete, even where a purge lingers
