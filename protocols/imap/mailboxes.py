"""Mailbox commands (RFC 9051 §6.3, RFC 3501 §6.3): SELECT, EXAMINE (CONDSTORE/QRESYNC
parameters, RFC 7162), CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST (with
LIST-EXTENDED RFC 5258, SPECIAL-USE RFC 6154, CHILDREN RFC 3348, LIST-STATUS RFC 5819),
LSUB, STATUS, CLOSE, UNSELECT (RFC 3691).

Invariants: names resolve only inside the principal's own mailbox (every store call
takes ``self.mailbox_id``); wire names are modified UTF-7 (RFC 3501 §5.1.3); the Inbox is
``INBOX`` on the wire whatever its stored name; STATUS reads one folder row (O(1)).
"""

from __future__ import annotations

import re

from gateway.errors import AlreadyExists, ValidationError
from gateway.store.models import DEFAULT_FOLDERS, HIERARCHY_DELIMITER, Folder
from protocols.imap import utf7, wire
from protocols.imap.commands_any import AnyStateCommands
from protocols.imap.parser import Cursor, ParseError
from protocols.imap.selected import SelectedMailbox
from protocols.imap.state import No, State

SPECIAL_ATTRS = {use: attr for use, _name, attr in DEFAULT_FOLDERS if attr}
STATUS_ITEMS = ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ",
                "SIZE", "DELETED")
SYSTEM_FLAGS = r"\Answered \Flagged \Deleted \Seen \Draft"


def imap_name(folder: Folder) -> str:
    """The folder's IMAP name: the Inbox (and the root of its subtree) is ``INBOX``."""
    parts = folder.full_name.split(HIERARCHY_DELIMITER)
    if folder.special_use == "inbox" or (parts and parts[0].casefold() == "inbox"):
        parts[0] = "INBOX"
    return HIERARCHY_DELIMITER.join(parts)


def wire_name(name: str) -> bytes:
    return wire.astring(utf7.encode(name))


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """RFC 9051 §6.3.9: ``*`` matches anything, ``%`` anything but the delimiter."""
    out = []
    for ch in pattern:
        if ch == "*":
            out.append(".*")
        elif ch == "%":
            out.append("[^" + re.escape(HIERARCHY_DELIMITER) + "]*")
        else:
            out.append(re.escape(ch))
    return re.compile("^" + "".join(out) + "$", re.IGNORECASE | re.DOTALL)


