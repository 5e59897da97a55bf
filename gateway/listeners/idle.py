"""The inactivity timer of one connection, without a timer per command.

Role: SMTP (RFC 5321 §4.5.3.2 server timeout; Exchange's ConnectionInactivityTimeout
and ConnectionTimeout), IMAP (RFC 9051 §5.4 autologout timer) and POP3 (RFC 1939 §3)
sessions wait for each read under an idle timeout. ``asyncio.timeout`` arms a timer
and cancels it for every command, which on uvloop costs more than reading and parsing
a small command. ``IdleWatch.wait(aw, idle)`` has the same outcome - ``TimeoutError`` when
``aw`` has not finished ``idle`` seconds after the wait began - for the price of a
clock read: the one timer armed is left running across commands and, when it fires
while the connection is not idle (a later wait moved the deadline), it is re-armed
for the new deadline. A busy connection re-arms it about once per idle period.

Invariants: the timer only ever cancels the task while it is inside ``wait``; that
cancellation surfaces as ``TimeoutError``, and a cancellation from elsewhere (service
shutdown) stays a ``CancelledError`` - told apart with ``Task.uncancel`` as
``asyncio.timeout`` does; a deadline earlier than the armed timer re-arms it, so a
shorter idle time (settings changed, or the pre-login timeout) is never overrun;
``close`` cancels the timer. One task waits at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


class IdleWatch:
    """See the module docstring."""

    __slots__ = ("_deadline", "_due", "_fired", "_handle", "_task")

    def __init__(self) -> None:
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0        # when the armed timer fires
        self._deadline = 0.0   # when the current wait times out
        self._task: asyncio.Task[Any] | None = None  # the task waiting, while it waits
        self._fired = False

    async def wait(self, aw: Awaitable[T], idle: float) -> T:
        """``await aw``, or ``TimeoutError`` once ``idle`` seconds have passed."""
        loop = asyncio.get_running_loop()
        deadline = self._deadline = loop.time() + idle
        if self._handle is not None and self._due > deadline:
            self._handle.cancel()
            self._handle = None
        if self._handle is None:
            self._due = deadline
            self._handle = loop.call_at(deadline, self._fire)
        task = self._task = asyncio.current_task()
        try:
            return await aw
        except asyncio.CancelledError:
            if self._fired and task is not None and task.uncancel() == 0:
                raise TimeoutError() from None
            raise
        finally:
            self._task = None
            self._fired = False

    def _fire(self) -> None:
        self._handle = None
        task = self._task
        if task is None:
            return  # not waiting: the next wait arms the timer again
        loop = asyncio.get_running_loop()
        if self._deadline > loop.time():
            self._due = self._deadline
            self._handle = loop.call_at(self._deadline, self._fire)
            return
        self._fired = True
        task.cancel()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
