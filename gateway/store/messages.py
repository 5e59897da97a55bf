"""Messages: UID ranges, flags with modseq, expunge, copy/move, content references.

Consumers address messages by folder and UID ranges (IMAP), by message id (ActiveSync
ServerId, web), or list a folder's UIDs once (IMAP sequence numbers, POP3 maildrop).
Every query is bounded by the messages it names, never by the folder's size, except
where the protocol needs the whole folder (``list_uids`` for SELECT, EXPUNGE of all
``\\Deleted``).

Invariants:
* UIDs of a folder strictly ascend in delivery order and are never reused (allocated
  from ``folders.uidnext`` under the folder's row lock);
* every change sets the touched messages' ``modseq`` and the folder's
  ``highest_modseq`` to the transaction's modseq and writes change-feed rows;
* a content row's ``refcount`` equals the number of messages referencing it; it is
  deleted in the transaction that drops the count to zero.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

from gateway.errors import NotFound, ValidationError
from gateway.store import changes
from gateway.store.analysis import ContentFacts
from gateway.store.engine import Engine, Row, Tx
from gateway.store.folders import get_folder_tx
from gateway.store.models import (
    DELETED,
    SEEN,
    SYSTEM_FLAGS,
    CopyResult,
    FlagUpdate,
    Message,
    MessageHeaderFields,
)

MAX_UID = 0xFFFF_FFFF  # RFC 9051 §2.3.1.1: UIDs are 32-bit
RANGES_PER_QUERY = 200
MAX_KEYWORDS = 64  # per message
MAX_KEYWORD_LEN = 128
MAX_LIST = 1000  # messages per list_messages page
MAX_READ_BATCH = 100  # messages per read_contents call
MSG_COLS = ("m.id, m.mailbox_id, m.folder_id, m.uid, m.content_id, m.flags, m.keywords, "
            "m.internal_date, m.size, m.modseq")
# RFC 9051 §9 flag-keyword = atom: no atom-specials.
_KEYWORD = re.compile(r"^[!#$&'+\-.0-9:<=>?@A-Z^_`a-z|~\x80-\U0010ffff]+$")

UidRanges = Sequence[tuple[int, int | None]]
FlagMode = Literal["set", "add", "remove"]


def message_from_row(row: Row, summary: str | None = None) -> Message:
    return Message(id=int(row[0]), mailbox_id=int(row[1]), folder_id=int(row[2]),
                   uid=int(row[3]), content_id=int(row[4]), flags=int(row[5]),
                   keywords=tuple(row[6].split()) if row[6] else (),
                   internal_date=float(row[7]), size=int(row[8]), modseq=int(row[9]),
                   summary_json=summary)


def uid_ranges(uids: Iterable[int]) -> list[tuple[int, int]]:
    """Compress UIDs into inclusive ranges: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    out: list[tuple[int, int]] = []
    for uid in sorted(set(uids)):
        if out and uid == out[-1][1] + 1:
            out[-1] = (out[-1][0], uid)
        else:
            out.append((uid, uid))
    return out


def normalise_ranges(ranges: UidRanges) -> list[tuple[int, int]]:
    """Validate inclusive ``(low, high)`` UID ranges (``high`` None: no upper bound,
    i.e. IMAP ``n:*`` once the caller has resolved ``*``); sort and merge them."""
    spans: list[tuple[int, int]] = []
    for item in ranges:
        if not isinstance(item, tuple) or len(item) != 2:
            raise ValidationError("UID ranges are (low, high) pairs")
        low, high = item
        high = MAX_UID if high is None else high
        if not isinstance(low, int) or not isinstance(high, int):
            raise ValidationError("UIDs are integers")
        if low > high:
            low, high = high, low  # RFC 9051 §9: "4:2" is "2:4"
        if low < 1 or high > MAX_UID:
            raise ValidationError(f"UIDs are between 1 and {MAX_UID}")
        spans.append((low, high))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for low, high in spans:
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(high, merged[-1][1]))
        else:
            merged.append((low, high))
    return merged


def parse_flags(names: Iterable[str]) -> tuple[int, tuple[str, ...]]:
    """Split flag names into the system-flag bitmask and keywords (RFC 9051 §2.3.2).
    ``\\Recent`` is ignored (IMAP4rev2 dropped it); other ``\\`` names are refused."""
    if isinstance(names, str):
        raise ValidationError("flags are a list of names")
    bits = 0
    keywords: dict[str, str] = {}
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValidationError("a flag name is non-empty text")
        lowered = name.lower()
        if lowered in SYSTEM_FLAGS:
            bits |= SYSTEM_FLAGS[lowered]
        elif lowered == "\\recent":
            continue
        elif name.startswith("\\") or not _KEYWORD.match(name) \
                or len(name) > MAX_KEYWORD_LEN:
            raise ValidationError(f"invalid flag {name!r}")
        else:
            keywords.setdefault(name.casefold(), name)
    if len(keywords) > MAX_KEYWORDS:
        raise ValidationError(f"at most {MAX_KEYWORDS} keywords per message")
    return bits, tuple(sorted(keywords.values(), key=str.casefold))


