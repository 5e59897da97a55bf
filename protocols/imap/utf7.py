"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3).

Role: convert between the wire form of mailbox names (IMAP4rev1 without UTF8=ACCEPT)
and Unicode. Invariants: ``decode(encode(s)) == s`` for every string; ``decode`` refuses
malformed input (``ValueError``) rather than guessing, as RFC 3501 §5.1.3 asks of
servers ("MUST NOT" accept non-canonical forms is left to clients; we reject broken
base64 and unterminated shifts).
"""

from __future__ import annotations

import base64
import binascii


def encode(name: str) -> str:
    """Unicode -> modified UTF-7: printable ASCII as is ("&" as "&-"), runs of other
    characters as "&" + modified base64 of UTF-16BE + "-"."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            data = "".join(run).encode("utf-16-be")
            out.append("&" + base64.b64encode(data).decode("ascii").rstrip("=")
                       .replace("/", ",") + "-")
            run.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)


def decode(name: str) -> str:
    """Modified UTF-7 -> Unicode; ``ValueError`` when malformed."""
    out: list[str] = []
    i = 0
    while i < len(name):
        ch = name[i]
        if not 0x20 <= ord(ch) <= 0x7E:
            raise ValueError("mailbox name holds a character outside printable ASCII")
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = name.find("-", i + 1)
        if end < 0:
            raise ValueError("unterminated '&' shift in mailbox name")
        chunk = name[i + 1:end]
        if not chunk:
            out.append("&")
        else:
            b64 = chunk.replace(",", "/")
            b64 += "=" * (-len(b64) % 4)
            try:
                data = base64.b64decode(b64, validate=True)
                text = data.decode("utf-16-be")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise ValueError("bad modified base64 in mailbox name") from None
            if not text or any(0x20 <= ord(c) <= 0x7E for c in text):
                raise ValueError("non-canonical modified UTF-7 in mailbox name")
            out.append(text)
        i = end + 1
    return "".join(out)
