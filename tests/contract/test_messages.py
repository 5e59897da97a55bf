"""Contract: messages, flags with modseq, expunge, copy/move, content (docs/store.md)."""

from __future__ import annotations

import pytest

from gateway.errors import NotFound, ValidationError
from gateway.store import pop3_unique_id
from tests.contract.helpers import deliver, inbox, mailbox, message


async def _fill(store, mb, n):
    for i in range(n):
        await deliver(store, message(i), mb.id)
    return await inbox(store, mb.id)


async def test_uids_counts_and_fetch(store):
    mb = await mailbox(store)
    box = await _fill(store, mb, 5)
    assert box.uidnext == 6 and box.message_count == 5 and box.unseen_count == 5
    assert await store.mail.list_uids(box.id) == [1, 2, 3, 4, 5]
    msgs = await store.mail.fetch(box.id, [(2, 3), (5, None)])
    assert [m.uid for m in msgs] == [2, 3, 5]
    assert msgs[0].summary_json is None
    full = await store.mail.fetch(box.id, [(4, 4)], with_summary=True)
    assert '"subject"' in full[0].summary_json
    assert await store.mail.fetch(box.id, [(9, 20)]) == []
    with pytest.raises(ValidationError):
        await store.mail.fetch(box.id, [(0, 3)])
    got = await store.mail.get_message(msgs[0].id)
    assert got.uid == 2 and got.summary_json
    assert pop3_unique_id(box, 2) == f"{box.uidvalidity}.2"


async def test_stored_form_and_partial_read(store):
    mb = await mailbox(store)
    r = await deliver(store, b"Subject: x\nFrom: a@b.test\n\nline1\nline2\n", mb.id)
    rid = r.recipients[0].message_id
    raw = await store.mail.read_content(rid)
    assert raw == b"Subject: x\r\nFrom: a@b.test\r\n\r\nline1\r\nline2\r\n"
    assert r.size == len(raw)
    assert await store.mail.read_content(rid, 9, 1) == b"x"
    assert await store.mail.read_content(rid, len(raw) - 7) == b"line2\r\n"
    assert await store.mail.read_content(rid, 10_000, 5) == b""
    with pytest.raises(NotFound):
        await store.mail.read_content(999_999)


async def test_read_contents_of_several_messages_in_one_read(store):
    mb = await mailbox(store)
    ids = [(await deliver(store, message(i), mb.id)).recipients[0].message_id
           for i in range(4)]
    box = await inbox(store, mb.id)
    got = await store.mail.read_contents([ids[2], ids[0], ids[3], ids[0], 999_999])
    assert set(got) == {ids[0], ids[2], ids[3]}  # a missing id is absent, duplicates once
    for i in (0, 2, 3):
        assert got[ids[i]] == await store.mail.read_content(ids[i])
        assert got[ids[i]].startswith(b"From: Bob") and b"Hello %d" % i in got[ids[i]]
    # one read job for the batch, whatever its size
    before = store.stats.read_jobs
    await store.mail.read_contents(ids)
    assert store.stats.read_jobs == before + 1
    await store.mail.expunge(box.id, [(2, 2)], only_deleted=False)
    assert set(await store.mail.read_contents(ids)) == {ids[0], ids[2], ids[3]}
    assert await store.mail.read_contents([]) == {}
    with pytest.raises(ValidationError):
        await store.mail.read_contents(list(range(1, 102)))
    with pytest.raises(ValidationError):
        await store.mail.read_contents(["1"])


async def test_list_messages_page(store):
    mb = await mailbox(store)
    box = await _fill(store, mb, 4)
    page = await store.mail.list_messages(box.id, limit=2)
    assert [m.uid for m, _ in page] == [4, 3]
    assert page[0][1].subject == "test 3" and page[0][1].from_.endswith("<bob@example.test>")
    page = await store.mail.list_messages(box.id, offset=2, limit=5, newest_first=False)
    assert [m.uid for m, _ in page] == [3, 4]


async def test_flags_modseq_and_unchangedsince(store):
    mb = await mailbox(store)
    box = await _fill(store, mb, 3)
    before = {m.uid: m.modseq for m in await store.mail.fetch(box.id, [(1, None)])}
    res = await store.mail.store_flags(box.id, [(1, 2)], "add", ["\\Seen", "$Label1"])
    assert [m.uid for m in res.updated] == [1, 2] and res.modified == ()
    assert res.updated[0].flag_names == ("\\Seen", "$Label1")
    new_modseq = res.updated[0].modseq
    assert new_modseq > max(before.values())
    box2 = await store.mail.get_folder(box.id)
    assert box2.unseen_count == 1 and box2.highest_modseq == new_modseq
    # no change: modseq not bumped (RFC 7162 §3.1.3)
    res = await store.mail.store_flags(box.id, [(1, 1)], "add", ["\\seen"])
    assert res.updated == ()
    assert (await store.mail.get_folder(box.id)).highest_modseq == new_modseq
    # UNCHANGEDSINCE: uid 3 unchanged since delivery passes, 1 and 2 fail
    res = await store.mail.store_flags(box.id, [(1, 3)], "set", ["\\Flagged"],
                                       unchanged_since=before[3])
    assert res.modified == (1, 2) and [m.uid for m in res.updated] == [3]
    res = await store.mail.store_flags(box.id, [(1, 3)], "remove", ["\\SEEN", "$label1"])
    assert [m.uid for m in res.updated] == [1, 2]
    assert all(m.flag_names == () for m in res.updated)
    assert (await store.mail.get_folder(box.id)).unseen_count == 3
    changed = await store.mail.fetch(box.id, [(1, None)], changed_since=res.updated[0].modseq - 1)
    assert [m.uid for m in changed] == [1, 2]
    with pytest.raises(ValidationError):
        await store.mail.store_flags(box.id, [(1, 1)], "add", ["\\Bogus"])
    with pytest.raises(ValidationError):
        await store.mail.store_flags(box.id, [(1, 1)], "toggle", ["\\Seen"])


