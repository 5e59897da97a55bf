"""IMAP command syntax (RFC 3501 §9, RFC 9051 §9): bytes into typed values.

Role: a :class:`Cursor` walks one command as the connection read it - line segments
separated by the literals announced at their ends - and offers the grammar's
primitives (atom, astring, string, nstring, number, sequence set, flag list, date,
parenthesised lists with a depth limit). Command-specific parsing lives with each
command group and is built from these primitives.

Invariants: every malformed input raises :class:`ParseError` with a message fit for a
tagged BAD; nothing here performs I/O; nesting is bounded by ``limits.MAX_DEPTH`` and
lists by ``limits.MAX_ITEMS``.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from protocols.imap import limits, utf7

T = TypeVar("T")
ATOM_SPECIALS = frozenset(b'(){ %*"\\]') | frozenset(range(0, 0x20)) | {0x7F}
_LITERAL_MARK = re.compile(rb"~?\{(\d{1,10})(\+?)\}$")
_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_DATE = re.compile(r"^(\d{1,2})-([A-Za-z]{3})-(\d{4})$")
_DATE_TIME = re.compile(
    r"^([ \d]\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)$")


class ParseError(Exception):
    """The command is syntactically wrong; the message goes into a tagged BAD."""


@dataclass(frozen=True)
class SeqRange:
    """One range of a sequence set; ``None`` stands for ``*``."""

    low: int | None
    high: int | None


@dataclass(frozen=True)
class SequenceSet:
    """A sequence set (RFC 9051 §9 sequence-set) or ``$`` (RFC 5182 saved result)."""

    ranges: tuple[SeqRange, ...]
    saved: bool = False


def literal_mark(line: bytes) -> tuple[int, bool] | None:
    """``(size, non_synchronising)`` when ``line`` (without CRLF) ends with a literal
    announcement ``{n}``, ``{n+}`` (RFC 7888) or ``~{n}`` (RFC 3516), else None."""
    m = _LITERAL_MARK.search(line)
    if m is None:
        return None
    return int(m.group(1)), m.group(2) == b"+"


class Cursor:
    """Reads one command: ``segments`` alternates line text and literal octets
    (``[line0, literal0, line1, ...]``); each line but the last ends with its literal's
    announcement, which the cursor consumes when it reads the literal."""

    def __init__(self, segments: list[bytes]) -> None:
        self.segments = segments
        self.seg = 0
        self.pos = 0
        self.depth = 0

    # -- low level -------------------------------------------------------------------

    @property
    def _line(self) -> bytes:
        return self.segments[self.seg]

    def _literal_here(self) -> bool:
        if self.seg + 1 >= len(self.segments):
            return False
        m = _LITERAL_MARK.search(self._line)
        return m is not None and m.start() == self.pos

    def peek(self) -> int | None:
        """The next octet of the current line, or None at the end of the command."""
        if self.pos < len(self._line):
            return self._line[self.pos]
        return None

    def at_end(self) -> bool:
        return self.pos >= len(self._line) and self.seg + 1 >= len(self.segments)

    def end(self) -> None:
        if not self.at_end():
            raise ParseError("unexpected extra arguments")

    def sp(self) -> None:
        if self.peek() != 0x20:
            raise ParseError("expected a space")
        self.pos += 1

    def maybe_sp(self) -> bool:
        if self.peek() == 0x20:
            self.pos += 1
            return True
        return False

    def expect(self, text: bytes) -> None:
        if self._line[self.pos:self.pos + len(text)].upper() != text.upper():
            raise ParseError(f"expected {text.decode()}")
        self.pos += len(text)

    def accept(self, text: bytes) -> bool:
        if self._line[self.pos:self.pos + len(text)].upper() == text.upper():
            self.pos += len(text)
            return True
        return False

    def _take_literal(self) -> bytes:
        data = self.segments[self.seg + 1]
        self.seg += 2
        self.pos = 0
        return data

    # -- grammar primitives ---------------------------------------------------------

    def atom(self, *, extra: bytes = b"", stop: bytes = b"") -> str:
        """ATOM-CHARs (plus ``extra`` specials allowed in this position, minus the
        ``stop`` octets that end a word here, e.g. ``[`` after ``BODY``)."""
        line = self._line
        start = self.pos
        allowed = frozenset(extra)
        stops = frozenset(stop)
        while self.pos < len(line) and (line[self.pos] not in ATOM_SPECIALS
                                        or line[self.pos] in allowed) \
                and line[self.pos] < 0x80 and line[self.pos] not in stops:
            self.pos += 1
        if self.pos == start:
            raise ParseError("expected an atom")
        return line[start:self.pos].decode("ascii")

    def quoted(self) -> bytes:
        line = self._line
        if self.peek() != 0x22:
            raise ParseError("expected a quoted string")
        out = bytearray()
        i = self.pos + 1
        while i < len(line):
            c = line[i]
            if c == 0x22:
                self.pos = i + 1
                return bytes(out)
            if c == 0x5C:
                i += 1
                if i >= len(line) or line[i] not in (0x22, 0x5C):
                    raise ParseError("bad escape in quoted string")
                c = line[i]
            out.append(c)
            i += 1
        raise ParseError("unterminated quoted string")

    def string(self) -> bytes:
        """A quoted string or a literal."""
        if self.peek() == 0x22:
            return self.quoted()
        if self._literal_here():
            return self._take_literal()
        raise ParseError("expected a string")

    def astring(self) -> bytes:
        c = self.peek()
        if c == 0x22 or self._literal_here():
            return self.string()
        return self.atom(extra=b"]").encode("ascii")

    def nstring(self) -> bytes | None:
        if self.accept(b"NIL"):
            return None
        return self.string()

    def text_astring(self) -> str:
        """An astring as UTF-8 text (RFC 9051 allows UTF-8 in quoted strings)."""
        raw = self.astring()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError("string is not valid UTF-8") from None

    def number(self) -> int:
        line = self._line
        start = self.pos
        while self.pos < len(line) and 0x30 <= line[self.pos] <= 0x39:
            self.pos += 1
        if self.pos == start or self.pos - start > 20:
            raise ParseError("expected a number")
        return int(line[start:self.pos])

    def nz_number(self, *, bits: int = 32) -> int:
        value = self.number()
        if not 0 < value < (1 << bits):
            raise ParseError("number out of range")
        return value

    def mailbox(self, *, utf8: bool = False) -> str:
        """A mailbox name: modified UTF-7 decoded unless UTF8=ACCEPT is on; "INBOX" in
        any case is the Inbox (RFC 9051 §5.1)."""
        raw = self.astring()
        if len(raw) > limits.MAX_MAILBOX_NAME:
            raise ParseError("mailbox name too long")
        try:
            text = raw.decode("utf-8" if utf8 else "ascii")
            name = text if utf8 and not raw.isascii() else utf7.decode(text)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ParseError(f"bad mailbox name: {exc}") from None
        if name.upper() == "INBOX":
            return "INBOX"
        return name

    def sequence_set(self) -> SequenceSet:
        """RFC 9051 §9 sequence-set, or ``$`` (RFC 5182)."""
        if self.accept(b"$"):
            return SequenceSet((), saved=True)
        ranges: list[SeqRange] = []
        while True:
            low = self._seq_number()
            high = low
            if self.accept(b":"):
                high = self._seq_number()
            ranges.append(SeqRange(low, high))
            if len(ranges) > limits.MAX_SEQUENCE_RANGES:
                raise ParseError("sequence set too long")
            if not self.accept(b","):
                return SequenceSet(tuple(ranges))

    def _seq_number(self) -> int | None:
        if self.accept(b"*"):
            return None
        return self.nz_number()

    def flag(self) -> str:
        """A flag (``\\Seen``, a keyword); ``\\*`` only where the caller allows it."""
        if self.accept(b"\\"):
            return "\\" + self.atom()
        return self.atom()

    def flag_list(self, *, allow_bare: bool = False) -> list[str]:
        """``(flag ...)``; STORE also takes flags without parentheses."""
        if self.peek() != 0x28:
            if not allow_bare:
                raise ParseError("expected a flag list")
            flags = [self.flag()]
            while self.maybe_sp():
                flags.append(self.flag())
            return flags
        return self.paren_list(self.flag)

    def paren_list(self, fn: Callable[[], T]) -> list[T]:
        """``(item SP item ...)``, possibly empty, depth- and length-limited."""
        self.expect(b"(")
        self.enter()
        out: list[T] = []
        try:
            if self.accept(b")"):
                return out
            while True:
                out.append(fn())
                if len(out) > limits.MAX_ITEMS:
                    raise ParseError("list too long")
                if self.accept(b")"):
                    return out
                self.sp()
        finally:
            self.leave()

    def enter(self) -> None:
        self.depth += 1
        if self.depth > limits.MAX_DEPTH:
            raise ParseError("lists nested too deeply")

    def leave(self) -> None:
        self.depth -= 1

    def date(self) -> float:
        """RFC 9051 ``date`` (``d-Mon-yyyy``, optionally quoted) as unix time at 00:00
        UTC of that day."""
        raw = (self.quoted() if self.peek() == 0x22 else self.atom().encode()).decode(
            "ascii", "replace")
        m = _DATE.match(raw)
        month = _MONTHS.get(m.group(2).lower()) if m else None
        if m is None or month is None:
            raise ParseError("bad date")
        try:
            return float(calendar.timegm((int(m.group(3)), month, int(m.group(1)), 0, 0, 0)))
        except (ValueError, OverflowError):
            raise ParseError("bad date") from None

    def date_time(self) -> float:
        """RFC 9051 ``date-time`` ``"dd-Mon-yyyy hh:mm:ss +zzzz"`` as unix time."""
        raw = self.quoted().decode("ascii", "replace")
        m = _DATE_TIME.match(raw)
        month = _MONTHS.get(m.group(2).lower()) if m else None
        if m is None or month is None:
            raise ParseError("bad date-time")
        day, year = int(m.group(1)), int(m.group(3))
        hh, mm, ss = int(m.group(4)), int(m.group(5)), int(m.group(6))
        if not (1 <= day <= 31 and hh < 24 and mm < 60 and ss < 61 and year >= 1970):
            raise ParseError("bad date-time")
        offset = (int(m.group(8)) * 60 + int(m.group(9))) * 60
        try:
            ts = calendar.timegm((year, month, day, hh, mm, ss))
        except (ValueError, OverflowError):
            raise ParseError("bad date-time") from None
        return float(ts - offset if m.group(7) == "+" else ts + offset)
