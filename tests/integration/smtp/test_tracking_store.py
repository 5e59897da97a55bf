"""``store.tracking`` and ``store.relay_queue`` (migration 3) on both engines."""

from __future__ import annotations

import pytest

from gateway.errors import ValidationError
from gateway.store import Store
from gateway.store.tracking import MAX_FIELD, TrackingEvent


async def test_append_and_search(store: Store) -> None:
    first = TrackingEvent(at=100.0, event_id="RECEIVE", client_ip="192.0.2.1",
                          connector_id="srv\\Default", message_id="<a@x>",
                          recipients=("Bob@Example.test", "c@outlook.test"),
                          recipient_status=("250", "250"), total_bytes=42,
                          sender_address="alice@example.test", message_subject="hi")
    event_id = await store.tracking.append(first)
    assert event_id > 0
    await store.tracking.append_many([
        TrackingEvent(at=200.0, event_id="RECEIVE", message_id="<b@x>",
                      sender_address="printer@devices.test", recipients=("bob@example.test",),
                      message_subject="x" * (MAX_FIELD + 10))])
    everything = await store.tracking.search()
    assert [e.message_id for e in everything] == ["<a@x>", "<b@x>"]
    assert everything[0].recipients == ("Bob@Example.test", "c@outlook.test")
    assert everything[0].total_bytes == 42 and everything[0].id == event_id
    assert len(everything[1].message_subject) == MAX_FIELD
    assert [e.message_id for e in await store.tracking.search(recipient="bob@example.test")] \
        == ["<a@x>", "<b@x>"]
    assert [e.message_id for e in await store.tracking.search(sender="ALICE@example.test")] \
        == ["<a@x>"]
    assert [e.message_id for e in await store.tracking.search(start=150.0)] == ["<b@x>"]
    assert await store.tracking.search(event_id="DELIVER") == []
    with pytest.raises(ValidationError):
        await store.tracking.append(TrackingEvent(at=1.0, event_id="BOGUS"))


async def test_relay_queue(store: Store) -> None:
    qid = await store.relay_queue.enqueue(sender="alice@example.test",
                                          recipients=["c@outlook.test"], body=b"x\r\n",
                                          message_id="<m@x>", connector_id="srv\\Client",
                                          client_ip="192.0.2.1",
                                          authenticated_as="alice@example.test")
    [queued] = await store.relay_queue.list()
    assert queued.id == qid and queued.status == "ready" and queued.size == 3
    assert await store.relay_queue.body(qid) == b"x\r\n"
    with pytest.raises(ValidationError):
        await store.relay_queue.enqueue(sender="", recipients=[], body=b"", message_id="",
                                        connector_id="", client_ip="")