async def test_expunge_and_vanished(store):
    mb = await mailbox(store)
    box = await _fill(store, mb, 5)
    start = (await store.mail.get_folder(box.id)).highest_modseq
    await store.mail.store_flags(box.id, [(2, 2), (4, 5)], "add", ["\\Deleted", "\\Seen"])
    assert await store.mail.expunge(box.id, [(1, 4)]) == [2, 4]  # UID EXPUNGE
    assert await store.mail.expunge(box.id) == [5]
    assert await store.mail.list_uids(box.id) == [1, 3]
    f = await store.mail.get_folder(box.id)
    assert f.message_count == 2 and f.unseen_count == 2 and f.uidnext == 6
    assert await store.mail.vanished(box.id, start) == [2, 4, 5]
    assert await store.mail.expunge(box.id, [(1, 1)], only_deleted=False) == [1]
    assert await store.mail.expunge(box.id) == []
    with pytest.raises(ValidationError):
        await store.mail.expunge(box.id, only_deleted=False)


async def test_copy_and_move_uidplus(store):
    mb = await mailbox(store)
    box = await _fill(store, mb, 4)
    dst = await store.mail.create_folder(mb.id, "Archive")
    await store.mail.store_flags(box.id, [(2, 2)], "add", ["\\Seen", "work"])
    res = await store.mail.copy(box.id, [(2, 3)], dst.id)
    assert res.uidvalidity == dst.uidvalidity and res.pairs == ((2, 1), (3, 2))
    copied = await store.mail.fetch(dst.id, [(1, None)])
    assert copied[0].flag_names == ("\\Seen", "work")
    src_msgs = {m.uid: m for m in await store.mail.fetch(box.id, [(1, None)])}
    assert copied[0].content_id == src_msgs[2].content_id  # stored once
    assert copied[0].internal_date == src_msgs[2].internal_date
    res = await store.mail.move(box.id, [(3, 4)], dst.id)
    assert res.pairs == ((3, 3), (4, 4))
    assert await store.mail.list_uids(box.id) == [1, 2]
    d = await store.mail.get_folder(dst.id)
    assert d.message_count == 4 and d.unseen_count == 3 and d.uidnext == 5
    refs = dict(await store.engine.read(lambda tx: tx.all(
        "SELECT id, refcount FROM contents ORDER BY id")))
    assert refs == {src_msgs[1].content_id: 1, src_msgs[2].content_id: 2,
                    src_msgs[3].content_id: 2, src_msgs[4].content_id: 1}
    assert (await store.mail.copy(box.id, [(100, 200)], dst.id)).pairs == ()
    with pytest.raises(ValidationError):
        await store.mail.move(box.id, [(1, 1)], box.id)


async def test_content_dedup_and_release(store):
    a = await mailbox(store, "a")
    b = await mailbox(store, "b")
    r1 = await deliver(store, message("same"), a.id, b.id)
    r2 = await deliver(store, message("same"), a.id)
    assert r1.content_sha256 == r2.content_sha256
    count = await store.engine.read(lambda tx: tx.one("SELECT count(*), sum(refcount) "
                                                      "FROM contents"))
    assert tuple(count) == (1, 3)
    for r in (r1.recipients[0], r2.recipients[0], r1.recipients[1]):
        await store.mail.expunge(r.folder_id, [(r.uid, r.uid)], only_deleted=False)
    assert await store.engine.read(lambda tx: tx.scalar("SELECT count(*) FROM contents")) == 0


async def test_append_with_flags_and_date(store):
    mb = await mailbox(store)
    drafts = await store.mail.get_special_folder(mb.id, "drafts")
    uid, mid = await store.mail.append(mb.id, drafts.id, message("d"),
                                       flags=["\\Draft", "\\Seen"], internal_date=1_700_000_000.0)
    m = await store.mail.get_message(mid)
    assert m.uid == uid == 1 and m.flag_names == ("\\Seen", "\\Draft")
    assert m.internal_date == 1_700_000_000.0
    assert (await store.mail.get_folder(drafts.id)).unseen_count == 0


async def test_many_ranges_are_chunked(store):
    mb = await mailbox(store)
    box = await _fill(store, mb, 3)
    ranges = [(u, u) for u in range(1, 900, 2)]  # 450 ranges, more than one query's worth
    assert [m.uid for m in await store.mail.fetch(box.id, ranges)] == [1, 3]
    res = await store.mail.store_flags(box.id, ranges, "add", ["\\Seen"])
    assert [m.uid for m in res.updated] == [1, 3]


async def test_bad_modseq_values_are_refused(store):
    mb = await mailbox(store)
    box = await inbox(store, mb.id)
    for bad in (-1, 2**63, "5"):
        with pytest.raises(ValidationError):
            await store.mail.fetch(box.id, [(1, None)], changed_since=bad)
        with pytest.raises(ValidationError):
            await store.mail.store_flags(box.id, [(1, 1)], "add", ["\\Seen"],
                                         unchanged_since=bad)
        with pytest.raises(ValidationError):
            await store.changes.since(mb.id, bad)
