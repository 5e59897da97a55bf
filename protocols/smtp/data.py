"""The DATA body decoder: end-of-data detection, dot-unstuffing, line-end repair.

Role: turn the bytes a client sends after ``354`` into the message, on large buffers
(no per-line Python loop for ordinary text: the scan jumps from one ``CRLF "."`` to
the next with ``bytes.find``).

Invariants (RFC 5321 §4.1.1.4, §4.5.2; security.md A3, SMTP smuggling):

* the data ends **only** at ``CRLF "." CRLF`` (or ``"." CRLF`` as the very first line);
  ``LF "." LF``, ``CR "." CR``, ``LF "." CRLF``, ``CRLF "." LF`` and every other mix of
  bare CR/LF around a dot are content, never an end;
* a line (after a real CRLF) that begins with ``"."`` loses that first dot;
* a bare CR or bare LF in the content is normalised to CRLF (counted in
  ``bare_line_ends``), so it is never passed on to a store, a queue or another MTA;
* at most ``max_size`` octets are kept; past it the decoder keeps scanning for the end
  (so the session stays in sync) but discards the content and sets ``too_large``.
"""

from __future__ import annotations

import re

_END_AT_START = b".\r\n"
_BARE = re.compile(rb"\r(?!\n)|(?<!\r)\n")


class DataDecoder:
    """Feed the raw bytes received after 354; ``feed`` returns the octets that follow
    the end-of-data marker once it was seen (they belong to the next command).

    Copies: a received chunk is kept as memoryview slices and copied once, when
    ``content()`` joins them; only the few octets left undecided at a chunk's end (a
    CR, or a dot at a line start) are carried over into the next chunk.
    """

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.done = False
        self.too_large = False
        self.size = 0  # octets of content kept or discarded (after unstuffing)
        self.bare_line_ends = 0
        self._parts: list[bytes | memoryview] = []
        self._carry = b""  # undecided octets from the previous chunk (at most 2)
        self._line_start = True

    def content(self) -> bytes:
        """The decoded message (CRLF line ends, unstuffed); empty when too large."""
        return b"".join(self._parts)

    def feed(self, data: bytes) -> bytes:
        """Consume ``data``; return what follows the end marker (``b""`` until done)."""
        if self.done:
            return bytes(data)
        buf = self._carry + data if self._carry else bytes(data)
        self._carry = b""
        pos = 0
        n = len(buf)
        while pos < n:
            if self._line_start:
                if buf[pos] != 0x2E:  # not "."
                    self._line_start = False
                    continue
                if n - pos < 2:
                    break  # need to know what follows the dot
                if buf[pos + 1] == 0x0D:
                    if n - pos < 3:
                        break
                    if buf[pos + 2] == 0x0A:  # "." CRLF after a real CRLF: the end
                        self.done = True
                        return buf[pos + 3:]
                pos += 1  # RFC 5321 §4.5.2: drop the stuffed dot
                self._line_start = False
                continue
            # Inside a line: jump to the next CRLF "." (a dot at a real line start).
            hit = buf.find(b"\r\n.", pos)
            if hit >= 0:
                self._emit(buf, pos, hit + 2)
                pos = hit + 2
                self._line_start = True
                continue
            # No dot line in the buffer: keep a trailing CR undecided.
            if buf.endswith(b"\r\n"):
                self._emit(buf, pos, n)
                pos = n
                self._line_start = True
            elif buf.endswith(b"\r"):
                self._emit(buf, pos, n - 1)
                pos = n - 1
                break
            else:
                self._emit(buf, pos, n)
                pos = n
        self._carry = buf[pos:]
        return b""

    def _emit(self, buf: bytes, start: int, end: int) -> None:
        if end <= start:
            return
        crlf = buf.count(b"\r\n", start, end)
        if buf.count(b"\n", start, end) != crlf or buf.count(b"\r", start, end) != crlf:
            chunk, count = _BARE.subn(b"\r\n", buf[start:end])
            self.bare_line_ends += count
            piece: bytes | memoryview = chunk
        else:
            piece = memoryview(buf)[start:end]
        self.size += len(piece)
        if self.too_large:
            return
        if self.size > self.max_size:
            self.too_large = True
            self._parts.clear()
            return
        self._parts.append(piece)
