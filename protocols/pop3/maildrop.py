"""The POP3 maildrop of one session: a snapshot of the Inbox taken at login.

Role: RFC 1939 §8 numbers messages 1..n for the whole session and sizes never change;
the Inbox meanwhile changes under IMAP, ActiveSync and deliveries. The snapshot keeps
(uid, message id, size) of every message present at login, in UID order, plus the
session's deletion marks. New mail appears at the next login; a message expunged
elsewhere keeps its number and answers ``-ERR`` when read. DELE only marks; QUIT (the
UPDATE state, RFC 1939 §6) removes the marked messages from the store in one
transaction.

Invariants: message numbers are 1-based and stable for the session; ``count`` and
``octets`` always equal the sums over unmarked messages (STAT in O(1)); memory is three
machine words per message (``array``), not one object per message; UIDLs are
``gateway.store.pop3_unique_id`` (``<uidvalidity>.<uid>``), unique and never reused.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Protocol

from gateway.store.mail import pop3_unique_id
from gateway.store.models import Folder, Message, SpecialUse

UidRanges = Sequence[tuple[int, int | None]]


class MaildropStore(Protocol):
    """What the POP3 front end needs of ``store.mail`` (docs/store.md, POP3)."""

    async def get_special_folder(self, mailbox_id: int,
                                 special_use: SpecialUse) -> Folder: ...

    async def fetch(self, folder_id: int, uids: UidRanges, *,
                    changed_since: int | None = None,
                    with_summary: bool = False) -> list[Message]: ...

    async def read_content(self, message_id: int, offset: int = 0,
                           length: int | None = None) -> bytes: ...

    async def read_contents(self, message_ids: list[int]) -> dict[int, bytes]: ...

    async def expunge(self, folder_id: int, uids: UidRanges | None = None, *,
                      only_deleted: bool = True) -> list[int]: ...


class Maildrop:
    """The snapshot; build with ``await Maildrop.load(mail, mailbox_id)``."""

    def __init__(self, folder: Folder, messages: Sequence[Message]) -> None:
        self.folder = folder
        self._uids = array("q", (m.uid for m in messages))
        self._ids = array("q", (m.id for m in messages))
        self._sizes = array("q", (m.size for m in messages))
        self._deleted = bytearray(len(messages))
        self.count = len(messages)
        self.octets = sum(self._sizes)

    @classmethod
    async def load(cls, mail: MaildropStore, mailbox_id: int) -> Maildrop:
        inbox = await mail.get_special_folder(mailbox_id, "inbox")
        # One query over the (folder_id, uid) index; no content is read.
        messages = await mail.fetch(inbox.id, [(1, None)])
        return cls(inbox, messages)

    def __len__(self) -> int:
        """Messages in the snapshot, marked or not (the highest message number)."""
        return len(self._uids)

    def exists(self, number: int) -> bool:
        """``number`` names a message of the snapshot that is not marked deleted."""
        return 1 <= number <= len(self._uids) and not self._deleted[number - 1]

    def is_deleted(self, number: int) -> bool:
        return 1 <= number <= len(self._uids) and bool(self._deleted[number - 1])

    def size(self, number: int) -> int:
        return self._sizes[number - 1]

    def message_id(self, number: int) -> int:
        return self._ids[number - 1]

    def unique_id(self, number: int) -> str:
        return pop3_unique_id(self.folder, self._uids[number - 1])

    def present(self) -> list[int]:
        """Numbers of the unmarked messages, ascending (LIST, UIDL without argument)."""
        return [n + 1 for n, d in enumerate(self._deleted) if not d]

    def mark_deleted(self, number: int) -> None:
        if self.exists(number):
            self._deleted[number - 1] = 1
            self.count -= 1
            self.octets -= self._sizes[number - 1]

    def reset(self) -> None:
        """RSET (RFC 1939 §5): unmark every message."""
        self._deleted = bytearray(len(self._uids))
        self.count = len(self._uids)
        self.octets = sum(self._sizes)

    def deleted_ranges(self) -> list[tuple[int, int | None]]:
        """UID ranges of the marked messages, for ``expunge(..., only_deleted=False)``.

        A range only spans consecutive UIDs that are all marked: a UID between two
        snapshot UIDs cannot appear later (new messages always get UIDNEXT), so the
        ranges name exactly the marked messages."""
        ranges: list[tuple[int, int | None]] = []
        for i, marked in enumerate(self._deleted):
            if not marked:
                continue
            uid = self._uids[i]
            if ranges and ranges[-1][1] == uid - 1:
                ranges[-1] = (ranges[-1][0], uid)
            else:
                ranges.append((uid, uid))
        return ranges
