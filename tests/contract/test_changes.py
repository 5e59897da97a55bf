"""Contract: the change feed (docs/store.md, "Change feed")."""

from __future__ import annotations

import asyncio
import time

from gateway.store import open_store
from tests.contract.helpers import deliver, inbox, mailbox, message


async def test_feed_records_every_change_in_order(store):
    mb = await mailbox(store)
    cursor = await store.changes.current(mb.id)
    box = await inbox(store, mb.id)
    await deliver(store, message(1), mb.id)
    await store.mail.store_flags(box.id, [(1, 1)], "add", ["\\Deleted"])
    await store.mail.expunge(box.id)
    folder = await store.mail.create_folder(mb.id, "X")
    await store.mail.rename_folder(folder.id, "Y")
    await store.mail.delete_folder(folder.id)
    got = await store.changes.since(mb.id, cursor)
    assert [c.kind for c in got] == ["message_added", "flags_changed", "expunged",
                                     "folder_created", "folder_renamed", "folder_deleted"]
    assert [c.modseq for c in got] == sorted(c.modseq for c in got)
    assert got[0].uid == 1 and got[0].folder_id == box.id and got[4].detail == "Y"
    assert await store.changes.since(mb.id, got[-1].modseq) == []
    assert await store.changes.current(mb.id) == got[-1].modseq


async def test_wait_woken_by_delivery(store):
    mb = await mailbox(store)
    other = await mailbox(store, "other")
    cursor = await store.changes.current(mb.id)
    waiter = asyncio.create_task(store.changes.wait(mb.id, cursor, 30))
    await asyncio.sleep(0.1)
    await deliver(store, message("o"), other.id)  # another mailbox: no wake-up result
    await asyncio.sleep(0.1)
    assert not waiter.done()
    started = time.monotonic()
    await deliver(store, message(1), mb.id)
    got = await asyncio.wait_for(waiter, 5)
    assert time.monotonic() - started < 0.9  # woken, not polled
    assert [c.kind for c in got] == ["message_added"]


async def test_wait_times_out_empty(store):
    mb = await mailbox(store)
    cursor = await store.changes.current(mb.id)
    started = time.monotonic()
    assert await store.changes.wait(mb.id, cursor, 0.2) == []
    assert 0.15 < time.monotonic() - started < 2


async def test_wait_returns_at_once_when_behind(store):
    mb = await mailbox(store)
    got = await store.changes.wait(mb.id, 0, 10)
    assert {c.kind for c in got} == {"folder_created"}


async def test_wait_sees_change_from_another_store_instance(store, store_url):
    """Another process/node: a second Store on the same database."""
    mb = await mailbox(store)
    cursor = await store.changes.current(mb.id)
    second = await open_store(store_url)
    try:
        waiter = asyncio.create_task(store.changes.wait(mb.id, cursor, 10))
        await asyncio.sleep(0.1)
        await deliver(second, message(1), mb.id)
        got = await asyncio.wait_for(waiter, 5)  # NOTIFY on PostgreSQL, polling on SQLite
        assert [c.kind for c in got] == ["message_added"]
    finally:
        await second.close()


async def test_since_limit_never_splits_a_transaction(store):
    mb = await mailbox(store)
    cursor = await store.changes.current(mb.id)
    for i in range(3):
        await deliver(store, message(i), mb.id)
    box = await inbox(store, mb.id)
    await store.mail.store_flags(box.id, [(1, 3)], "add", ["\\Seen"])  # 3 rows, 1 modseq
    got = await store.changes.since(mb.id, cursor, limit=4)
    assert [c.kind for c in got] == ["message_added"] * 3 + ["flags_changed"] * 3
    assert await store.changes.since(mb.id, got[-1].modseq) == []
