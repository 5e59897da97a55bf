"""The delivery API: deliver one RFC 5322 message to local mailboxes, transactionally.

    d = store.begin_delivery()
    d.add_recipient(mailbox_id)                 # Inbox; or folder_id=..., flags=...
    await d.write(chunk)                        # streaming; spooled, size-limited
    result = await d.commit()                   # returns only once durable
    # or: await d.abort()

Shared by SMTP (DATA/BDAT), web compose (Sent Items) and ActiveSync SendMail, and by
IMAP APPEND (one recipient, explicit folder, flags and internal date).

Invariants:
* ``commit()`` returns after the engine's durable COMMIT (group-committed on SQLite):
  nothing is acknowledged before it is on disk (issue 2 item 4);
* the stored form has CRLF line ends (``gateway.mime.normalise_line_endings``, skipped
  only when the writer vouches with ``stored_form=True``); its SHA-256 keys the content
  row, stored once for all recipients;
* the spool holds at most ``max_size`` octets (``MessageTooLarge`` past it): up to
  ``SPOOL_IN_MEMORY`` in memory, beyond that in a temporary file written off the loop.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from gateway.errors import NotFound, ValidationError
from gateway.store import changes
from gateway.store.analysis import ContentFacts, analyse
from gateway.store.engine import Engine, Tx
from gateway.store.messages import add_content, insert_messages, parse_flags
from gateway.store.models import DeliveredTo, DeliveryResult

DEFAULT_MAX_MESSAGE_SIZE = 50 * 1024 * 1024  # octets; Exchange's default is 35-36 MB
SPOOL_IN_MEMORY = 1024 * 1024
MAX_RECIPIENTS = 5000  # per delivery (RFC 5321 §4.5.3.1.8 requires at least 100)
# Messages up to this size are analysed on the caller's thread: under the GIL a worker
# thread buys no parallelism, only a hop that costs about as much as analysing a
# typical small message (0.1 ms for 2 KiB of text). The analysis is linear, but a
# hostile layout costs more per octet (700 MIME parts in 60 KiB: 28 ms), so the bound
# is small enough that the event loop never stalls for more than a few milliseconds;
# larger messages go to a thread.
INLINE_ANALYSIS_MAX = 8 * 1024


class MessageTooLarge(ValidationError):
    """The message exceeds the delivery's size limit (SMTP 552, RFC 5321 §4.5.3.1.10)."""


@dataclass(frozen=True)
class _Recipient:
    mailbox_id: int
    folder_id: int | None
    flags: int
    keywords: str
    internal_date: float | None