class MailboxCommands(AnyStateCommands):
    async def find(self, name: str) -> Folder:
        if name == "INBOX":
            # The Inbox can be neither deleted nor renamed: its id and UIDVALIDITY are
            # fixed for the mailbox's life, so one read per session is enough.
            if self.inbox is None:
                self.inbox = await self.store.mail.get_special_folder(self.mailbox_id,
                                                                      "inbox")
            return self.inbox
        parts = name.split(HIERARCHY_DELIMITER)
        # Only canonical names of the principal's own folders: no leading, trailing or
        # doubled delimiters (the store would strip them), nothing outside the mailbox.
        folder = None if any(not p for p in parts) else \
            await self.store.mail.find_folder(self.mailbox_id, name)
        if folder is None:
            raise No("Mailbox does not exist", "NONEXISTENT")
        return folder

    def _store_name(self, name: str) -> str:
        """A client name in the store's form (INBOX/x -> Inbox/x); wildcards refused."""
        name = name.rstrip(HIERARCHY_DELIMITER)
        if not name or name.startswith(HIERARCHY_DELIMITER):
            raise No("Invalid mailbox name", "CANNOT")
        if "%" in name or "*" in name:
            raise No("Mailbox names must not contain wildcards", "CANNOT")
        parts = name.split(HIERARCHY_DELIMITER)
        if parts[0].upper() == "INBOX":
            parts[0] = "Inbox"
        return HIERARCHY_DELIMITER.join(parts)

    # -- SELECT / EXAMINE -------------------------------------------------------------

    async def do_select(self, tag: str, cur: Cursor, uid: bool) -> str:
        return await self._select(cur, readonly=False)

    async def do_examine(self, tag: str, cur: Cursor, uid: bool) -> str:
        return await self._select(cur, readonly=True)

    async def _select(self, cur: Cursor, *, readonly: bool) -> str:
        cur.sp()
        name = cur.mailbox()
        qresync: tuple[int, int, str | None] | None = None
        if cur.maybe_sp():
            params = cur.paren_list(lambda: self._select_param(cur))
            for p in params:
                if p is not None:
                    qresync = p
        cur.end()
        if self.selected is not None:
            self.selected = None
            self.state = State.AUTHENTICATED
            self.untagged("OK [CLOSED] Previous mailbox closed")  # RFC 7162 §3.2.11
        folder = await self.find(name)
        # The cursor first: changes after it are replayed onto the snapshot (harmless
        # when already in it), so nothing between the two reads is lost.
        cursor = await self.store.changes.current(self.mailbox_id)
        snap = await self.ctx.snapshots.get(self.store, folder.id)
        folder = snap.folder
        sel = SelectedMailbox(folder, snap.uids, cursor, readonly=readonly)
        self.untagged(f"FLAGS ({SYSTEM_FLAGS})")
        self.untagged(f"OK [PERMANENTFLAGS ({SYSTEM_FLAGS} \\*)] Flags permitted"
                      if not readonly else "OK [PERMANENTFLAGS ()] Read-only mailbox")
        self.untagged(f"{sel.exists} EXISTS")
        if not self.rev2:
            self.untagged("0 RECENT")
            if folder.unseen_count:
                first = await self.store.imap_search.first_unseen(folder.id)
                seq = sel.seq_of(first) if first is not None else None
                if seq is not None:
                    self.untagged(f"OK [UNSEEN {seq}] First unseen")
        self.untagged(f"OK [UIDVALIDITY {folder.uidvalidity}] UIDs valid")
        self.untagged(f"OK [UIDNEXT {folder.uidnext}] Predicted next UID")
        self.untagged(f"OK [HIGHESTMODSEQ {folder.highest_modseq}] Highest")
        if self.rev2:
            self.untagged(f'LIST () "/" {wire_name(imap_name(folder)).decode()}')
        self.selected = sel
        self.state = State.SELECTED
        if qresync is not None:
            await self._qresync_select(sel, *qresync)
        mode = "READ-ONLY" if readonly else "READ-WRITE"
        return f"[{mode}] {'EXAMINE' if readonly else 'SELECT'} completed"

    def _select_param(self, cur: Cursor) -> tuple[int, int, str | None] | None:
        """CONDSTORE, or QRESYNC (uidvalidity modseq [known-uids]) - RFC 7162 §3.2.5."""
        word = cur.atom().upper()
        if word == "CONDSTORE":
            self.condstore = True
            return None
        if word != "QRESYNC" or not self.qresync:
            raise ParseError(f"unknown SELECT parameter {word}")
        cur.sp()
        cur.expect(b"(")
        uidvalidity = cur.nz_number()
        cur.sp()
        modseq = cur.number()
        known = None
        if cur.maybe_sp():
            known = cur.atom(extra=b"*").strip()
            if cur.maybe_sp():  # seq-match-data: accepted and ignored (a hint)
                cur.paren_list(lambda: cur.atom(extra=b"*"))
        cur.expect(b")")
        return uidvalidity, modseq, known

    async def _qresync_select(self, sel: SelectedMailbox, uidvalidity: int, modseq: int,
                              known: str | None) -> None:
        """RFC 7162 §3.2.5.2: VANISHED (EARLIER) and FETCH of what changed since."""
        if uidvalidity != sel.folder.uidvalidity or modseq == 0:
            return
        gone = await self.store.mail.vanished(sel.folder.id, modseq)
        if gone:
            from protocols.imap.selected import compress
            self.untagged(f"VANISHED (EARLIER) {compress(gone)}")
        changed = await self.store.mail.fetch(sel.folder.id, [(1, None)],
                                              changed_since=modseq)
        for m in changed:
            seq = sel.seq_of(m.uid)
            if seq is not None:
                self.untagged(b"%d FETCH (UID %d FLAGS " % (seq, m.uid)
                              + wire.flag_list(m.flag_names) + b" MODSEQ (%d))" % m.modseq)

    async def do_close(self, tag: str, cur: Cursor, uid: bool) -> str:
        cur.end()
        sel = self.sel
        if not sel.readonly:
            # RFC 9051 §6.4.1: expunge silently.
            await self.store.mail.expunge(sel.folder.id)
        self.selected = None
        self.state = State.AUTHENTICATED
        return "CLOSE completed"

    async def do_unselect(self, tag: str, cur: Cursor, uid: bool) -> str:
        cur.end()
        self.selected = None
        self.state = State.AUTHENTICATED
        return "UNSELECT completed"

    # -- CREATE / DELETE / RENAME / SUBSCRIBE --------------------------------------------

    async def do_create(self, tag: str, cur: Cursor, uid: bool) -> str:
        cur.sp()
        name = cur.mailbox()
        if cur.maybe_sp():  # RFC 4466 create parameters (USE): accepted, not applied
            cur.paren_list(lambda: cur.atom(extra=b"\\"))
        cur.end()
        if name == "INBOX":
            raise No("INBOX already exists", "ALREADYEXISTS")
        try:
            await self.store.mail.create_folder(self.mailbox_id, self._store_name(name))
        except AlreadyExists:
            raise No("Mailbox already exists", "ALREADYEXISTS") from None
        except ValidationError as exc:
            raise No(str(exc), "CANNOT") from None
        return "CREATE completed"

    async def do_delete(self, tag: str, cur: Cursor, uid: bool) -> str:
        cur.sp()
        name = cur.mailbox()
        cur.end()
        folder = await self.find(name)
        if folder.special_use is not None:
            raise No("Default folders cannot be deleted", "CANNOT")
        if self.selected is not None and self.selected.folder.id == folder.id:
            self.selected = None
            self.state = State.AUTHENTICATED
        try:
            await self.store.mail.delete_folder(folder.id)
        except ValidationError as exc:
            raise No(str(exc), "HASCHILDREN" if "subfolder" in str(exc) else "CANNOT") \
                from None
        return "DELETE completed"

    async def do_rename(self, tag: str, cur: Cursor, uid: bool) -> str:
        cur.sp()
        old = cur.mailbox()
        cur.sp()
        new = cur.mailbox()
        cur.end()
        folder = await self.find(old)
        if folder.special_use is not None:
            raise No("Default folders cannot be renamed", "CANNOT")
        try:
            await self.store.mail.rename_folder(folder.id, self._store_name(new))
        except AlreadyExists:
            raise No("Mailbox already exists", "ALREADYEXISTS") from None
        except ValidationError as exc:
            raise No(str(exc), "CANNOT") from None
        return "RENAME completed"

    async def do_subscribe(self, tag: str, cur: Cursor, uid: bool) -> str:
        return await self._subscribe(cur, True)

    async def do_unsubscribe(self, tag: str, cur: Cursor, uid: bool) -> str:
        return await self._subscribe(cur, False)

    async def _subscribe(self, cur: Cursor, on: bool) -> str:
        cur.sp()
        name = cur.mailbox()
        cur.end()
        folder = await self.find(name)
        await self.store.mail.set_subscribed(folder.id, on)
        return f"{'SUBSCRIBE' if on else 'UNSUBSCRIBE'} completed"

    # -- LIST / LSUB / STATUS -----------------------------------------------------------

    def _pattern(self, cur: Cursor) -> str:
        if cur.peek() == 0x22 or cur.peek() == 0x7B:
            raw = cur.string()
        else:
            raw = cur.atom(extra=b"%*]").encode("ascii")
        try:
            return utf7.decode(raw.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise ParseError("bad mailbox pattern") from None

    async def do_list(self, tag: str, cur: Cursor, uid: bool) -> str:
        cur.sp()
        select: set[str] = set()
        if cur.peek() == 0x28:
            select = {s.upper() for s in cur.paren_list(cur.atom)}
            cur.sp()
        reference = self._pattern(cur)
        cur.sp()
        patterns = cur.paren_list(lambda: self._pattern(cur)) if cur.peek() == 0x28 \
            else [self._pattern(cur)]
        returns: set[str] = set()
        status_items: list[str] = []
        if cur.maybe_sp():
            cur.expect(b"RETURN ")
            for opt in cur.paren_list(lambda: self._return_option(cur, status_items)):
                returns.add(opt)
        cur.end()
        unknown = select - {"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"}
        if unknown or select == {"RECURSIVEMATCH"}:
            raise ParseError("bad LIST selection options")
        if patterns == [""]:
            self.untagged(f'LIST (\\Noselect) "{HIERARCHY_DELIMITER}" ""')
            return "LIST completed"
        await self._list("LIST", reference, patterns, select, returns, status_items)
        return "LIST completed"

    def _return_option(self, cur: Cursor, status_items: list[str]) -> str:
        opt = cur.atom().upper()
        if opt == "STATUS":
            cur.sp()
            status_items += [i.upper() for i in cur.paren_list(cur.atom)]
            if any(i not in STATUS_ITEMS for i in status_items):
                raise ParseError("unknown STATUS item")
        elif opt not in ("SUBSCRIBED", "CHILDREN", "SPECIAL-USE"):
            raise ParseError(f"unknown LIST return option {opt}")
        return opt

    async def do_lsub(self, tag: str, cur: Cursor, uid: bool) -> str:
        cur.sp()
        reference = self._pattern(cur)
        cur.sp()
        pattern = self._pattern(cur)
        cur.end()
        await self._list("LSUB", reference, [pattern], {"SUBSCRIBED"}, set(), [])
        return "LSUB completed"

    async def _list(self, verb: str, reference: str, patterns: list[str],
                    select: set[str], returns: set[str], status_items: list[str]) -> None:
        folders = await self.store.mail.list_folders(self.mailbox_id)
        parents = {f.parent_id for f in folders if f.parent_id is not None}
        regexes = [pattern_regex(reference + p) for p in patterns]
        for folder in folders:
            name = imap_name(folder)
            if not any(r.match(name) for r in regexes):
                continue
            if "SUBSCRIBED" in select and not folder.subscribed:
                continue
            if "SPECIAL-USE" in select and folder.special_use not in SPECIAL_ATTRS:
                continue
            attrs: list[str] = []
            if verb == "LIST":
                attrs.append("\\HasChildren" if folder.id in parents else "\\HasNoChildren")
                if folder.special_use in SPECIAL_ATTRS:
                    attrs.append(SPECIAL_ATTRS[folder.special_use])
                if folder.subscribed and ("SUBSCRIBED" in returns or "SUBSCRIBED" in select):
                    attrs.append("\\Subscribed")
            self.untagged(f'{verb} ({" ".join(attrs)}) "{HIERARCHY_DELIMITER}" '.encode()
                          + wire_name(name))
            if status_items:
                await self._status_line(folder, status_items)

    async def do_status(self, tag: str, cur: Cursor, uid: bool) -> str:
        cur.sp()
        name = cur.mailbox()
        cur.sp()
        items = [i.upper() for i in cur.paren_list(cur.atom)]
        cur.end()
        if not items or any(i not in STATUS_ITEMS for i in items):
            raise ParseError("unknown STATUS item")
        folder = await self.find(name)
        await self._status_line(folder, items)
        return "STATUS completed"

    async def _status_line(self, folder: Folder, items: list[str]) -> None:
        folder = await self.store.mail.get_folder(folder.id)
        values = {"MESSAGES": folder.message_count, "RECENT": 0, "UIDNEXT": folder.uidnext,
                  "UIDVALIDITY": folder.uidvalidity, "UNSEEN": folder.unseen_count,
                  "HIGHESTMODSEQ": folder.highest_modseq, "SIZE": folder.total_size}
        if "DELETED" in items:
            values["DELETED"] = await self.store.imap_search.count_deleted(folder.id)
        if "HIGHESTMODSEQ" in items:
            self.condstore = True
        body = " ".join(f"{i} {values[i]}" for i in items)
        self.untagged(b"STATUS " + wire_name(imap_name(folder)) + f" ({body})".encode())
