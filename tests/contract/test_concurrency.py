"""Contract: concurrent writers keep the store's invariants on both engines."""

from __future__ import annotations

import asyncio

from tests.contract.helpers import deliver, inbox, mailbox, message


async def test_concurrent_flag_updates_lose_nothing(store):
    mb = await mailbox(store)
    await deliver(store, message(1), mb.id)
    box = await inbox(store, mb.id)
    await asyncio.gather(*(store.mail.store_flags(box.id, [(1, 1)], "add", [f"k{i}"])
                           for i in range(20)))
    [msg] = await store.mail.fetch(box.id, [(1, 1)])
    assert sorted(msg.keywords) == sorted(f"k{i}" for i in range(20))
    assert msg.modseq == (await store.mail.get_folder(box.id)).highest_modseq


async def test_mixed_writers_keep_refcounts_and_counters(store):
    a = await mailbox(store, "a")
    b = await mailbox(store, "b")
    shared = message("shared")

    async def expunge_all(mailbox_id):
        box = await inbox(store, mailbox_id)
        await store.mail.expunge(box.id, [(1, None)], only_deleted=False)

    jobs = []
    for i in range(12):
        jobs.append(deliver(store, shared, a.id, b.id))
        jobs.append(deliver(store, shared, b.id))
        jobs.append(deliver(store, message(i), a.id))
        if i % 4 == 3:
            jobs.append(expunge_all(a.id))
            jobs.append(expunge_all(b.id))
    await asyncio.gather(*jobs)

    def check(tx):
        bad_refs = tx.all("SELECT c.id, c.refcount, (SELECT count(*) FROM messages m "
                          "WHERE m.content_id = c.id) FROM contents c")
        bad_counts = tx.all("SELECT f.id, f.message_count, (SELECT count(*) FROM messages m "
                            "WHERE m.folder_id = f.id), f.unseen_count, f.total_size, "
                            "(SELECT coalesce(sum(size), 0) FROM messages m WHERE "
                            "m.folder_id = f.id) FROM folders f")
        orphans = tx.scalar("SELECT count(*) FROM messages m WHERE NOT EXISTS "
                            "(SELECT 1 FROM contents c WHERE c.id = m.content_id)")
        return bad_refs, bad_counts, orphans

    refs, counts, orphans = await store.engine.read(check)
    assert all(r[1] == r[2] for r in refs), refs
    assert all(c[1] == c[2] == c[3] and c[4] == c[5] for c in counts), counts
    assert orphans == 0
