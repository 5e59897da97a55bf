"""POP3 TRANSACTION and UPDATE commands (RFC 1939 §5-§7) over the session's maildrop.

Role: STAT, LIST, RETR, TOP, DELE, RSET, NOOP, UIDL, and the UPDATE state entered by
QUIT. RETR and TOP of a message larger than ``CHUNK`` octets stream it in slices read
from the store (``store.mail.read_content``), byte-stuffed on the way, so neither a
large message nor a large maildrop is ever held in memory. RETR of a smaller message
takes its content from the session's read-ahead (``readahead``: windows of the next
messages read in one store call, ahead of the client) and writes the status line,
the byte-stuffed message and the terminator in one vectored write; TOP uses a content
the read-ahead holds, without consuming it, or reads the message itself.

Invariants: a message that another client expunged after login answers ``-ERR`` before
anything is sent; if it vanishes half-way through a transfer (possible only for
messages larger than one chunk) the connection is closed, never terminated with
".CRLF" over a truncated message, so the client cannot take it for complete. DELE
only marks; the store changes only in UPDATE, in one transaction.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gateway.errors import GatewayError, NotFound
from protocols.pop3 import wire
from protocols.pop3.commands import Command, line_count, message_number

if TYPE_CHECKING:
    from protocols.pop3.maildrop import Maildrop
    from protocols.pop3.readahead import ReadAhead
    from protocols.pop3.session import Pop3Context

log = logging.getLogger("protocols.pop3")

CHUNK = 256 * 1024  # octets read from the store per slice of a message
NO_SUCH_MESSAGE = "No such message."
GONE = "That message has been removed from the mailbox since you logged on."


SIGN_OFF = "Microsoft Exchange Server POP3 server signing off."


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

    async def send_parts(self, parts: tuple[bytes, ...]) -> None:
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
        try:
            # the first slice is read before "+OK": a vanished message gets -ERR
            if size > CHUNK:
                chunk = await mail.read_content(message_id, 0, CHUNK)
            elif top_lines is None:
                chunk = await self.read_ahead.content(number, drop, mail.read_contents)
            else:
                held = self.read_ahead.peek(number)
                chunk = held if held is not None else await mail.read_content(message_id)
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
        if size <= CHUNK and top_lines is None:
            await self.send_parts((head, *wire.stuff_whole(chunk)))
            # after the send, not during it: the store thread then runs while the
            # loop waits for the client, instead of contending for the GIL
            self.read_ahead.advance(number, drop, mail.read_contents)
            return
        stuffer = wire.DotStuffer()
        cut = wire.TopCut(top_lines) if top_lines is not None else None
        offset = len(chunk)
        while True:
            data = stuffer.feed(cut.feed(chunk) if cut is not None else chunk)
            last = not chunk or offset >= size or (cut is not None and cut.done)
            await self.send_parts((head, data, stuffer.end() if last else b""))
            if last:
                if top_lines is None:
                    self.read_ahead.advance(number, drop, mail.read_contents)
                break
            head = b""
            try:
                chunk = await mail.read_content(message_id, offset, CHUNK)
            except GatewayError as exc:
                log.warning("pop3 message %d vanished during transfer (%s); closing",
                            message_id, exc, extra=self._log_extra)
                raise TransferAborted() from None
            offset += len(chunk)

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
