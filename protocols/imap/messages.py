"""Message-changing commands: STORE (CONDSTORE UNCHANGEDSINCE, RFC 7162 §3.1.3), COPY
and MOVE (UIDPLUS COPYUID RFC 4315, RFC 6851), EXPUNGE and UID EXPUNGE, APPEND with
MULTIAPPEND (RFC 3502) and APPENDUID.

Invariants: every change goes through one store call (one transaction, durable before
the tagged OK; a MULTIAPPEND stores message by message and takes the stored ones back
if a later one fails); responses this session owes for its own changes are written here and
the change feed's echo of them is skipped (``own_modseqs``, UIDs already removed);
a read-only (EXAMINE) mailbox refuses every change.
"""

from __future__ import annotations

import asyncio

from gateway.errors import NotFound, ValidationError
from gateway.store import MessageTooLarge
from gateway.store.messages import parse_flags, uid_ranges
from protocols.imap import limits, wire
from protocols.imap.fetch import FetchCommands
from protocols.imap.parser import Cursor, ParseError
from protocols.imap.selected import compress
from protocols.imap.state import Bad, No

_STORE_MODES = {"FLAGS": "set", "+FLAGS": "add", "-FLAGS": "remove"}


class MessageCommands(FetchCommands):
    def _writable(self) -> None:
        if self.sel.readonly:
            raise No("Mailbox is read-only", "READ-ONLY")

    async def do_store(self, tag: str, cur: Cursor, uid: bool) -> str:
        sel = self.sel
        cur.sp()
        seqset = cur.sequence_set()
        cur.sp()
        unchanged_since: int | None = None
        if cur.peek() == 0x28:
            def modifier() -> None:
                nonlocal unchanged_since
                if cur.atom().upper() != "UNCHANGEDSINCE":
                    raise ParseError("unknown STORE modifier")
                cur.sp()
                unchanged_since = cur.number()
            cur.paren_list(modifier)
            cur.sp()
            self.condstore = True
        action = cur.atom(extra=b"").upper()
        silent = action.endswith(".SILENT")
        mode = _STORE_MODES.get(action.removesuffix(".SILENT"))
        if mode is None:
            raise ParseError("STORE takes FLAGS, +FLAGS or -FLAGS")
        cur.sp()
        flags = cur.flag_list(allow_bare=True)
        cur.end()
        self._writable()
        ranges = sel.resolve(seqset, uid=uid)
        if not ranges:
            return "STORE completed"
        try:
            update = await self.store.mail.store_flags(
                sel.folder.id, ranges, mode, flags,  # type: ignore[arg-type]
                unchanged_since=unchanged_since)
        except ValidationError as exc:
            raise Bad(str(exc)) from None
        if update.updated:
            sel.own_modseqs.add(update.updated[0].modseq)
        if silent:
            reported = list(update.updated) if self.condstore else []
        else:
            reported = await self.store.mail.fetch(sel.folder.id, ranges)
            modified = set(update.modified)
            reported = [m for m in reported if m.uid not in modified]
        for m in reported:
            seq = sel.seq_of(m.uid)
            if seq is None:
                continue
            parts = []
            if uid or self.qresync:  # RFC 7162 §3.2.4
                parts.append(b"UID %d" % m.uid)
            if not silent:
                parts.append(b"FLAGS " + wire.flag_list(m.flag_names))
            if self.condstore:
                parts.append(b"MODSEQ (%d)" % m.modseq)
            self.conn.write(b"* %d FETCH (" % seq + b" ".join(parts) + b")\r\n")
        if update.modified:
            if uid:
                failed = list(update.modified)
            else:
                failed = [s for s in (sel.seq_of(u) for u in update.modified) if s]
            return f"[MODIFIED {compress(failed)}] Conditional STORE failed"
        return "STORE completed"

    async def do_copy(self, tag: str, cur: Cursor, uid: bool) -> str:
        return await self._copy(cur, uid, move=False)

    async def do_move(self, tag: str, cur: Cursor, uid: bool) -> str:
        return await self._copy(cur, uid, move=True)

    async def _copy(self, cur: Cursor, uid: bool, *, move: bool) -> str:
        sel = self.sel
        cur.sp()
        seqset = cur.sequence_set()
        cur.sp()
        name = cur.mailbox()
        cur.end()
        verb = "MOVE" if move else "COPY"
        if move:
            self._writable()
        try:
            dst = await self.find(name)
        except No:
            raise No("Mailbox does not exist", "TRYCREATE") from None
        ranges = sel.resolve(seqset, uid=uid)
        if not ranges:
            return f"{verb} completed"
        if move and dst.id == sel.folder.id:
            raise No("Cannot move messages into the mailbox they are in", "CANNOT")
        op = self.store.mail.move if move else self.store.mail.copy
        result = await op(sel.folder.id, ranges, dst.id)
        if not result.pairs:
            return f"{verb} completed"
        code = (f"COPYUID {result.uidvalidity} {compress([s for s, _ in result.pairs])} "
                f"{compress([d for _, d in result.pairs])}")
        if not move:
            return f"[{code}] COPY completed"
        self.untagged(f"OK [{code}] Moved")  # RFC 6851 §4.3
        self._announce_removed([s for s, _ in result.pairs])
        return "MOVE completed"

    def _announce_removed(self, uids: list[int]) -> None:
        sel = self.sel
        present = [u for u in uids if sel.contains(u)]
        seqs = sel.remove_now(present)
        if self.qresync:
            if present:
                self.untagged(f"VANISHED {compress(present)}")
        else:
            for seq in seqs:
                self.untagged(f"{seq} EXPUNGE")

    async def do_expunge(self, tag: str, cur: Cursor, uid: bool) -> str:
        sel = self.sel
        ranges = None
        if uid:
            cur.sp()
            ranges = sel.resolve(cur.sequence_set(), uid=True)
        cur.end()
        self._writable()
        if ranges is not None and not ranges:
            return "EXPUNGE completed"
        gone = await self.store.mail.expunge(sel.folder.id, ranges)
        self._announce_removed(gone)
        return "EXPUNGE completed"

    # -- APPEND (RFC 9051 §6.3.12, RFC 3502) ----------------------------------------------

    async def do_append(self, tag: str, cur: Cursor, uid: bool) -> str:
        cur.sp()
        name = cur.mailbox()
        batch: list[tuple[list[str], float | None, bytes]] = []
        while cur.maybe_sp():
            flags: list[str] = []
            when: float | None = None
            if cur.peek() == 0x28:
                flags = cur.flag_list()
                cur.sp()
            if cur.peek() == 0x22:
                when = cur.date_time()
                cur.sp()
            batch.append((flags, when, cur.string()))
            if len(batch) > limits.MAX_APPEND_MESSAGES:
                raise ParseError("too many messages in one APPEND")
        cur.end()
        if not batch:
            raise ParseError("APPEND needs a message")
        try:
            folder = await self.find(name)
        except No:
            raise No("Mailbox does not exist", "TRYCREATE") from None
        for flags, _when, raw in batch:  # refuse what we can before storing anything
            if not raw:
                raise No("Cannot append an empty message")
            try:
                parse_flags(flags)
            except ValidationError as exc:
                raise Bad(str(exc)) from None
        uids: list[int] = []
        try:
            for flags, when, raw in batch:
                new_uid, _mid = await self.store.mail.append(
                    self.mailbox_id, folder.id, raw, flags=flags, internal_date=when,
                    max_size=self.ctx.max_message_size)
                uids.append(new_uid)
        except BaseException as exc:
            if uids:  # RFC 3502 §6.3.11: all or nothing - take back what was stored
                await asyncio.shield(self.store.mail.expunge(
                    folder.id, uid_ranges(uids), only_deleted=False))
            if isinstance(exc, MessageTooLarge):
                raise No("Message too large", "TOOBIG") from None
            if isinstance(exc, ValidationError):
                raise Bad(str(exc)) from None
            if isinstance(exc, NotFound):
                raise No("Mailbox does not exist", "TRYCREATE") from None
            raise
        return f"[APPENDUID {folder.uidvalidity} {compress(uids)}] APPEND completed"
