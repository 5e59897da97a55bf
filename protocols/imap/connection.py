"""IMAP connection I/O: read whole commands (lines and literals), write responses.

Role: the bottom layer of the IMAP session. ``read_command`` returns the segments of
one command (see ``parser.Cursor``), handling synchronising literals (``+`` continuation
after the size was accepted) and non-synchronising ones (LITERAL+, RFC 7888).

Invariants (security.md A5):
- a line longer than ``limits.MAX_LINE`` closes the connection with BYE (the stream
  cannot be resynchronised);
- a literal's size is checked *before* the continuation is sent: a refused synchronising
  literal gets a tagged NO/BAD and its octets are never read; a refused
  non-synchronising literal closes the connection (its octets are already coming);
- the total of a command's literals is bounded (``MAX_COMMAND_LITERALS``, or
  ``MAX_APPEND_TOTAL`` for APPEND).
"""

from __future__ import annotations

import asyncio

from protocols.imap import limits
from protocols.imap.parser import literal_mark

#: Queued response octets handed to the transport at once (and the most queued).
OUTPUT_CHUNK = 65536


class ConnectionClosed(Exception):
    """The client went away (EOF or reset)."""


class FatalInput(Exception):
    """Input after which the stream cannot be trusted: send BYE and close."""


class RefusedCommand(Exception):
    """A command refused while it was being read (a literal too large); its tag and
    the response text are known and the stream is still in sync."""

    def __init__(self, tag: str, response: str) -> None:
        super().__init__(response)
        self.tag = tag
        self.response = response


class Connection:
    """Command reader and response writer over one stream pair."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.append_limit = 50 * 1024 * 1024  # per message; the session sets the store's
        self._out = bytearray()
        self.authenticated = False

    async def read_line(self, limit: int = limits.MAX_LINE) -> bytes:
        """One line without its CRLF (a bare LF is tolerated)."""
        try:
            line = await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            raise ConnectionClosed() from exc
        except asyncio.LimitOverrunError:
            raise FatalInput("line too long") from None
        except (ConnectionError, OSError) as exc:
            raise ConnectionClosed() from exc
        if len(line) > limit:
            raise FatalInput("line too long")
        return line[:-2] if line.endswith(b"\r\n") else line[:-1]

    async def read_command(self) -> list[bytes]:
        """The segments of one command: ``[line0, literal0, line1, ...]``."""
        segments = [await self.read_line()]
        first = segments[0].split(b" ", 2)
        tag = first[0].decode("ascii", "replace")
        verb = first[1].upper() if len(first) > 1 else b""
        if verb == b"UID" and len(first) > 2:
            verb = b"UID " + first[2].split(b" ", 1)[0].upper()
        # Message-sized literals only for APPEND after login: before it, nobody may make
        # us buffer more than a string's worth.
        appending = verb == b"APPEND" and self.authenticated
        per_literal = self.append_limit if appending else limits.MAX_STRING_LITERAL
        total_limit = limits.MAX_APPEND_TOTAL if appending else limits.MAX_COMMAND_LITERALS
        total = 0
        while (mark := literal_mark(segments[-1])) is not None:
            size, non_sync = mark
            total += size
            too_big = size > per_literal or total > total_limit
            if too_big:
                if non_sync:
                    raise FatalInput("literal too large")
                code = "[TOOBIG] " if appending else ""
                raise RefusedCommand(tag, f"{tag} NO {code}Literal too large")
            if len(segments) // 2 > limits.MAX_ITEMS:
                raise FatalInput("too many literals")
            if not non_sync:
                await self.send(b"+ Ready for literal data\r\n")
            try:
                data = await self.reader.readexactly(size)
            except asyncio.IncompleteReadError as exc:
                raise ConnectionClosed() from exc
            except (ConnectionError, OSError) as exc:
                raise ConnectionClosed() from exc
            segments.append(data)
            segments.append(await self.read_line())
        return segments

    def write(self, data: bytes) -> None:
        """Queue response octets; they leave at the next ``flush`` (one system call for
        many untagged responses) or once ``OUTPUT_CHUNK`` octets are queued."""
        self._out += data
        if len(self._out) >= OUTPUT_CHUNK:
            self.writer.write(bytes(self._out))
            self._out.clear()

    async def send(self, data: bytes) -> None:
        self.write(data)
        await self.flush()

    async def flush(self) -> None:
        if self._out:
            self.writer.write(bytes(self._out))
            self._out.clear()
        transport = self.writer.transport
        if transport.is_closing():
            raise ConnectionClosed()
        if transport.get_write_buffer_size() == 0:
            # All handed to the kernel: nothing to wait for, and no timer to arm (a
            # timer per response costs more than the rest of a small command).
            return
        try:
            async with asyncio.timeout(limits.WRITE_TIMEOUT):
                await self.writer.drain()
        except (ConnectionError, OSError, TimeoutError) as exc:
            raise ConnectionClosed() from exc
