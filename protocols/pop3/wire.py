"""POP3 connection I/O: bounded line reading, replies, and multi-line body encoding.

Role: the byte layer under ``protocols.pop3.session``. Reads one CRLF-terminated line
within an explicit limit and timeout; writes status lines and multi-line responses
with byte-stuffing (RFC 1939 §3: a line starting with "." gets one more "."; the
response ends with ".CRLF"); ``TopCut`` selects the header and the first n body lines
of a message for TOP (RFC 1939 §7) while the message streams through in chunks.

Invariants: nothing here buffers more than one line (at most ``limit`` octets) or one
chunk; the stored messages these functions carry are CRLF-normalised (docs/store.md),
so every LF ends a line; a reply line never holds CR or LF from its arguments.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable, Iterator

# RFC 2449 §4: commands are at most 255 octets with CRLF. Passwords (up to 1024
# characters, auth.passwords.MAX_PASSWORD_LENGTH, 4 octets each in UTF-8) and SASL
# initial responses legitimately exceed that, so a command line may hold 8192 octets.
MAX_COMMAND_LINE = 8192


class LineTooLong(Exception):
    """The client sent more than the limit without a line end."""


class CloseConnection(Exception):
    """End the session now (after whatever reply was already sent)."""


class ClientGone(Exception):
    """The client closed the connection (EOF)."""


async def read_line(reader: asyncio.StreamReader, limit: int, idle: float) -> bytes:
    """One line without its CRLF (a bare LF is accepted as a line end).

    Raises ``TimeoutError`` after ``idle`` seconds of silence, ``LineTooLong`` past
    ``limit`` octets, ``ClientGone`` on EOF. A session waits for ``line`` under its
    ``gateway.listeners.idle.IdleWatch`` instead, which arms no timer per line.
    """
    async with asyncio.timeout(idle):
        return await line(reader, limit)


async def line(reader: asyncio.StreamReader, limit: int) -> bytes:
    """``read_line`` without the timeout."""
    try:
        data = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError:
        raise ClientGone() from None
    except asyncio.LimitOverrunError:
        raise LineTooLong() from None
    if len(data) > limit:
        raise LineTooLong()
    return data[:-2] if data.endswith(b"\r\n") else data[:-1]


def status(ok: bool, text: str = "") -> bytes:
    """``+OK text`` / ``-ERR text`` with CRLF (RFC 1939 §3); CR/LF in text are removed."""
    clean = text.replace("\r", " ").replace("\n", " ")
    head = "+OK" if ok else "-ERR"
    return f"{head} {clean}\r\n".encode() if clean else f"{head}\r\n".encode()


def multiline(ok_text: str, lines: Iterable[str]) -> bytes:
    """A complete multi-line response: status, byte-stuffed lines, terminator."""
    return b"".join(multiline_parts(ok_text, lines, batch=sys.maxsize))


def multiline_parts(ok_text: str, lines: Iterable[str], *, batch: int = 1024
                    ) -> Iterator[bytes]:
    """The same response in pieces of at most ``batch`` lines (LIST and UIDL of a large
    maildrop are sent without building one large buffer)."""
    out = [status(True, ok_text)]
    for line in lines:
        data = line.encode()
        out.append(b"." + data + b"\r\n" if data.startswith(b".") else data + b"\r\n")
        if len(out) >= batch:
            yield b"".join(out)
            out = []
    out.append(b".\r\n")
    yield b"".join(out)


def stuff_whole(message: bytes) -> tuple[bytes, bytes]:
    """A whole message byte-stuffed (RFC 1939 §3) and its terminator, as two parts to
    be written together: one ``replace`` over the message, which is the message itself
    (no copy) when no line starts with "."; the same octets as ``DotStuffer``."""
    body = message.replace(b"\n.", b"\n..")
    if message[:1] == b".":
        body = b"." + body
    return body, (b".\r\n" if not message or message.endswith(b"\r\n") else b"\r\n.\r\n")


class DotStuffer:
    """Byte-stuffs a CRLF message chunk by chunk (RFC 1939 §3)."""

    __slots__ = ("_at_line_start", "_tail")

    def __init__(self) -> None:
        self._at_line_start = True
        self._tail = b"\r\n"  # the last two octets seen (an empty message needs no CRLF)

    def feed(self, chunk: bytes) -> bytes:
        if not chunk:
            return b""
        out = chunk.replace(b"\n.", b"\n..")
        if self._at_line_start and chunk[:1] == b".":
            out = b"." + out
        self._at_line_start = chunk.endswith(b"\n")
        self._tail = (self._tail + chunk[-2:])[-2:]
        return out

    def end(self) -> bytes:
        """The terminator, preceded by CRLF when the message did not end with one."""
        return b".\r\n" if self._tail == b"\r\n" else b"\r\n.\r\n"


class TopCut:
    """Passes the header, the blank line and ``n`` body lines of a message (RFC 1939 §7
    TOP), chunk by chunk, without holding a line in memory."""

    __slots__ = ("_in_header", "_line_len", "_remaining", "done")

    def __init__(self, lines: int) -> None:
        self._in_header = True
        self._remaining = lines
        self._line_len = 0  # octets of the current line seen in earlier chunks
        self.done = False

    def feed(self, chunk: bytes) -> bytes:
        if self.done:
            return b""
        pos = 0
        while pos < len(chunk):
            nl = chunk.find(b"\n", pos)
            if nl < 0:
                self._line_len += len(chunk) - pos
                return chunk
            line_len = self._line_len + nl + 1 - pos
            self._line_len = 0
            pos = nl + 1
            if self._in_header:
                if line_len <= 2:  # the empty line ("\r\n") ends the header
                    self._in_header = False
                    if self._remaining == 0:
                        return self._stop(chunk, pos)
            else:
                self._remaining -= 1
                if self._remaining <= 0:
                    return self._stop(chunk, pos)
        return chunk

    def _stop(self, chunk: bytes, pos: int) -> bytes:
        self.done = True
        return chunk[:pos]
