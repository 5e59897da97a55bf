"""Line-end normalisation of messages to their stored form.

Role: every message is stored with CRLF line ends (RFC 5322 §2.1, RFC 3501 §2.3.1.1
sizes count CRLF as two octets), so that offsets computed by :mod:`gateway.mime.parse`
slice the stored bytes directly and RFC822.SIZE is the stored length.

Invariant: ``normalise_line_endings(x)`` contains no bare CR and no bare LF, and is
idempotent; a message already in CRLF form is returned unchanged (same object).
"""

from __future__ import annotations


def normalise_line_endings(raw: bytes) -> bytes:
    """Turn bare LF and bare CR into CRLF; keep existing CRLF pairs.

    Linear in ``len(raw)``. ``b"a\\r\\r\\nb"`` becomes ``b"a\\r\\n\\r\\nb"`` (the lone CR
    is a line end of its own, as in Dovecot's and Python's readers).
    """
    crlf = raw.count(b"\r\n")
    if crlf == raw.count(b"\n") and crlf == raw.count(b"\r"):
        return raw
    # Every line end (CRLF, CR, LF) becomes one LF, then each LF becomes CRLF: three
    # C-speed passes instead of a regex substitution per line.
    return raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
