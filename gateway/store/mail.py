"""``store.mail``: folders and messages for IMAP, POP3, ActiveSync and the web.

The methods live in ``folders.FolderAPI`` and ``messages.MessageAPI``; docs/store.md
describes them per consumer.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.store.engine import Engine
from gateway.store.folders import FolderAPI
from gateway.store.messages import MessageAPI
from gateway.store.models import Folder


def pop3_unique_id(folder: Folder, uid: int) -> str:
    """A POP3 UIDL (RFC 1939 §7) that never changes for the message's life in the folder
    and is never reused: UIDVALIDITY and UID (both stable, RFC 9051 §2.3.1.1)."""
    return f"{folder.uidvalidity}.{uid}"


class MailStore(FolderAPI, MessageAPI):
    """See the module docstring."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def append(self, mailbox_id: int, folder_id: int, raw: bytes, *,
                     flags: Iterable[str] = (), internal_date: float | None = None,
                     max_size: int | None = None) -> tuple[int, int]:
        """IMAP APPEND (RFC 9051 §6.3.12) / saving a draft: store one message in one folder;
        returns ``(uid, message id)`` once durable."""
        from gateway.store.delivery import DEFAULT_MAX_MESSAGE_SIZE, Delivery

        d = Delivery(self._engine, max_size=max_size or DEFAULT_MAX_MESSAGE_SIZE)
        d.add_recipient(mailbox_id, folder_id, flags=flags, internal_date=internal_date)
        await d.write(raw)
        result = await d.commit()
        return result.recipients[0].uid, result.recipients[0].message_id
