"""Contract: the delivery API (docs/store.md, "Delivery")."""

from __future__ import annotations

import asyncio

import pytest

from gateway.errors import NotFound, ValidationError
from gateway.store import MessageTooLarge
from tests.contract.helpers import deliver, inbox, mailbox, message


async def test_streamed_multi_recipient_delivery(store):
    a = await mailbox(store, "a")
    b = await mailbox(store, "b")
    junk = await store.mail.get_special_folder(b.id, "junk")
    d = store.begin_delivery()
    d.add_recipient(a.id)
    d.add_recipient(a.id)  # named twice (two addresses): one copy
    d.add_recipient(b.id, junk.id)
    raw = message(1) + b"x" * 3_000_000  # passes the in-memory spool limit
    for i in range(0, len(raw), 65536):
        await d.write(raw[i:i + 65536])
    res = await d.commit()
    assert [(r.mailbox_id, r.folder_id, r.uid) for r in res.recipients] == [
        (a.id, (await inbox(store, a.id)).id, 1), (b.id, junk.id, 1)]
    assert res.size == len(raw)
    assert await store.mail.read_content(res.recipients[1].message_id) == raw
    with pytest.raises(ValidationError):
        await d.commit()  # once only


async def test_abort_and_limits(store):
    mb = await mailbox(store)
    d = store.begin_delivery(max_size=10)
    d.add_recipient(mb.id)
    await d.write(b"12345")
    with pytest.raises(MessageTooLarge):
        await d.write(b"678901")
    with pytest.raises(ValidationError):
        await d.write(b"x")  # the delivery is over
    d = store.begin_delivery()
    d.add_recipient(mb.id)
    await d.write(message(1))
    await d.abort()
    await d.abort()
    with pytest.raises(ValidationError):
        await d.commit()
    d = store.begin_delivery()
    await d.write(message(1))
    with pytest.raises(ValidationError):
        await d.commit()  # no recipients
    with pytest.raises(ValidationError):
        store.begin_delivery().add_recipient("alice")
    assert (await inbox(store, mb.id)).message_count == 0


async def test_failed_delivery_leaves_nothing(store):
    mb = await mailbox(store)
    d = store.begin_delivery()
    d.add_recipient(mb.id)
    d.add_recipient(999_999)  # no such mailbox: the whole delivery fails
    await d.write(message(1))
    with pytest.raises(NotFound):
        await d.commit()
    assert (await inbox(store, mb.id)).message_count == 0
    assert await store.engine.read(lambda tx: tx.scalar("SELECT count(*) FROM contents")) == 0
    # the engine still works after a failed job
    await deliver(store, message(2), mb.id)
    assert (await inbox(store, mb.id)).message_count == 1


async def test_concurrent_deliveries_durable_and_group_committed(store):
    boxes = [await mailbox(store, f"u{i}") for i in range(5)]
    commits_before = store.stats.commits
    n = 50
    results = await asyncio.gather(*(deliver(store, message(i), boxes[i % 5].id)
                                     for i in range(n)))
    commits = store.stats.commits - commits_before
    for box in boxes:
        folder = await inbox(store, box.id)
        uids = await store.mail.list_uids(folder.id)
        assert uids == list(range(1, n // 5 + 1))  # no gaps, no duplicates
        assert folder.message_count == n // 5
    assert len({r.recipients[0].message_id for r in results}) == n
    if store.engine.dialect.name == "sqlite":
        assert commits < n, f"{commits} commits for {n} deliveries: no group commit"
    else:
        assert commits == n  # one transaction per job; PostgreSQL groups the flushes


async def test_failing_job_in_a_group_rolls_back_alone(store):
    mb = await mailbox(store)
    good = [deliver(store, message(i), mb.id) for i in range(10)]
    bad = [deliver(store, message(f"bad{i}"), 999_999) for i in range(5)]
    results = await asyncio.gather(*good, *bad, return_exceptions=True)
    assert all(not isinstance(r, Exception) for r in results[:10])
    assert all(isinstance(r, NotFound) for r in results[10:])
    assert (await inbox(store, mb.id)).message_count == 10


async def test_garbage_is_stored_and_line_ends_dedup(store):
    mb = await mailbox(store)
    junk = bytes(range(256)) * 4 + b"\n\n\r\r\x00"
    r = await deliver(store, junk, mb.id)
    assert (await store.mail.get_message(r.recipients[0].message_id)).summary_json
    lf = await deliver(store, b"Subject: s\n\nbody\n", mb.id)
    crlf = await deliver(store, b"Subject: s\r\n\r\nbody\r\n", mb.id)
    assert lf.content_sha256 == crlf.content_sha256
    assert await store.engine.read(lambda tx: tx.scalar("SELECT count(*) FROM contents")) == 2
