"""Store-side support for IMAP SEARCH and SELECT (RFC 9051 §6.4.4): ``store.imap_search``.

Role: the parts of a search the database answers well - UID ranges, system flags,
internal date, size and modseq - as one indexed query over a folder's message rows,
plus the batched reads the IMAP layer needs to test the remaining criteria (summaries
and message bodies of the candidates only) and the two counts SELECT/STATUS ask for.

Invariants: one code path for both engines (``?`` placeholders, no engine-specific
SQL); only the candidates' rows leave the database; the content of a message is read
only when a criterion needs it (BODY, TEXT, HEADER).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.store import changes
from gateway.store.engine import Engine, Tx
from gateway.store.folders import get_folder_tx
from gateway.store.messages import MSG_COLS, UidRanges, message_from_row, select_ranges
from gateway.store.models import DELETED, SEEN, Folder, Message

MAX_BATCH = 500  # ids per IN (...) list


@dataclass(frozen=True)
class SearchFilter:
    """A conjunction of criteria the database evaluates (all optional)."""

    uids: UidRanges | None = None
    flags_set: int = 0  # every bit must be set
    flags_clear: int = 0  # every bit must be clear
    since: float | None = None  # internal_date >= since
    before: float | None = None  # internal_date < before
    larger: int | None = None  # size > larger
    smaller: int | None = None  # size < smaller
    modseq_min: int | None = None  # modseq >= modseq_min (RFC 7162 §3.1.5)


class ImapSearchStore:
    """See the module docstring."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def search(self, folder_id: int, flt: SearchFilter, *,
                     with_summary: bool = False) -> list[Message]:
        """Messages of the folder matching ``flt``, ascending UID."""
        where: list[str] = []
        params: list[object] = []
        if flt.flags_set:
            where.append(f"(m.flags & {int(flt.flags_set)}) = {int(flt.flags_set)}")
        if flt.flags_clear:
            where.append(f"(m.flags & {int(flt.flags_clear)}) = 0")
        for clause, value in (("m.internal_date >= ?", flt.since),
                              ("m.internal_date < ?", flt.before),
                              ("m.size > ?", flt.larger), ("m.size < ?", flt.smaller)):
            if value is not None:
                where.append(clause)
                params.append(value)
        if flt.modseq_min is not None:
            where.append("m.modseq >= ?")
            params.append(changes.check_modseq(flt.modseq_min, "modseq"))
        sql = "".join(" AND " + w for w in where)
        cols = MSG_COLS + (", c.summary" if with_summary else "")
        join = "JOIN contents c ON c.id = m.content_id" if with_summary else ""

        def fn(tx: Tx) -> list[Message]:
            rows = select_ranges(tx, folder_id, flt.uids, where=sql, params=params,
                                 cols=cols, join=join)
            return [message_from_row(r, r[10] if with_summary else None) for r in rows]
        return await self._engine.read(fn)

    async def bodies(self, message_ids: Sequence[int], *,
                     limit: int | None = None) -> dict[int, bytes]:
        """The stored messages (CRLF) of ``message_ids`` by message id, in batches;
        ``limit``: only the first ``limit`` octets of each (headers, partial fetches)."""
        ids = list(dict.fromkeys(message_ids))

        def fn(tx: Tx) -> dict[int, bytes]:
            out: dict[int, bytes] = {}
            if limit is not None and limit <= 0:
                return {mid: b"" for mid in ids}
            col = "c.body" if limit is None else tx.dialect.substr.format(col="c.body")
            head: list[object] = [] if limit is None else [1, limit]
            for i in range(0, len(ids), MAX_BATCH):
                chunk = ids[i:i + MAX_BATCH]
                marks = ",".join("?" for _ in chunk)
                for mid, body in tx.all(
                        f"SELECT m.id, {col} FROM messages m JOIN contents c ON "
                        f"c.id = m.content_id WHERE m.id IN ({marks})", [*head, *chunk]):
                    out[int(mid)] = bytes(body)
            return out
        return await self._engine.read(fn)

    async def flag_snapshot(self, folder_id: int
                            ) -> tuple[Folder, list[tuple[int, int, str, int]]]:
        """The folder row and ``(uid, flags, keywords, modseq)`` of all its messages by
        UID, from one snapshot: what IMAP SELECT and ``FETCH 1:* (UID FLAGS)`` need,
        without the other columns (the IMAP layer caches it per ``highest_modseq``)."""
        def fn(tx: Tx) -> tuple[Folder, list[tuple[int, int, str, int]]]:
            folder = get_folder_tx(tx, folder_id)
            rows = tx.all("SELECT uid, flags, keywords, modseq FROM messages "
                          "WHERE folder_id = ? ORDER BY uid", (folder_id,))
            return folder, [(int(r[0]), int(r[1]), r[2] or "", int(r[3])) for r in rows]
        return await self._engine.read(fn)

    async def first_unseen(self, folder_id: int) -> int | None:
        """UID of the first message without ``\\Seen`` (RFC 3501 §7.1 UNSEEN code)."""
        value = await self._engine.read(lambda tx: tx.scalar(
            f"SELECT MIN(uid) FROM messages WHERE folder_id = ? AND (flags & {SEEN}) = 0",
            (folder_id,)))
        return None if value is None else int(value)

    async def count_deleted(self, folder_id: int) -> int:
        """Messages with ``\\Deleted`` (RFC 9051 §6.3.11 STATUS DELETED)."""
        value = await self._engine.read(lambda tx: tx.scalar(
            f"SELECT COUNT(*) FROM messages WHERE folder_id = ? AND (flags & {DELETED}) <> 0",
            (folder_id,)))
        return int(value or 0)
