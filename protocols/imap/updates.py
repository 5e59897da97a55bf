"""Untagged mailbox updates from the change feed (RFC 3501 §7.4.1, RFC 9051 §7.5.1,
RFC 7162 §3.2.10 VANISHED).

Role: ``sync`` reads the store's change feed after the session's cursor (one indexed
query; nothing proportional to the mailbox size) and writes the EXISTS, EXPUNGE or
VANISHED and FETCH (FLAGS) responses the client may be sent now.

Invariant: EXPUNGE is never sent while the command in progress is FETCH, STORE or
SEARCH (the non-UID forms), or when no command is in progress; those expunges wait for
the next command that allows them (``SelectedMailbox.take``).
"""

from __future__ import annotations

from gateway.store.messages import uid_ranges
from gateway.store.models import Change
from protocols.imap import wire
from protocols.imap.selected import compress
from protocols.imap.state import Bye, SessionState


class UpdatesMixin(SessionState):
    async def sync(self, *, allow_expunge: bool) -> None:
        sel = self.selected
        if sel is None:
            return
        while True:
            changes = await self.store.changes.since(self.mailbox_id, sel.cursor)
            if not changes:
                break
            sel.note(changes)
        await self.announce(allow_expunge=allow_expunge)

    async def absorb(self, changes: list[Change], *, allow_expunge: bool) -> None:
        """Changes handed over by ``store.changes.wait`` (IDLE)."""
        if self.selected is not None:
            self.selected.note(changes)
            await self.sync(allow_expunge=allow_expunge)

    async def announce(self, *, allow_expunge: bool) -> None:
        sel = self.selected
        if sel is None:
            return
        up = sel.take(allow_expunge=allow_expunge, qresync=self.qresync)
        if up.folder_gone:
            raise Bye("Selected mailbox was deleted or renamed")
        for number in up.expunged_seqs:
            self.untagged(f"{number} EXPUNGE")
        if up.vanished:
            self.untagged(f"VANISHED {compress(up.vanished)}")
        if up.exists is not None:
            self.untagged(f"{up.exists} EXISTS")
            if not self.rev2:
                self.untagged("0 RECENT")
        if up.flag_uids:
            msgs = await self.store.mail.fetch(sel.folder.id, uid_ranges(up.flag_uids))
            for m in msgs:
                seq = sel.seq_of(m.uid)
                if seq is None:
                    continue
                modseq = f" MODSEQ ({m.modseq})" if self.condstore else ""
                self.untagged(b"%d FETCH (UID %d FLAGS " % (seq, m.uid)
                              + wire.flag_list(m.flag_names) + modseq.encode() + b")")
