"""The SMTP session's connection layer: buffered line I/O, replies, timeouts, counters.

Role: everything a command handler needs from the connection, and nothing about SMTP
semantics. One ``bytearray`` buffer sits in front of the ``StreamReader`` so the DATA
path can work on large reads and hand back what follows the end of data; replies are
collected and flushed only before the session waits for input (RFC 2920 §3.1:
pipelined replies may be batched, but must be sent before blocking).

Invariants: a read never waits longer than the connector's inactivity timeout nor past
the session deadline (ConnectionTimeout); a line longer than its limit is discarded up
to its end and reported, never buffered without bound; reply lines never hold CR/LF.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.listeners.idle import IdleWatch
from protocols.smtp import replies

if TYPE_CHECKING:
    from gateway.connectors import SessionPolicy
    from gateway.listeners.stream import ConnectionInfo
    from protocols.smtp.context import SmtpContext

log = logging.getLogger("protocols.smtp")

READ_SIZE = 64 * 1024

# Session states: before HELO/EHLO, greeted, inside a transaction (after MAIL), after
# at least one accepted RCPT.
CONNECTED, GREETED, MAIL, RCPT = "connected", "greeted", "mail", "rcpt"


class SessionClosed(Exception):
    """The session is over (client gone, QUIT, timeout or a limit): stop the loop."""


class LineTooLong(Exception):
    """A command or continuation line passed its limit (already consumed)."""


@dataclass
class Transaction:
    """One mail transaction (RFC 5321 §3.3): MAIL, RCPTs, DATA."""

    sender: str = ""  # the reverse-path as the policy normalised it ("" = null sender)
    sender_text: str = ""  # as received (for logs and Return-Path)
    smtputf8: bool = False
    declared_size: int | None = None
    recipients: list[Any] = field(default_factory=list)  # RecipientDecision


class SessionCore:
    """Connection I/O shared by the command handlers (see the module docstring)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 info: ConnectionInfo, ctx: SmtpContext) -> None:
        self.reader = reader
        self.writer = writer
        self.info = info
        self.ctx = ctx
        self.buffer = bytearray()
        self._out: list[bytes] = []
        self.inactivity_timeout = 300.0
        self.deadline = time.monotonic() + 600.0
        self._idle = IdleWatch()  # the read timeout (see read_chunk)
        self.closed = False
        self.sequence = 0
        self.connector_id = ""
        self.log_verbose = False
        self.policy: SessionPolicy  # set once the connector is chosen
        self.state = CONNECTED
        self.helo = ""
        self.esmtp = False
        self.tx = Transaction()
        self.protocol_errors = 0
        self.logon_failures = 0
        self.max_protocol_errors = 5
        self.max_logon_failures = 3
        self.tarpit = 0.0
        self.smtputf8_offered = False

    # -- protocol log -----------------------------------------------------------------

    def plog(self, event: str, data: str, context: str = "") -> None:
        """One protocol-log line (Exchange fields; only when the connector is Verbose)."""
        if not self.log_verbose or self.ctx.protocol_log is None:
            return
        self.ctx.protocol_log.write(
            connector_id=self.connector_id, session_id=self.info.connection_id,
            sequence=self.sequence, local=self._local_endpoint,
            remote=self._remote_endpoint, event=event, data=data, context=context)
        self.sequence += 1

    @property
    def _local_endpoint(self) -> str:
        return f"{self.info.local_ip}:{self.info.local_port}"

    @property
    def _remote_endpoint(self) -> str:
        return f"{self.info.remote_ip}:{self.info.remote_port}"

    # -- output -----------------------------------------------------------------------

    def reply(self, line: str) -> None:
        """Queue one reply line (no CRLF inside; see RFC 5321 §4.2)."""
        assert "\r" not in line and "\n" not in line, "reply lines never hold CR/LF"
        self._out.append(line.encode("utf-8") + b"\r\n")
        self.plog(">", line)

    def reply_lines(self, code: int, lines: list[str]) -> None:
        """A multi-line reply: ``250-a``, ``250-b``, ``250 c`` (RFC 5321 §4.2.1)."""
        for i, text in enumerate(lines):
            sep = " " if i == len(lines) - 1 else "-"
            self.reply(f"{code}{sep}{text}")

    async def flush(self) -> None:
        if not self._out:
            return
        data = b"".join(self._out)
        self._out.clear()
        self.writer.write(data)
        await self.writer.drain()

    async def close_with(self, line: str) -> None:
        """Send ``line`` (a 421) and end the session."""
        self.reply(line)
        try:
            await self.flush()
        except (ConnectionError, OSError):
            pass
        raise SessionClosed(line)

    async def protocol_error(self, line: str) -> None:
        """Reply ``line`` and count a protocol error (MaxProtocolErrors closes)."""
        self.reply(line)
        self.protocol_errors += 1
        if self.protocol_errors >= self.max_protocol_errors:
            await self.close_with(replies.TOO_MANY_ERRORS)

    def reset_transaction(self) -> None:
        self.tx = Transaction()
        if self.state in (MAIL, RCPT):
            self.state = GREETED

    async def refuse(self, line: str) -> None:
        """A policy refusal: anonymous sessions wait the connector's TarpitInterval
        before a 5xx (Exchange's tarpit; authenticated sessions and AUTH failures are
        not delayed here - the auth service tarpits those)."""
        if self.tarpit > 0 and line.startswith("5") and self.policy.principal.is_anonymous:
            await self.flush()
            await asyncio.sleep(self.tarpit)
        self.reply(line)

    # -- input ------------------------------------------------------------------------

    async def fill(self) -> None:
        """Read more bytes into ``buffer`` (flushing pending replies first)."""
        self.buffer += await self.read_chunk()

    async def read_chunk(self) -> bytes:
        """The next bytes from the client, as received (flushing pending replies first;
        the DATA path takes them without going through ``buffer``). A read waits at most
        ``inactivity_timeout``, and never past ``deadline`` (one lazy timer per session,
        ``gateway.listeners.idle``)."""
        await self.flush()
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            await self.close_with(replies.CONNECTION_TIMEOUT)
        try:
            chunk = await self._idle.wait(self.reader.read(READ_SIZE),
                                          min(self.inactivity_timeout, remaining))
        except TimeoutError:
            if time.monotonic() >= self.deadline:
                await self.close_with(replies.CONNECTION_TIMEOUT)
            await self.close_with(replies.INACTIVITY_TIMEOUT)
        except (ConnectionError, OSError):
            raise SessionClosed("connection lost") from None
        if not chunk:
            raise SessionClosed("client closed the connection")
        return chunk

    def stop_watchdog(self) -> None:
        """Cancel the read timer (the session is over)."""
        self._idle.close()

    async def read_line(self, limit: int) -> bytes:
        """One line without its line end (CRLF, or a lone LF from lax clients).

        ``LineTooLong`` after discarding a line longer than ``limit`` octets."""
        scanned = 0
        while True:
            end = self.buffer.find(b"\n", scanned)
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[:end + 1]
                if len(line) > limit:
                    raise LineTooLong()
                return line[:-1] if line.endswith(b"\r") else line
            scanned = len(self.buffer)
            if scanned > limit + 1:
                await self._discard_line()
                raise LineTooLong()
            await self.fill()

    async def _discard_line(self) -> None:
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                del self.buffer[:end + 1]
                return
            self.buffer.clear()
            await self.fill()
