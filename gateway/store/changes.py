"""The mail change feed: written with every change, read by IMAP IDLE, ActiveSync Ping
and the web.

Writing (inside a transaction function):
* ``next_modseq(tx, mailbox_id)`` bumps the mailbox's ``mail_state.modseq`` and returns
  it. It is called once per transaction and mailbox, *before* any other mail row is
  touched: on PostgreSQL the row lock it takes serialises a mailbox's writers, so the
  feed's order is the commit order (an identity column would not be: a later id can
  commit first and a reader would skip the earlier one for ever);
* ``record(tx, ...)`` appends one row with that modseq and calls ``tx.notify``.

Reading: ``store.changes.since(mailbox_id, after_modseq)`` and
``await store.changes.wait(mailbox_id, after_modseq, timeout)``, which returns as soon as
rows newer than ``after_modseq`` exist (empty list on timeout). Wake-ups: in-process via
asyncio events set after COMMIT, other nodes via PostgreSQL LISTEN/NOTIFY, other processes
on SQLite by one poller per process that reads the waited-on mailboxes' modseqs in one
query per ``Engine.cross_process_poll_interval`` (a safety net on PostgreSQL).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from gateway.errors import GatewayError, NotFound, ValidationError
from gateway.store.engine import Engine, Row, Tx
from gateway.store.models import Change, ChangeKind

MAX_MODSEQ = 2**63 - 1  # RFC 7162 §7


def check_modseq(value: object, what: str) -> int:
    """Validate a client-supplied mod-sequence (CHANGEDSINCE, UNCHANGEDSINCE, cursors)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_MODSEQ:
        raise ValidationError(f"{what} must be an integer from 0 to {MAX_MODSEQ}")
    return value

MAX_CHANGES = 10_000  # rows returned by one since()/wait()
MAX_WAIT = 3600.0  # seconds; a longer timeout is clamped (ActiveSync Ping max is 59 min)

_COLS = "id, mailbox_id, modseq, folder_id, kind, uid, message_id, detail, at"


def next_modseq(tx: Tx, mailbox_id: int) -> int:
    """Allocate the transaction's modseq for ``mailbox_id`` (and lock the mailbox)."""
    row = tx.one("UPDATE mail_state SET modseq = modseq + 1 WHERE mailbox_id = ? "
                 "RETURNING modseq", (mailbox_id,))
    if row is None:
        raise NotFound(f"mailbox {mailbox_id} not found")
    return int(row[0])


def record(tx: Tx, mailbox_id: int, modseq: int, folder_id: int, kind: ChangeKind, *,
           uid: int | None = None, message_id: int | None = None,
           detail: str | None = None) -> None:
    """Append one change row (same transaction as the change)."""
    tx.execute("INSERT INTO mail_changes (mailbox_id, modseq, folder_id, kind, uid, "
               "message_id, detail, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
               (mailbox_id, modseq, folder_id, kind, uid, message_id, detail, time.time()))
    tx.notify(mailbox_id)


def _change(row: Row) -> Change:
    return Change(id=int(row[0]), mailbox_id=int(row[1]), modseq=int(row[2]),
                  folder_id=int(row[3]), kind=row[4],
                  uid=None if row[5] is None else int(row[5]),
                  message_id=None if row[6] is None else int(row[6]),
                  detail=row[7], at=float(row[8]))


def _modseqs_of(mailbox_ids: list[int]) -> Callable[[Tx], list[Row]]:
    def fn(tx: Tx) -> list[Row]:
        return tx.all(f"SELECT mailbox_id, modseq FROM mail_state WHERE mailbox_id IN "
                      f"({','.join('?' * len(mailbox_ids))})", mailbox_ids)
    return fn


