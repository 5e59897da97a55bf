"""Server-side IMAP data formatting (RFC 3501 §4, RFC 9051 §4).

Role: turn Python values into IMAP syntax: ``None`` -> NIL, ``int`` -> number, ``str``
and ``bytes`` -> quoted string or literal, ``list``/``tuple`` -> parenthesised list.
Used for ENVELOPE and BODYSTRUCTURE (stored as nested lists by ``gateway.mime``), LIST
names, STATUS and every other response.

Invariants: output is bytes; a string is quoted only when it holds no CR, LF, NUL,
8-bit octet, and is short; otherwise it is sent as a literal ``{n}\\r\\n`` + octets, so
no value can break the response syntax.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

_MAX_QUOTED = 1024
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
           "Dec")


def string(value: str | bytes) -> bytes:
    """An IMAP string: quoted when safe, else a literal."""
    data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    if len(data) <= _MAX_QUOTED and not any(b in data for b in (0, 10, 13)) \
            and max(data, default=0) < 0x80:
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(data) + data


def nstring(value: str | bytes | None) -> bytes:
    return b"NIL" if value is None else string(value)


def astring(value: str) -> bytes:
    """An atom when the value is a plain atom, else a string (mailbox names, LIST)."""
    if value and all(0x21 <= ord(c) <= 0x7E and c not in '(){%*"\\]' for c in value):
        return value.encode("ascii")
    return string(value)


def sexp(value: Any) -> bytes:
    """Serialise nested lists of str/int/None (ENVELOPE, BODYSTRUCTURE)."""
    if value is None:
        return b"NIL"
    if isinstance(value, bool):
        return b"1" if value else b"0"
    if isinstance(value, int):
        return str(value).encode("ascii")
    if isinstance(value, (str, bytes)):
        return string(value)
    if isinstance(value, (list, tuple)):
        return b"(" + b" ".join(sexp(v) for v in value) + b")"
    return string(str(value))


def flag_list(names: Iterable[str]) -> bytes:
    return ("(" + " ".join(names) + ")").encode("utf-8")


def internal_date(ts: float) -> bytes:
    """RFC 3501 date-time ``"dd-Mon-yyyy hh:mm:ss +zzzz"`` in UTC."""
    t = time.gmtime(ts)
    return (f'"{t.tm_mday:02d}-{_MONTHS[t.tm_mon - 1]}-{t.tm_year:04d} '
            f'{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"').encode("ascii")
