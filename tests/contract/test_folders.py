"""Contract: folders (docs/store.md, "Folders")."""

from __future__ import annotations

import pytest

from gateway.errors import AlreadyExists, NotFound, ValidationError
from tests.contract.helpers import deliver, mailbox, message


async def test_default_folders_state(store):
    mb = await mailbox(store)
    inbox = await store.mail.find_folder(mb.id, "INBOX")
    assert inbox is not None and inbox.special_use == "inbox" and inbox.full_name == "Inbox"
    assert inbox.uidnext == 1 and inbox.message_count == 0 and inbox.uidvalidity > 0
    sent = await store.mail.get_special_folder(mb.id, "sent")
    assert sent.full_name == "Sent Items"
    validities = {f.uidvalidity for f in await store.mail.list_folders(mb.id)}
    assert len(validities) == 6


async def test_create_nested_rename_delete(store):
    mb = await mailbox(store)
    f = await store.mail.create_folder(mb.id, "Projects/2026/Q4")
    assert f.full_name == "Projects/2026/Q4" and f.name == "Q4"
    names = [x.full_name for x in await store.mail.list_folders(mb.id)]
    assert {"Projects", "Projects/2026", "Projects/2026/Q4"} <= set(names)
    with pytest.raises(AlreadyExists):
        await store.mail.create_folder(mb.id, "projects/2026")
    parent = await store.mail.find_folder(mb.id, "projects")
    assert f.parent_id is not None and parent is not None
    old_validity = parent.uidvalidity
    renamed = await store.mail.rename_folder(parent.id, "Archive/Old")
    assert renamed.full_name == "Archive/Old" and renamed.uidvalidity == old_validity
    assert (await store.mail.get_folder(f.id)).full_name == "Archive/Old/2026/Q4"
    assert await store.mail.find_folder(mb.id, "Projects") is None
    with pytest.raises(ValidationError):
        await store.mail.rename_folder(renamed.id, "Archive/Old/2026/Q4/x")
    with pytest.raises(ValidationError):
        await store.mail.delete_folder(renamed.id)  # has subfolders
    inbox = await store.mail.get_special_folder(mb.id, "inbox")
    with pytest.raises(ValidationError):
        await store.mail.delete_folder(inbox.id)
    with pytest.raises(ValidationError):
        await store.mail.rename_folder(inbox.id, "Other")
    await deliver(store, message(1), mb.id, folder_id=f.id)
    await store.mail.delete_folder(f.id)
    with pytest.raises(NotFound):
        await store.mail.get_folder(f.id)
    assert await store.engine.read(lambda tx: tx.scalar("SELECT count(*) FROM contents")) == 0
    recreated = await store.mail.create_folder(mb.id, "Archive/Old/2026/Q4")
    assert recreated.uidvalidity != f.uidvalidity  # RFC 9051 §2.3.1.1


async def test_folder_name_validation(store):
    mb = await mailbox(store)
    for bad in ("", "a//b", "x\x00y", "/" * 3, "a/" + "b" * 300):
        with pytest.raises(ValidationError):
            await store.mail.create_folder(mb.id, bad)


async def test_subscribe(store):
    mb = await mailbox(store)
    f = await store.mail.create_folder(mb.id, "News")
    assert f.subscribed
    await store.mail.set_subscribed(f.id, False)
    assert not (await store.mail.get_folder(f.id)).subscribed
    with pytest.raises(NotFound):
        await store.mail.set_subscribed(999_999, True)