class Delivery:
    """One delivery in progress (see the module docstring). Not thread-safe; one task
    drives it."""

    def __init__(self, engine: Engine, *, max_size: int = DEFAULT_MAX_MESSAGE_SIZE,
                 spool_dir: Path | None = None, stored_form: bool = False) -> None:
        if max_size < 1:
            raise ValidationError("max_size must be positive")
        self._engine = engine
        # The writer vouches for CRLF-only line ends: the analysis skips its check.
        self._stored_form = stored_form
        self.max_size = max_size
        self._recipients: dict[tuple[int, int | None], _Recipient] = {}
        self._spool_dir = spool_dir
        self._chunks: list[bytes] = []  # the message while it fits in memory
        self._file: IO[bytes] | None = None  # beyond SPOOL_IN_MEMORY: a temporary file
        self._size = 0
        self._state = "open"  # open -> committed | aborted | failed

    @property
    def size(self) -> int:
        """Octets received so far (as written, before line-end normalisation)."""
        return self._size

    def add_recipient(self, mailbox_id: int, folder_id: int | None = None, *,
                      flags: Iterable[str] = (), internal_date: float | None = None) -> None:
        """Deliver to ``mailbox_id``'s folder (Inbox when None). The same mailbox and
        folder named twice (e.g. through two of its addresses) get one copy."""
        self._check_open()
        if not isinstance(mailbox_id, int) or (folder_id is not None
                                               and not isinstance(folder_id, int)):
            raise ValidationError("mailbox and folder ids are integers")
        if len(self._recipients) >= MAX_RECIPIENTS:
            raise ValidationError(f"at most {MAX_RECIPIENTS} recipients per delivery")
        bits, keywords = parse_flags(flags)
        self._recipients.setdefault((mailbox_id, folder_id), _Recipient(
            mailbox_id, folder_id, bits, " ".join(keywords), internal_date))

    async def write(self, chunk: bytes) -> None:
        """Append message data. ``MessageTooLarge`` once the total passes ``max_size``
        (the delivery is then aborted; the caller keeps reading and discards)."""
        self._check_open()
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise ValidationError("message data is bytes")
        if self._size + len(chunk) > self.max_size:
            await self.abort()
            raise MessageTooLarge(f"message exceeds the size limit of {self.max_size} octets")
        if self._file is None and self._size + len(chunk) <= SPOOL_IN_MEMORY:
            self._chunks.append(bytes(chunk))  # in memory: no I/O, no copy of bytes
        else:
            await asyncio.to_thread(self._write_file, bytes(chunk))
        self._size += len(chunk)

    async def commit(self) -> DeliveryResult:
        """Store the message for every recipient; return once durable."""
        self._check_open()
        if not self._recipients:
            raise ValidationError("a delivery needs at least one recipient")
        recipients = sorted(self._recipients.values(),
                            key=lambda r: (r.mailbox_id, r.folder_id or 0))
        try:
            if self._size <= INLINE_ANALYSIS_MAX:
                facts = self._analyse()
            else:
                facts = await asyncio.to_thread(self._analyse)
            result = await self._engine.write(
                lambda tx: deliver_tx(tx, facts, recipients, time.time()))
        except BaseException:
            self._state = "failed"
            raise
        finally:
            self._close_spool()
        self._state = "committed"
        return result

    async def abort(self) -> None:
        """Discard the delivery (idempotent)."""
        if self._state == "open":
            self._state = "aborted"
            self._close_spool()

    def _analyse(self) -> ContentFacts:
        if self._file is None:
            raw = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        else:
            self._file.seek(0)
            raw = self._file.read()
        return analyse(raw, stored_form=self._stored_form)

    def _write_file(self, chunk: bytes) -> None:
        """Spill to a temporary file (in a thread: it is disk I/O)."""
        if self._file is None:
            self._file = tempfile.TemporaryFile(
                dir=None if self._spool_dir is None else str(self._spool_dir))
            for held in self._chunks:
                self._file.write(held)
            self._chunks.clear()
        self._file.write(chunk)

    def _close_spool(self) -> None:
        self._chunks.clear()
        if self._file is not None:
            self._file.close()
            self._file = None

    def _check_open(self) -> None:
        if self._state != "open":
            raise ValidationError(f"the delivery is {self._state}")


def deliver_tx(tx: Tx, facts: ContentFacts, recipients: list[_Recipient],
               now: float) -> DeliveryResult:
    """The delivery transaction: lock the mailboxes (ascending), reference the content
    once per recipient, append a message to each folder."""
    mods = {mb: changes.next_modseq(tx, mb)
            for mb in sorted({r.mailbox_id for r in recipients})}
    targets: list[tuple[_Recipient, int]] = []
    for r in recipients:
        folder_id = r.folder_id
        if folder_id is None:
            folder_id = tx.scalar("SELECT id FROM folders WHERE mailbox_id = ? AND "
                                  "special_use = 'inbox'", (r.mailbox_id,))
            if folder_id is None:
                raise NotFound(f"mailbox {r.mailbox_id} has no Inbox")
        targets.append((r, int(folder_id)))
    # Two recipients resolving to the same folder (Inbox named explicitly and by
    # default) still get one copy.
    unique = list({(r.mailbox_id, fid): (r, fid) for r, fid in targets}.values())
    content_id = add_content(tx, facts, len(unique), now)
    delivered: list[DeliveredTo] = []
    for r, folder_id in unique:
        [(uid, mid)] = insert_messages(
            tx, r.mailbox_id, folder_id, mods[r.mailbox_id],
            [(content_id, len(facts.raw), r.flags, r.keywords,
              r.internal_date if r.internal_date is not None else now)])
        delivered.append(DeliveredTo(r.mailbox_id, folder_id, uid, mid))
    return DeliveryResult(facts.sha256, len(facts.raw), tuple(delivered))
