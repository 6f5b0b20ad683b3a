"""Event ids made at ingest: unique, consecutive within a process (so the store bit-packs them), a prefix of
their own in a forked child, and what the server stores; client-supplied ids are kept as sent."""

from __future__ import annotations

import multiprocessing
import uuid

from collector.events import new_event_id

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def test_ids_are_uuidv8_and_consecutive():
    ids = [uuid.UUID(bytes=new_event_id()) for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(i.version == 8 and i.variant == uuid.RFC_4122 for i in ids)
    assert [b.int - a.int for a, b in zip(ids, ids[1:], strict=False)] == [1] * (len(ids) - 1)
    assert ids[0].int >> 40 == ids[-1].int >> 40  # one prefix


def _child_id(queue) -> None:
    queue.put(new_event_id())


def test_a_forked_child_draws_its_own_prefix():
    mine = new_event_id()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_id, args=(queue,))
    child.start()
    theirs = queue.get(timeout=30)
    child.join(timeout=30)
    assert int.from_bytes(theirs) >> 40 != int.from_bytes(mine) >> 40
    assert new_event_id() != theirs


def test_stored_ids(server):
    given = "0190f2a4-1b2c-7d3e-8f40-5162738495a6"
    with server.client() as c:
        for i in range(5):
            r = c.post("/api/event", json={"n": "pageview", "u": f"https://example.com/{i}", "d": "example.com"},
                       headers={"user-agent": FIREFOX})
            assert r.status_code == 202
        r = c.post("/api/v1/batch", json={"events": [{"n": "signup", "u": "https://example.com/", "event_id": given}]})
        assert r.status_code == 202
    server.stop()
    with server.db() as db:
        made = [r[0] for r in db.execute("SELECT event_id FROM events WHERE name = 'pageview' "
                                          "ORDER BY pathname").fetchall()]
        client = db.execute("SELECT event_id FROM events WHERE name = 'signup'").fetchone()[0]
    assert all(i.version == 8 for i in made)
    assert [b.int - a.int for a, b in zip(made, made[1:], strict=False)] == [1] * 4  # one request after another
    assert client == uuid.UUID(given)