class ChangeHub:
    """Wake-ups for tasks waiting on mailboxes' change feeds.

    ``wake(ids)`` runs after a local COMMIT or a NOTIFY. For changes this process is not
    told about, one poller task per process reads ``mail_state.modseq`` of every waited-on
    mailbox in one query per interval and wakes the waiters whose cursor is behind: the
    cost is one query per interval, not one per waiter.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._waiters: dict[int, dict[asyncio.Event, int]] = {}
        self._poller: asyncio.Task[None] | None = None

    def register(self, mailbox_id: int, cursor: int) -> asyncio.Event:
        """A new event for a waiter that has seen the mailbox up to modseq ``cursor``."""
        event = asyncio.Event()
        self._waiters.setdefault(mailbox_id, {})[event] = cursor
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll())
        return event

    def advance(self, mailbox_id: int, event: asyncio.Event, cursor: int) -> None:
        waiters = self._waiters.get(mailbox_id)
        if waiters is not None and event in waiters:
            waiters[event] = max(waiters[event], cursor)

    def unregister(self, mailbox_id: int, event: asyncio.Event) -> None:
        waiters = self._waiters.get(mailbox_id)
        if waiters is not None:
            waiters.pop(event, None)
            if not waiters:
                del self._waiters[mailbox_id]

    def wake(self, mailbox_ids: set[int]) -> None:
        """Called on the event loop after a commit (or a NOTIFY) touching these mailboxes."""
        for mailbox_id in mailbox_ids:
            for event in self._waiters.get(mailbox_id, {}):
                event.set()

    async def _poll(self) -> None:
        interval = self._engine.cross_process_poll_interval or MAX_WAIT
        while self._waiters:
            await asyncio.sleep(interval)
            ids = list(self._waiters)
            try:
                rows: list[Row] = []
                for i in range(0, len(ids), 500):
                    rows += await self._engine.read(_modseqs_of(ids[i:i + 500]))
            except GatewayError:
                continue  # store briefly unavailable or closing: waiters time out
            for mailbox_id, modseq in rows:
                for event, cursor in self._waiters.get(int(mailbox_id), {}).items():
                    if int(modseq) > cursor:
                        event.set()

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller


class ChangeFeed:
    """``store.changes``."""

    def __init__(self, engine: Engine, hub: ChangeHub) -> None:
        self._engine = engine
        self._hub = hub

    async def current(self, mailbox_id: int) -> int:
        """The mailbox's latest modseq: a cursor to start waiting from."""
        value = await self._engine.read(lambda tx: tx.scalar(
            "SELECT modseq FROM mail_state WHERE mailbox_id = ?", (mailbox_id,)))
        if value is None:
            raise NotFound(f"mailbox {mailbox_id} not found")
        return int(value)

    async def since(self, mailbox_id: int, after_modseq: int, *,
                    limit: int = MAX_CHANGES) -> list[Change]:
        """Changes with modseq > ``after_modseq``, oldest first (at most ``limit``; a
        transaction's rows are never split, so the batch may end a little past it)."""
        changes, _current = await self._since(mailbox_id, after_modseq, limit)
        return changes

    async def _since(self, mailbox_id: int, after_modseq: int,
                     limit: int = MAX_CHANGES) -> tuple[list[Change], int]:
        """The changes and, from the same snapshot, the mailbox's current modseq."""
        check_modseq(after_modseq, "after_modseq")
        limit = max(1, min(int(limit), MAX_CHANGES))

        def fn(tx: Tx) -> tuple[list[Row], int]:
            current = tx.scalar("SELECT modseq FROM mail_state WHERE mailbox_id = ?",
                                (mailbox_id,))
            rows = tx.all(f"SELECT {_COLS} FROM mail_changes WHERE mailbox_id = ? AND "
                          f"modseq > ? ORDER BY modseq, id LIMIT ?",
                          (mailbox_id, after_modseq, limit))
            if len(rows) == limit:  # complete the last transaction's rows
                last = rows[-1]
                rows += tx.all(f"SELECT {_COLS} FROM mail_changes WHERE mailbox_id = ? AND "
                               f"modseq = ? AND id > ? ORDER BY id",
                               (mailbox_id, last[2], last[0]))
            return rows, int(current or 0)
        rows, current = await self._engine.read(fn)
        return [_change(r) for r in rows], current

    async def wait(self, mailbox_id: int, after_modseq: int,
                   timeout: float) -> list[Change]:  # noqa: ASYNC109 - returns [] on timeout
        """Wait until the mailbox has changes after ``after_modseq``; return them, or
        an empty list once ``timeout`` seconds pass."""
        if timeout < 0:
            raise ValidationError("timeout must not be negative")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(float(timeout), MAX_WAIT)
        # Registered before the first query: a commit in between still wakes us.
        event = self._hub.register(mailbox_id, after_modseq)
        try:
            while True:
                event.clear()
                changes, current = await self._since(mailbox_id, after_modseq)
                if changes:
                    return changes
                self._hub.advance(mailbox_id, event, current)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return []
                try:
                    await asyncio.wait_for(event.wait(), remaining)
                except TimeoutError:
                    return []
        finally:
            self._hub.unregister(mailbox_id, event)

    async def prune(self, older_than: float) -> int:
        """Delete change rows recorded before ``older_than`` (unix time); returns how
        many. Clients whose cursor is older must resynchronise (RFC 7162 §3.2.5.2)."""
        def fn(tx: Tx) -> int:
            return int(tx.execute("DELETE FROM mail_changes WHERE at < ?",
                                  (older_than,)).rowcount)
        return await self._engine.write(fn)
