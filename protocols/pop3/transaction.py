"""POP3 TRANSACTION and UPDATE commands (RFC 1939 §5-§7) over the session's maildrop.

Role: STAT, LIST, RETR, TOP, DELE, RSET, NOOP, UIDL, and the UPDATE state entered by
QUIT. RETR and TOP stream the stored message in ``CHUNK``-octet slices read from the
store (``store.mail.read_content``), byte-stuffed on the way, so neither a large
message nor a large maildrop is ever held in memory. Clients download one message
after the other, so after each RETR the next messages (if at most one chunk) are read
ahead while the client parses what it got: the store round trip leaves the critical
path. At most ``READ_AHEAD_WINDOW`` messages are read ahead, a read is used only if
the client asks for that message within ``READ_AHEAD_MAX_AGE`` seconds (a message
expunged meanwhile by another client is then served as if the RETR had come a moment
earlier), and a client that does not read in order makes the session drop them all.

Invariants: a message that another client expunged after login answers ``-ERR`` before
anything is sent; if it vanishes half-way through a transfer (possible only for
messages larger than one chunk) the connection is closed, never terminated with
".CRLF" over a truncated message, so the client cannot take it for complete. DELE
only marks; the store changes only in UPDATE, in one transaction.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from gateway.errors import GatewayError, NotFound
from protocols.pop3 import wire
from protocols.pop3.commands import Command, line_count, message_number

if TYPE_CHECKING:
    from protocols.pop3.maildrop import Maildrop
    from protocols.pop3.session import Pop3Context

log = logging.getLogger("protocols.pop3")

CHUNK = 256 * 1024  # octets read from the store per slice of a message
NO_SUCH_MESSAGE = "No such message."
GONE = "That message has been removed from the mailbox since you logged on."


SIGN_OFF = "Microsoft Exchange Server POP3 server signing off."
READ_AHEAD_MAX_AGE = 2.0  # seconds
READ_AHEAD_WINDOW = 3     # messages


class ReadAhead:
    """The contents of up to ``READ_AHEAD_WINDOW`` messages being read before the client
    asks for them (each at most one chunk, so at most 3 x 256 KiB per session)."""

    __slots__ = ("_reads",)

    def __init__(self) -> None:
        # message number -> (read, start time), ascending numbers
        self._reads: dict[int, tuple[asyncio.Task[bytes], float]] = {}

    def __contains__(self, number: int) -> bool:
        return number in self._reads

    def __len__(self) -> int:
        return len(self._reads)

    def start(self, number: int, read: Awaitable[bytes]) -> None:
        if number in self._reads:
            if inspect.iscoroutine(read):
                read.close()  # already under way: not read twice
            return
        self._reads[number] = (asyncio.ensure_future(read), time.monotonic())

    def take(self, number: int) -> asyncio.Task[bytes] | None:
        """The read of ``number`` if one is under way and fresh, else None. Reads of
        lower numbers are dropped; when ``number`` was not read ahead (the client is
        not reading in order) every read is dropped."""
        entry = self._reads.pop(number, None)
        for other in [n for n in self._reads if entry is None or n < number]:
            self._drop(other)
        if entry is None:
            return None
        task, started = entry
        if time.monotonic() - started > READ_AHEAD_MAX_AGE:
            _discard(task)
            return None
        return task

    def cancel(self) -> None:
        for number in list(self._reads):
            self._drop(number)

    def _drop(self, number: int) -> None:
        task, _started = self._reads.pop(number)
        _discard(task)


def _discard(task: asyncio.Task[bytes]) -> None:
    task.cancel()
    # a read that failed before the cancel: its error is not needed
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


class TransferAborted(wire.CloseConnection):
    """The message disappeared mid-transfer; the connection must be closed."""


class TransactionCommands:
    """Mixed into ``Pop3Session``; see the module docstring."""

    ctx: Pop3Context
    maildrop: Maildrop | None
    read_ahead: ReadAhead
    _log_extra: dict[str, dict[str, str]]

    async def send(self, data: bytes) -> None:
        raise NotImplementedError

    async def reply(self, ok: bool, text: str = "") -> None:
        raise NotImplementedError

    async def bad_command(self, text: str) -> None:
        raise NotImplementedError

    @property
    def drop(self) -> Maildrop:
        assert self.maildrop is not None  # TRANSACTION state only (commands.COMMANDS)
        return self.maildrop

    async def _number(self, text: str) -> int | None:
        """A message number naming an unmarked message, or None after replying -ERR."""
        number = message_number(text)
        if self.drop.exists(number):
            return number
        if self.drop.is_deleted(number):
            await self.reply(False, f"Message {number} has been deleted.")
        else:
            await self.reply(False, NO_SUCH_MESSAGE)
        return None

    async def do_stat(self, command: Command) -> None:
        await self.reply(True, f"{self.drop.count} {self.drop.octets}")

    async def do_noop(self, command: Command) -> None:
        await self.reply(True)

    async def do_list(self, command: Command) -> None:
        drop = self.drop
        if command.args:
            number = await self._number(command.args[0])
            if number is not None:
                await self.reply(True, f"{number} {drop.size(number)}")
            return
        lines = (f"{n} {drop.size(n)}" for n in drop.present())
        for part in wire.multiline_parts(f"{drop.count} messages ({drop.octets} octets)",
                                         lines):
            await self.send(part)

    async def do_uidl(self, command: Command) -> None:
        drop = self.drop
        if command.args:
            number = await self._number(command.args[0])
            if number is not None:
                await self.reply(True, f"{number} {drop.unique_id(number)}")
            return
        lines = (f"{n} {drop.unique_id(n)}" for n in drop.present())
        for part in wire.multiline_parts("", lines):
            await self.send(part)

    async def do_dele(self, command: Command) -> None:
        number = await self._number(command.args[0])
        if number is not None:
            self.drop.mark_deleted(number)
            await self.reply(True, f"Message {number} marked for deletion.")

    async def do_rset(self, command: Command) -> None:
        self.drop.reset()
        await self.reply(True, f"Maildrop has {self.drop.count} messages "
                               f"({self.drop.octets} octets).")

    async def do_retr(self, command: Command) -> None:
        number = await self._number(command.args[0])
        if number is not None:
            await self.transfer(number, None)

    async def do_top(self, command: Command) -> None:
        lines = line_count(command.args[1])
        number = await self._number(command.args[0])
        if number is not None:
            await self.transfer(number, lines)

    async def transfer(self, number: int, top_lines: int | None) -> None:
        """Send message ``number`` (all of it, or TOP's header and ``top_lines``)."""
        drop, mail = self.drop, self.ctx.mail
        message_id, size = drop.message_id(number), drop.size(number)
        ahead = self.read_ahead.take(number) if top_lines is None else None
        if top_lines is not None:
            self.read_ahead.cancel()
        try:
            # the first slice is read before "+OK": a vanished message gets -ERR
            chunk = await (ahead if ahead is not None
                           else mail.read_content(message_id) if size <= CHUNK
                           else mail.read_content(message_id, 0, CHUNK))
        except NotFound:
            await self.reply(False, GONE)
            return
        except GatewayError as exc:
            log.warning("pop3 cannot read message %d: %s", message_id, exc,
                        extra=self._log_extra)
            await self.reply(False, "[SYS/TEMP] The message cannot be read now.")
            return
        # One write per slice: the status line goes with the first slice and the
        # terminator with the last, so a small message leaves in one TCP segment.
        head = wire.status(True, f"{size} octets" if top_lines is None else "")
        stuffer = wire.DotStuffer()
        cut = wire.TopCut(top_lines) if top_lines is not None else None
        offset = len(chunk)
        while True:
            data = stuffer.feed(cut.feed(chunk) if cut is not None else chunk)
            last = not chunk or offset >= size or (cut is not None and cut.done)
            await self.send(b"".join((head, data, stuffer.end() if last else b"")))
            if last:
                # after the send, not during it: the reader thread then runs while
                # the loop waits for the client, instead of contending for the GIL
                if top_lines is None:
                    self._read_next(number + 1)
                break
            head = b""
            try:
                chunk = await mail.read_content(message_id, offset, CHUNK)
            except GatewayError as exc:
                log.warning("pop3 message %d vanished during transfer (%s); closing",
                            message_id, exc, extra=self._log_extra)
                raise TransferAborted() from None
            offset += len(chunk)

    def _read_next(self, number: int) -> None:
        """Keep the next ``READ_AHEAD_WINDOW`` messages (of at most one chunk) being
        read: with several reads in flight the store's reader threads work in
        parallel, so the next message is ready when the client asks for it."""
        drop = self.drop
        for n in range(number, min(number + READ_AHEAD_WINDOW, len(drop) + 1)):
            if drop.exists(n) and drop.size(n) <= CHUNK and n not in self.read_ahead:
                self.read_ahead.start(n, self.ctx.mail.read_content(drop.message_id(n)))

    async def update(self) -> None:
        """QUIT in TRANSACTION: the UPDATE state (RFC 1939 §6) removes marked messages."""
        drop = self.drop
        ranges = drop.deleted_ranges()
        if ranges:
            try:
                removed = await self.ctx.mail.expunge(drop.folder.id, ranges,
                                                      only_deleted=False)
            except GatewayError as exc:
                log.warning("pop3 UPDATE failed: %s", exc, extra=self._log_extra)
                await self.reply(False, "[SYS/TEMP] Some deleted messages were not removed.")
                return
            log.info("pop3 UPDATE removed %d messages", len(removed), extra=self._log_extra)
        await self.reply(True, SIGN_OFF)