def select_ranges(tx: Tx, folder_id: int, ranges: UidRanges | None, *,
                  where: str = "", params: Sequence[object] = (),
                  cols: str = MSG_COLS, join: str = "") -> list[Row]:
    """Rows of ``folder_id`` in the UID ranges (all when ``ranges`` is None), by UID.
    Index-driven: one range predicate per span, in chunks of ``RANGES_PER_QUERY``."""
    base = f"SELECT {cols} FROM messages m {join} WHERE m.folder_id = ?{where}"
    if ranges is None:
        return tx.all(base + " ORDER BY m.uid", (folder_id, *params))
    spans = normalise_ranges(ranges)
    rows: list[Row] = []
    for i in range(0, len(spans), RANGES_PER_QUERY):
        chunk = spans[i:i + RANGES_PER_QUERY]
        clause = " OR ".join("m.uid BETWEEN ? AND ?" for _ in chunk)
        rows += tx.all(f"{base} AND ({clause}) ORDER BY m.uid",
                       (folder_id, *params, *(v for span in chunk for v in span)))
    return rows


def add_content(tx: Tx, facts: ContentFacts, refs: int, now: float) -> int:
    """Reference ``facts``' content ``refs`` more times, storing it if new; its id."""
    row = tx.one("UPDATE contents SET refcount = refcount + ? WHERE sha256 = ? RETURNING id",
                 (refs, facts.sha256))
    if row is not None:
        return int(row[0])
    return tx.insert_id(
        "INSERT INTO contents (sha256, size, refcount, body, summary, subject, from_addr, "
        "to_addr, cc_addr, message_id, sent_date, preview, has_attachments, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sha256) DO UPDATE "
        "SET refcount = contents.refcount + excluded.refcount RETURNING id",
        (facts.sha256, len(facts.raw), refs, facts.raw, facts.summary_json, facts.subject,
         facts.from_, facts.to, facts.cc, facts.message_id, facts.date, facts.preview,
         int(facts.has_attachments), now))


def release_contents(tx: Tx, counts: Iterable[tuple[int, int]]) -> None:
    """Drop ``n`` references from each content id; delete contents left unreferenced."""
    for content_id, n in sorted(counts):
        left = tx.scalar("UPDATE contents SET refcount = refcount - ? WHERE id = ? "
                         "RETURNING refcount", (n, content_id))
        if left is not None and int(left) <= 0:
            tx.execute("DELETE FROM contents WHERE id = ?", (content_id,))


def insert_messages(tx: Tx, mailbox_id: int, folder_id: int, modseq: int,
                    items: Sequence[tuple[int, int, int, str, float]]) -> list[tuple[int, int]]:
    """Append messages ``(content_id, size, flags, keywords, internal_date)`` to a folder:
    allocates consecutive UIDs, maintains the counters, writes the change feed.
    Returns ``(uid, message id)`` per item."""
    if not items:
        return []
    n = len(items)
    unseen = sum(1 for it in items if not it[2] & SEEN)
    size = sum(it[1] for it in items)
    row = tx.one("UPDATE folders SET uidnext = uidnext + ?, message_count = message_count + ?, "
                 "unseen_count = unseen_count + ?, total_size = total_size + ?, "
                 "highest_modseq = ? WHERE id = ? AND mailbox_id = ? RETURNING uidnext - ?",
                 (n, n, unseen, size, modseq, folder_id, mailbox_id, n))
    if row is None:
        raise NotFound(f"folder {folder_id} not found in mailbox {mailbox_id}")
    first = int(row[0])
    if first + n - 1 > MAX_UID:
        raise ValidationError("the folder has run out of UIDs; it must be recreated")
    out: list[tuple[int, int]] = []
    for i, (content_id, msize, flags, keywords, internal_date) in enumerate(items):
        uid = first + i
        mid = tx.insert_id(
            "INSERT INTO messages (mailbox_id, folder_id, uid, content_id, flags, keywords, "
            "internal_date, size, modseq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (mailbox_id, folder_id, uid, content_id, flags, keywords, internal_date, msize,
             modseq))
        changes.record(tx, mailbox_id, modseq, folder_id, "message_added", uid=uid,
                       message_id=mid)
        out.append((uid, mid))
    return out


