"""Read-ahead of message contents for POP3 sessions that download in order.

Role: clients download one message after the other (RETR 1, RETR 2, ...). Every store
read is a hop from the event loop to a store thread and back, which costs more than
sending a small message, so the session reads the contents of a *window* of the next
messages in one store call (``store.mail.read_contents``: one thread hop, one snapshot)
and keeps them here until the client asks for them. When the client has used half of
what is held (once it has proven to read in order: as soon as a window is used), the
next window is read in the background, after the reply went out, so the store round
trip leaves the critical path and costs one hop per window instead of one per
message. The window starts at ``RAMP_START`` messages and doubles on every hit
up to ``WINDOW_MESSAGES``: a client that reads out of order (a miss resets the ramp)
costs at most ``RAMP_START`` messages read for nothing per RETR.

Invariants:
* bounded memory: a window holds at most ``WINDOW_MESSAGES`` messages and
  ``WINDOW_OCTETS`` octets (only messages of at most one transfer chunk, larger ones
  end a window and are streamed by the caller), at most ``MAX_WINDOWS`` windows exist,
  and a content leaves as soon as the client reads it or reads past it;
* no per-command work grows with the maildrop: planning a window looks at no more
  than ``SCAN_LIMIT`` message numbers;
* a content is used at most once and only within ``MAX_AGE`` seconds of the start of
  the read that fetched it: a message expunged by another client in that window is
  served as if the RETR had come that much earlier; after it, the message is read
  again (and answers ``-ERR`` when gone);
* a message a window asked for but the store no longer has raises ``NotFound``, as a
  direct read would;
* DELE and RSET need no invalidation: the snapshot fixes message number -> message id
  for the session (RFC 1939 §8) and a message's content never changes, so a held
  content is right for its number whatever the marks; RETR of a marked message is
  refused before the read-ahead is asked (RFC 1939 §5).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from gateway.errors import NotFound

WINDOW_MESSAGES = 32          # messages per window, at most
WINDOW_OCTETS = 256 * 1024    # octets per window, at most (one message may exceed it alone)
RAMP_START = 4                # first window after a miss
MAX_WINDOWS = 2               # the one being used and the one being read
MAX_AGE = 2.0                 # seconds a content read ahead may be used
SCAN_LIMIT = 4 * WINDOW_MESSAGES  # message numbers looked at to plan one window

ReadContents = Callable[[list[int]], Awaitable[dict[int, bytes]]]


class Snapshot(Protocol):
    """What the read-ahead needs of ``maildrop.Maildrop``."""

    def __len__(self) -> int: ...

    def exists(self, number: int) -> bool: ...

    def size(self, number: int) -> int: ...

    def message_id(self, number: int) -> int: ...


class _Window:
    """Consecutive unmarked messages read in one store call."""

    __slots__ = ("ids", "last", "read", "started")

    def __init__(self, ids: dict[int, int], read: asyncio.Future[dict[int, bytes]]
                 ) -> None:
        self.ids = ids                 # message number -> message id, ascending numbers
        self.last = next(reversed(ids))
        self.read = read               # message id -> content
        self.started = time.monotonic()

    def drop(self) -> None:
        if not self.read.done():
            self.read.cancel()
        # an error nobody will wait for is not reported as never retrieved
        self.read.add_done_callback(_retrieve)


def _retrieve(fut: asyncio.Future[dict[int, bytes]]) -> None:
    if not fut.cancelled():
        fut.exception()


class ReadAhead:
    """The windows of one session (see the module docstring)."""

    __slots__ = ("_ramp", "_windows", "chunk")

    def __init__(self, chunk: int) -> None:
        self.chunk = chunk             # largest message held (the caller's slice size)
        self._windows: list[_Window] = []
        self._ramp = RAMP_START

    def __len__(self) -> int:
        """Messages held or being read."""
        return sum(len(w.ids) for w in self._windows)

    def covers(self, number: int) -> bool:
        return any(number in w.ids for w in self._windows)

    def plan(self, drop: Snapshot, first: int, count: int) -> dict[int, int]:
        """Numbers -> ids of up to ``count`` unmarked messages from ``first`` on, each
        at most ``chunk`` octets, together at most ``WINDOW_OCTETS`` (the first one
        always, if it qualifies); stops at the first larger message."""
        ids: dict[int, int] = {}
        octets = 0
        end = min(len(drop), first + SCAN_LIMIT - 1)
        for n in range(first, end + 1):
            if not drop.exists(n):
                continue
            size = drop.size(n)
            if size > self.chunk or (ids and octets + size > WINDOW_OCTETS):
                break
            ids[n] = drop.message_id(n)
            octets += size
            if len(ids) >= count:
                break
        return ids

    async def content(self, number: int, drop: Snapshot, read: ReadContents) -> bytes:
        """The content of message ``number`` (unmarked, at most ``chunk`` octets), from
        a window when one holds it fresh, else from a new window read now."""
        window = self._find(number)
        if window is None:
            self.cancel()
            self._ramp = RAMP_START
            ids = self.plan(drop, number, self._ramp)
            if number not in ids:  # cannot happen for a qualifying message; be safe
                ids = {number: drop.message_id(number)}
            window = self._start(ids, read)
        else:
            self._ramp = min(self._ramp * 2, WINDOW_MESSAGES)
        message_id = window.ids[number]
        try:
            contents = await window.read
        except BaseException:
            self._discard(window)
            raise
        data = contents.get(message_id)
        # the client is past everything up to ``number``: let it go
        for n in list(window.ids):
            if n > number:
                break
            contents.pop(window.ids.pop(n), None)
        if not window.ids:
            self._discard(window)
        if data is None:
            raise NotFound(f"message {message_id} not found")
        return data

    def peek(self, number: int) -> bytes | None:
        """The content of ``number`` if a fresh window holds it already read; it stays
        held (TOP, RFC 1939 §7, usually precedes the RETR of the same message)."""
        for w in self._windows:
            if number in w.ids and w.read.done() and not w.read.cancelled() \
                    and w.read.exception() is None \
                    and time.monotonic() - w.started <= MAX_AGE:
                return w.read.result().get(w.ids[number])
        return None

    def advance(self, number: int, drop: Snapshot, read: ReadContents) -> None:
        """Message ``number`` was sent: start reading the next window when less than
        half of the ramp is held ahead of it - or, once the ramp is at its top (the
        client has read in order for a while), as soon as the next window may start,
        so that a store slower than the client (PostgreSQL) has a whole window's time
        to answer."""
        for w in [w for w in self._windows if w.last <= number]:
            self._discard(w)  # the client is past it
        if len(self._windows) >= MAX_WINDOWS:
            return
        # what is left in the windows is ahead of ``number``: ``content`` let go of the
        # rest, and ``_discard`` above of the windows the client is past
        if self._ramp < WINDOW_MESSAGES and len(self) * 2 > self._ramp:
            return
        first = max(self._windows[-1].last, number) + 1 if self._windows else number + 1
        ids = self.plan(drop, first, self._ramp)
        if ids:
            self._start(ids, read)

    def cancel(self) -> None:
        for w in self._windows:
            w.drop()
        self._windows.clear()

    # -- internals -----------------------------------------------------------------------

    def _find(self, number: int) -> _Window | None:
        """The fresh window holding ``number``; windows before it (the client skipped
        them) and stale ones are dropped."""
        now = time.monotonic()
        for i, w in enumerate(self._windows):
            if number in w.ids:
                for older in self._windows[:i]:
                    older.drop()
                del self._windows[:i]
                if now - w.started > MAX_AGE:
                    self.cancel()
                    return None
                return w
        return None

    def _start(self, ids: dict[int, int], read: ReadContents) -> _Window:
        window = _Window(ids, asyncio.ensure_future(read(list(ids.values()))))
        self._windows.append(window)
        return window

    def _discard(self, window: _Window) -> None:
        if window in self._windows:
            self._windows.remove(window)
            window.drop()
