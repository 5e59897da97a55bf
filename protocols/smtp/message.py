"""Header work at end of data (pure): hop count, the header firewall, Message-ID,
the Received trace field.

Role: look only at the header section (up to the first empty line, RFC 5322 §2.1), so
the cost does not grow with the body. Invariants: the body bytes are never copied or
changed here; every value written into a header is folded-free and CR/LF-free.
"""

from __future__ import annotations

import functools
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

MAX_HEADER_SCAN = 1024 * 1024  # octets of header section examined (Exchange: 256 KB)

_FIELD_START = re.compile(rb"(?m)^([!-9;-~]+)[ \t]*:")


@dataclass(frozen=True)
class HeaderFacts:
    header_end: int  # offset of the first body octet (after the empty line), or len
    received_count: int
    message_id: str | None  # the Message-ID field's value, unfolded and stripped
    subject: str


def split_header(content: bytes) -> int:
    """Offset just past the header section's terminating empty line."""
    if content.startswith(b"\r\n"):
        return 2
    end = content.find(b"\r\n\r\n", 0, MAX_HEADER_SCAN)
    return len(content) if end < 0 else end + 4


def _fields(header: bytes) -> list[tuple[bytes, int, int]]:
    """(lower-case name, start, end) of every header field, folded lines included."""
    starts = [(m.group(1).lower(), m.start()) for m in _FIELD_START.finditer(header)]
    out = []
    for i, (name, start) in enumerate(starts):
        end = starts[i + 1][1] if i + 1 < len(starts) else len(header)
        out.append((name, start, end))
    return out


def _value(header: bytes, start: int, end: int) -> str:
    raw = header[start:end]
    value = raw.split(b":", 1)[1] if b":" in raw else b""
    return " ".join(value.decode("utf-8", "replace").split())


def analyse_header(content: bytes) -> HeaderFacts:
    end = split_header(content)
    header = content[:end]
    received = 0
    message_id: str | None = None
    subject = ""
    for name, start, stop in _fields(header):
        if name == b"received":
            received += 1
        elif name == b"message-id" and message_id is None:
            message_id = _value(header, start, stop) or None
        elif name == b"subject" and not subject:
            subject = _value(header, start, stop)[:255]
    return HeaderFacts(end, received, message_id, subject)


def strip_fields(content: bytes, header_end: int, prefixes: frozenset[str]) -> bytes:
    """Remove header fields whose lower-case name starts with one of ``prefixes``
    (the header firewall, reference §3.2). Returns ``content`` itself when nothing
    matches (the common case costs one scan of the header)."""
    if not prefixes:
        return content
    header = content[:header_end]
    lowered = header.lower()
    if not any(p.encode() in lowered for p in prefixes):
        return content
    keep = bytearray()
    last = 0
    for name, start, stop in _fields(header):
        if any(name.startswith(p.encode()) for p in prefixes):
            keep += header[last:start]
            last = stop
    keep += header[last:]
    return bytes(keep) + content[header_end:]


def new_message_id(fqdn: str) -> str:
    return f"<{secrets.token_hex(16)}@{_clean(fqdn)}>"


def _clean(text: str) -> str:
    """A token for a header field: printable ASCII without white space or comments."""
    return "".join(c if 32 < ord(c) < 127 and c not in "()\\" else "?" for c in text)[:255]


def _comment(text: str) -> str:
    """Text for inside a header comment (RFC 5322 §3.2.2): no parentheses or CR/LF."""
    return "".join(c if 32 <= ord(c) < 127 and c not in "()\\" else "?"
                   for c in text)[:255]


@functools.lru_cache(maxsize=2)
def _date_of_second(second: int) -> str:
    return format_datetime(datetime.fromtimestamp(second, UTC))


def _date_now() -> str:
    """RFC 5322 date-time of the current second (formatted once per second: at a
    thousand messages a second, formatting was a visible share of end of data)."""
    return _date_of_second(int(time.time()))


def received_field(*, helo: str, remote_ip: str, fqdn: str, connector: str, esmtp: bool,
                   tls: str | None, authenticated: str | None, queue_id: str,
                   recipient: str | None = None, now: datetime | None = None) -> bytes:
    """The trace field (RFC 5321 §4.4) with RFC 3848 ``with`` types (ESMTP, ESMTPS,
    ESMTPA, ESMTPSA), the connector, the TLS version and cipher, and the authenticated
    identity."""
    protocol = "ESMTP" if esmtp else "SMTP"
    if esmtp:
        protocol += ("S" if tls else "") + ("A" if authenticated else "")
    when = format_datetime(now) if now is not None else _date_now()
    parts = [f"Received: from {_clean(helo) or 'unknown'} ([{_clean(remote_ip)}])",
             f" by {_clean(fqdn)} (receive connector {_comment(connector)})",
             f" with {protocol}"]
    if tls:
        parts.append(f" ({_comment(tls)})")
    if authenticated:
        parts.append(f" (authenticated as {_clean(authenticated)})")
    parts.append(f" id {queue_id}")
    if recipient:
        parts.append(f" for <{_clean(recipient)}>")
    parts.append(f"; {when}")
    # Fold before "by", "with" and "id" (RFC 5322 §2.2.3) to keep lines short.
    return ("\r\n".join(_fold(parts)) + "\r\n").encode("utf-8")


def _fold(parts: list[str]) -> list[str]:
    lines: list[str] = []
    for part in parts:
        if lines and len(lines[-1]) + len(part) <= 76:
            lines[-1] += part
        else:
            lines.append(part if not lines else "\t" + part.lstrip())
    return lines