def _remove(tx: Tx, folder_id: int, mailbox_id: int, modseq: int, rows: list[Row],
            release: bool) -> list[int]:
    """Delete message rows, record expunges, fix counters, release content."""
    if not rows:
        return []
    for i in range(0, len(rows), 500):
        ids = [r[0] for r in rows[i:i + 500]]
        tx.execute(f"DELETE FROM messages WHERE id IN ({','.join('?' * len(ids))})", ids)
    unseen = sum(1 for r in rows if not int(r[5]) & SEEN)
    size = sum(int(r[8]) for r in rows)
    tx.execute("UPDATE folders SET message_count = message_count - ?, unseen_count = "
               "unseen_count - ?, total_size = total_size - ?, highest_modseq = ? WHERE id = ?",
               (len(rows), unseen, size, modseq, folder_id))
    for r in rows:
        changes.record(tx, mailbox_id, modseq, folder_id, "expunged", uid=int(r[3]),
                       message_id=int(r[0]))
    if release:
        release_contents(tx, Counter(int(r[4]) for r in rows).items())
    return [int(r[3]) for r in rows]


class MessageAPI:
    """Message methods of ``store.mail``."""

    _engine: Engine

    async def list_uids(self, folder_id: int) -> list[int]:
        """All UIDs of the folder, ascending: the IMAP sequence-number map (message
        sequence number n is ``uids[n-1]``, RFC 9051 §2.3.1.2) and the POP3 maildrop.
        One index-only scan; nothing else of the messages is loaded."""
        rows = await self._engine.read(lambda tx: tx.all(
            "SELECT uid FROM messages WHERE folder_id = ? ORDER BY uid", (folder_id,)))
        return [int(r[0]) for r in rows]

    async def fetch(self, folder_id: int, uids: UidRanges, *, changed_since: int | None = None,
                    with_summary: bool = False) -> list[Message]:
        """Messages in the UID ranges, ascending; ``changed_since``: only those with a
        greater modseq (RFC 7162 §3.1.4 CHANGEDSINCE); ``with_summary``: include the
        summary JSON (ENVELOPE, BODYSTRUCTURE, part offsets)."""
        where, params = ("", ()) if changed_since is None else (
            " AND m.modseq > ?", (changes.check_modseq(changed_since, "changed_since"),))
        cols = MSG_COLS + (", c.summary" if with_summary else "")
        join = "JOIN contents c ON c.id = m.content_id" if with_summary else ""
        rows = await self._engine.read(lambda tx: select_ranges(
            tx, folder_id, uids, where=where, params=params, cols=cols, join=join))
        return [message_from_row(r, r[10] if with_summary else None) for r in rows]

    async def get_message(self, message_id: int) -> Message:
        """One message by id, with its summary."""
        row = await self._engine.read(lambda tx: tx.one(
            f"SELECT {MSG_COLS}, c.summary FROM messages m JOIN contents c ON "
            f"c.id = m.content_id WHERE m.id = ?", (message_id,)))
        if row is None:
            raise NotFound(f"message {message_id} not found")
        return message_from_row(row, row[10])

    async def list_messages(self, folder_id: int, *, offset: int = 0, limit: int = 50,
                            newest_first: bool = True
                            ) -> list[tuple[Message, MessageHeaderFields]]:
        """A page of the folder by internal date with list columns (web, ActiveSync
        initial sync). Uses the (folder_id, internal_date) index."""
        if offset < 0 or not 1 <= limit <= MAX_LIST:
            raise ValidationError(f"offset >= 0 and 1 <= limit <= {MAX_LIST}")
        order = "DESC" if newest_first else "ASC"
        rows = await self._engine.read(lambda tx: tx.all(
            f"SELECT {MSG_COLS}, c.subject, c.from_addr, c.to_addr, c.cc_addr, c.message_id, "
            f"c.sent_date, c.preview, c.has_attachments FROM messages m JOIN contents c ON "
            f"c.id = m.content_id WHERE m.folder_id = ? ORDER BY m.internal_date {order}, "
            f"m.uid {order} LIMIT ? OFFSET ?", (folder_id, limit, offset)))
        return [(message_from_row(r), MessageHeaderFields(
            subject=r[10], from_=r[11], to=r[12], cc=r[13], message_id=r[14],
            date=None if r[15] is None else float(r[15]), preview=r[16],
            has_attachments=bool(r[17]))) for r in rows]

    async def read_content(self, message_id: int, offset: int = 0,
                           length: int | None = None) -> bytes:
        """The stored message (CRLF) or a slice of it (IMAP partial fetch, RFC 9051
        §6.4.5 ``BODY[]<offset.length>``); only the slice leaves the database."""
        if offset < 0 or (length is not None and length < 0):
            raise ValidationError("offset and length must not be negative")

        def fn(tx: Tx) -> Row | None:
            if length is None and offset == 0:
                rows = tx.all_binary("SELECT c.body FROM messages m JOIN contents c ON "
                                     "c.id = m.content_id WHERE m.id = ?", (message_id,))
                return rows[0] if rows else None
            size = tx.scalar("SELECT size FROM messages WHERE id = ?", (message_id,))
            if size is None:
                return None
            take = int(size) - offset if length is None else length
            if take <= 0 or offset >= int(size):
                return (b"",)
            expr = tx.dialect.substr.format(col="c.body")
            rows = tx.all_binary(f"SELECT {expr} FROM messages m JOIN contents c ON "
                                 f"c.id = m.content_id WHERE m.id = ?",
                                 (offset + 1, take, message_id))
            return rows[0] if rows else None
        row = await self._engine.read(fn)
        if row is None:
            raise NotFound(f"message {message_id} not found")
        return bytes(row[0])

    async def read_contents(self, message_ids: Sequence[int]) -> dict[int, bytes]:
        """The stored messages (CRLF) of up to ``MAX_READ_BATCH`` message ids in one
        read job: one thread hop and one snapshot for all of them (POP3 read-ahead).
        Ids of messages that no longer exist are absent from the result. The caller
        bounds the memory: every content named is loaded whole."""
        ids = list(dict.fromkeys(message_ids))
        if len(ids) > MAX_READ_BATCH:
            raise ValidationError(f"at most {MAX_READ_BATCH} messages per read")
        if any(type(i) is not int for i in ids):
            raise ValidationError("message ids are integers")
        if not ids:
            return {}
        sql = ("SELECT m.id, c.body FROM messages m JOIN contents c ON c.id = m.content_id "
               f"WHERE m.id IN ({','.join('?' * len(ids))})")
        rows = await self._engine.read(lambda tx: tx.all_binary(sql, ids))
        return {int(r[0]): bytes(r[1]) for r in rows}

    async def store_flags(self, folder_id: int, uids: UidRanges, mode: FlagMode,
                          flags: Iterable[str], *, unchanged_since: int | None = None
                          ) -> FlagUpdate:
        """IMAP STORE (RFC 9051 §6.4.6) with CONDSTORE (RFC 7162 §3.1.3): set, add or
        remove flags. Messages whose flags do not change keep their modseq; with
        ``unchanged_since``, messages with a greater modseq are left alone and listed
        in ``modified``."""
        if mode not in ("set", "add", "remove"):
            raise ValidationError("flag mode is set, add or remove")
        bits, keywords = parse_flags(flags)
        normalise_ranges(uids)
        if unchanged_since is not None:
            changes.check_modseq(unchanged_since, "unchanged_since")

        def fn(tx: Tx) -> FlagUpdate:
            folder = get_folder_tx(tx, folder_id)
            modseq = changes.next_modseq(tx, folder.mailbox_id)
            rows = select_ranges(tx, folder_id, uids)
            updated: list[Message] = []
            modified: list[int] = []
            unseen_delta = 0
            for row in rows:
                msg = message_from_row(row)
                if unchanged_since is not None and msg.modseq > unchanged_since:
                    modified.append(msg.uid)
                    continue
                new_bits, new_kw = _apply(mode, msg.flags, msg.keywords, bits, keywords)
                if new_bits == msg.flags and new_kw == msg.keywords:
                    continue
                tx.execute("UPDATE messages SET flags = ?, keywords = ?, modseq = ? "
                           "WHERE id = ?", (new_bits, " ".join(new_kw), modseq, msg.id))
                unseen_delta += (not new_bits & SEEN) - (not msg.flags & SEEN)
                changes.record(tx, folder.mailbox_id, modseq, folder_id, "flags_changed",
                               uid=msg.uid, message_id=msg.id)
                updated.append(Message(msg.id, msg.mailbox_id, folder_id, msg.uid,
                                       msg.content_id, new_bits, new_kw, msg.internal_date,
                                       msg.size, modseq))
            if updated:
                tx.execute("UPDATE folders SET unseen_count = unseen_count + ?, "
                           "highest_modseq = ? WHERE id = ?", (unseen_delta, modseq, folder_id))
            return FlagUpdate(tuple(updated), tuple(modified))
        return await self._engine.write(fn)

    async def expunge(self, folder_id: int, uids: UidRanges | None = None, *,
                      only_deleted: bool = True) -> list[int]:
        """Remove messages; returns their UIDs ascending. IMAP EXPUNGE (all ``\\Deleted``,
        RFC 9051 §6.4.3), UID EXPUNGE (``uids``, RFC 9051 §6.4.9); ``only_deleted=False``
        removes the named messages whatever their flags (ActiveSync/web hard delete)."""
        if uids is None and not only_deleted:
            raise ValidationError("name the messages to remove")

        def fn(tx: Tx) -> list[int]:
            folder = get_folder_tx(tx, folder_id)
            modseq = changes.next_modseq(tx, folder.mailbox_id)
            where = f" AND (m.flags & {DELETED}) <> 0" if only_deleted else ""
            rows = select_ranges(tx, folder_id, uids, where=where)
            return _remove(tx, folder_id, folder.mailbox_id, modseq, rows, release=True)
        return await self._engine.write(fn)

    async def copy(self, src_folder_id: int, uids: UidRanges,
                   dst_folder_id: int) -> CopyResult:
        """IMAP COPY (RFC 9051 §6.4.7) with UIDPLUS COPYUID (RFC 4315 §3): flags and
        internal dates are kept; content is shared, not duplicated."""
        return await self._engine.write(lambda tx: self._copy_tx(
            tx, src_folder_id, uids, dst_folder_id, move=False))

    async def move(self, src_folder_id: int, uids: UidRanges,
                   dst_folder_id: int) -> CopyResult:
        """IMAP MOVE (RFC 6851 §3.3): copy then expunge the sources, atomically."""
        return await self._engine.write(lambda tx: self._copy_tx(
            tx, src_folder_id, uids, dst_folder_id, move=True))

    @staticmethod
    def _copy_tx(tx: Tx, src_id: int, uids: UidRanges, dst_id: int, *,
                 move: bool) -> CopyResult:
        src = get_folder_tx(tx, src_id)
        dst = get_folder_tx(tx, dst_id)
        if move and src_id == dst_id:
            raise ValidationError("cannot move messages into the folder they are in")
        mods = {mb: changes.next_modseq(tx, mb)
                for mb in sorted({src.mailbox_id, dst.mailbox_id})}
        rows = select_ranges(tx, src_id, uids)
        if not rows:
            return CopyResult(dst.uidvalidity, ())
        items = [(int(r[4]), int(r[8]), int(r[5]), r[6], float(r[7])) for r in rows]
        new = insert_messages(tx, dst.mailbox_id, dst_id, mods[dst.mailbox_id], items)
        if move:
            _remove(tx, src_id, src.mailbox_id, mods[src.mailbox_id], rows, release=False)
        else:
            for content_id, n in sorted(Counter(int(r[4]) for r in rows).items()):
                tx.execute("UPDATE contents SET refcount = refcount + ? WHERE id = ?",
                           (n, content_id))
        return CopyResult(dst.uidvalidity,
                          tuple((int(r[3]), uid) for r, (uid, _mid) in zip(rows, new,
                                                                            strict=True)))

    async def vanished(self, folder_id: int, since_modseq: int) -> list[int]:
        """UIDs expunged from the folder after ``since_modseq`` (RFC 7162 §3.2.6
        VANISHED (EARLIER); ActiveSync deletions), from the change feed."""
        changes.check_modseq(since_modseq, "since_modseq")
        rows = await self._engine.read(lambda tx: tx.all(
            "SELECT DISTINCT uid FROM mail_changes WHERE folder_id = ? AND modseq > ? AND "
            "kind = 'expunged' ORDER BY uid", (folder_id, since_modseq)))
        return [int(r[0]) for r in rows]


def _apply(mode: FlagMode, bits: int, kws: tuple[str, ...], new_bits: int,
           new_kws: tuple[str, ...]) -> tuple[int, tuple[str, ...]]:
    sort: Callable[[Iterable[str]], tuple[str, ...]] = \
        lambda xs: tuple(sorted(xs, key=str.casefold))  # noqa: E731
    if mode == "set":
        return new_bits, new_kws
    current = {k.casefold(): k for k in kws}
    if mode == "add":
        for k in new_kws:
            current.setdefault(k.casefold(), k)
        return bits | new_bits, sort(current.values())
    for k in new_kws:
        current.pop(k.casefold(), None)
    return bits & ~new_bits, sort(current.values())
