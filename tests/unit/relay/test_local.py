"""The relay engine with local recipients on both store engines: categorisation,
delivery into the Inbox, NDRs, loops, tracking."""

from __future__ import annotations

import time
from typing import Any

from gateway.relay.engine import Origin
from tests.unit.relay.helpers import inbox_messages, make_relay, organisation, raw


async def test_local_recipients_get_one_copy(store: Any) -> None:
    boxes = await organisation(store)
    relay = make_relay(store)
    queued = await relay.submit("bob@example.test",
                                ["alice@example.test", "CAROL.ALIAS@example.test",
                                 "carol@EXAMPLE.test", "dave@partner.test"],
                                raw("one"), origin=Origin(client_ip="192.0.2.7"))
    assert queued.local_recipients == 4 and queued.remote_recipients == 0
    await relay.drain()
    assert len(await inbox_messages(store, boxes["alice"].id)) == 1
    # Two addresses of one mailbox: one copy.
    assert len(await inbox_messages(store, boxes["carol"].id)) == 1
    assert len(await inbox_messages(store, boxes["dave"].id)) == 1
    assert await store.queue.list_messages() == []
    events = await store.tracking.search(event_id="DELIVER")
    assert {r for e in events for r in e.recipients} == {
        "alice@example.test", "CAROL.ALIAS@example.test", "carol@EXAMPLE.test",
        "dave@partner.test"}


async def test_categories(store: Any) -> None:
    await organisation(store)
    relay = make_relay(store)
    c = relay.categoriser
    assert (await c.categorise("nobody@example.test")).route == "failed"
    assert (await c.categorise("nobody@partner.test")).route == "remote"
    assert (await c.categorise("someone@ext.test")).route == "remote"
    assert (await c.categorise("alice@outlook.test")).route == "remote"
    assert (await c.categorise("not an address")).route == "failed"


async def test_unknown_recipient_gets_an_ndr_to_the_sender(store: Any) -> None:
    boxes = await organisation(store)
    relay = make_relay(store)
    await relay.submit("bob@example.test", ["ghost@example.test", "alice@example.test"],
                       raw("ghostly"))
    await relay.drain()
    assert len(await inbox_messages(store, boxes["alice"].id)) == 1
    [ndr] = await inbox_messages(store, boxes["bob"].id)
    assert b"Subject: Undeliverable: ghostly" in ndr
    assert b"report-type=delivery-status" in ndr
    assert b"Final-Recipient: rfc822;ghost@example.test" in ndr
    assert b"Status: 5.1.1" in ndr
    assert b"RESOLVER.ADR.ExRecipNotFound" in ndr
    assert b"Message-ID: <ghostly@example.test>" in ndr  # original headers
    assert b"From: Mail Delivery System <postmaster@example.test>" in ndr
    fails = await store.tracking.search(event_id="FAIL")
    assert fails[0].recipients == ("ghost@example.test",)
    assert len(await store.tracking.search(event_id="DSN")) == 1


async def test_no_ndr_to_the_null_sender_or_about_an_ndr(store: Any) -> None:
    boxes = await organisation(store)
    relay = make_relay(store)
    await relay.submit("", ["ghost@example.test"], raw("bounce"))
    # An NDR whose own recipient is unknown does not produce another one.
    await relay.submit("ghost2@example.test", ["ghost@example.test"], raw("loop"))
    await relay.drain()
    assert await store.queue.list_messages() == []
    for mb in boxes.values():
        assert await inbox_messages(store, mb.id) == []
    assert len(await store.tracking.search(event_id="FAIL")) == 2


async def test_hop_count_stops_loops(store: Any) -> None:
    boxes = await organisation(store)
    relay = make_relay(store)
    received = b"".join(b"Received: from a by b; Sat, 28 Nov 2026 10:00:00 +0000\r\n"
                        for _ in range(relay.settings.max_hop_count + 1))
    await relay.submit("bob@example.test", ["alice@example.test"],
                       raw("looping", extra=received))
    await relay.drain()
    assert await inbox_messages(store, boxes["alice"].id) == []
    [ndr] = await inbox_messages(store, boxes["bob"].id)
    assert b"Status: 5.4.6" in ndr


async def test_submit_is_durable_before_return(store_url: str) -> None:
    from gateway.store import open_store

    store = await open_store(store_url)
    boxes = await organisation(store)
    relay = make_relay(store)
    await relay.submit("bob@example.test", ["alice@example.test"], raw("durable"))
    await store.close()
    store = await open_store(store_url)
    try:
        relay = make_relay(store)
        await relay.drain()
        assert len(await inbox_messages(store, boxes["alice"].id)) == 1
    finally:
        await store.close()


async def test_streamed_submission_and_size_limit(store: Any) -> None:
    boxes = await organisation(store)
    relay = make_relay(store, max_size=1000)

    async def chunks(data: bytes):  # type: ignore[no-untyped-def]
        for i in range(0, len(data), 7):
            yield data[i:i + 7]
    await relay.submit("bob@example.test", ["alice@example.test"], chunks(raw("streamed")))
    try:
        await relay.submit("bob@example.test", ["alice@example.test"],
                           chunks(raw("big", body=b"x" * 2000)))
    except Exception as exc:
        assert "size limit" in str(exc)
    else:
        raise AssertionError("an oversized message was queued")
    await relay.drain()
    assert len(await inbox_messages(store, boxes["alice"].id)) == 1


async def test_expired_message_fails_with_4_4_7(store: Any) -> None:
    from dataclasses import replace

    from tests.unit.relay.helpers import FAST
    boxes = await organisation(store)
    relay = make_relay(store, settings=replace(FAST, message_expiration_timeout=5.0))
    await relay.submit("bob@example.test", ["alice@nowhere.test"], raw("expiring"))
    await relay.drain(seconds=1)  # no send connector: retried, not failed
    assert len(await store.queue.list_messages()) == 1
    row = (await store.queue.list_messages())[0]
    assert row.recipients[0].status == "retry"
    assert row.expires_at - time.time() <= 5.0
    # Jump past expiry.
    await store.engine.write(lambda tx: tx.execute(
        "UPDATE queue_messages SET expires_at = 0"))
    await store.engine.write(lambda tx: tx.execute(
        "UPDATE queue_recipients SET next_attempt = 0"))
    await relay.drain()
    [ndr] = await inbox_messages(store, boxes["bob"].id)
    assert b"Status: 4.4.7" in ndr and b"UnreachableDestination" in ndr
