"""Helpers shared by the store contract tests."""

from __future__ import annotations

from typing import Any

MSG = (b"From: Bob <bob@example.test>\r\nTo: alice@example.test\r\nSubject: %s\r\n"
       b"Message-ID: <%s@example.test>\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n\r\n"
       b"Hello %s\r\n")


def message(n: int | str) -> bytes:
    tag = str(n).encode()
    return MSG % (b"test " + tag, tag, tag)


async def mailbox(store: Any, name: str = "alice") -> Any:
    return await store.org.create_mailbox(name=name,
                                          primary_smtp_address=f"{name}@example.test")


async def deliver(store: Any, raw: bytes, *mailbox_ids: int, folder_id: int | None = None,
                  flags: tuple[str, ...] = ()) -> Any:
    d = store.begin_delivery()
    for mid in mailbox_ids:
        d.add_recipient(mid, folder_id, flags=flags)
    await d.write(raw)
    return await d.commit()


async def inbox(store: Any, mailbox_id: int) -> Any:
    return await store.mail.get_special_folder(mailbox_id, "inbox")
