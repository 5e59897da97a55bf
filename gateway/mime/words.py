"""RFC 2047 encoded-word decoding and charset conversion for display fields.

Role: the decoded, Unicode forms of headers (subject, address names, file names) that
search, ActiveSync and web mail show. IMAP ENVELOPE keeps encoded words as written; only
the display fields go through here.

Invariants: never raises; unknown or non-text charsets fall back to UTF-8 with
replacement characters; linear in the input.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re

_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,64})\?([bBqQ])\?([^?\s]*)\?=")
_BETWEEN_WORDS = re.compile(r"[ \t\r\n]*")
_Q_HEX = re.compile(rb"=([0-9A-Fa-f]{2})")


def decode_charset(data: bytes, charset: str) -> str:
    """Decode ``data`` from a MIME charset name; fall back to UTF-8 on anything odd."""
    name = charset.strip().strip('"').lower()
    if name in ("", "us-ascii", "ascii", "unknown-8bit", "x-unknown", "default"):
        name = "utf-8"
    try:
        info = codecs.lookup(name)
        if not getattr(info, "_is_text_encoding", True):
            info = codecs.lookup("utf-8")
        text = data.decode(info.name, "replace")
    except (LookupError, ValueError, TypeError):
        text = data.decode("utf-8", "replace")
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    return text


def _word_bytes(encoding: str, text: str) -> bytes | None:
    raw = text.encode("ascii", "replace")
    if encoding in "bB":
        raw = raw.rstrip(b"=")
        raw += b"=" * (-len(raw) % 4)
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return None
    raw = raw.replace(b"_", b" ")
    return _Q_HEX.sub(lambda m: bytes([int(m.group(1), 16)]), raw)


def decode_words(text: str) -> str:
    """Decode RFC 2047 encoded words in an unfolded header value.

    White space between two adjacent encoded words is dropped (RFC 2047 §6.2); adjacent
    words in the same charset are joined before decoding so a character split across
    words survives. Malformed words stay as written.
    """
    if "=?" not in text:
        return text
    out: list[str] = []
    pos = 0
    pending: list[bytes] = []
    pending_charset = ""
    last_end = -1

    def flush() -> None:
        if pending:
            out.append(decode_charset(b"".join(pending), pending_charset))
            pending.clear()

    for match in _ENCODED_WORD.finditer(text):
        gap = text[pos : match.start()]
        data = _word_bytes(match.group(2), match.group(3))
        if data is None:
            continue
        charset = match.group(1).split("*", 1)[0]
        adjacent = pos == last_end and _BETWEEN_WORDS.fullmatch(gap)
        if not adjacent:
            flush()
            out.append(gap)
        elif charset.lower() != pending_charset.lower():
            flush()
        pending_charset = charset
        pending.append(data)
        pos = last_end = match.end()
    flush()
    out.append(text[pos:])
    return "".join(out)
