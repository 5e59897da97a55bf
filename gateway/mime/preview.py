"""The preview text: the start of a message's text body, decoded, white space collapsed.

Role: ActiveSync and web mail show it in message lists without fetching the body.

Invariants: reads at most ``limits.PREVIEW_SCAN`` body bytes; returns at most
``limits.PREVIEW_CHARS`` characters; never raises.
"""

from __future__ import annotations

import base64
import binascii
import html as html_lib
import quopri
import re

from gateway.mime import limits
from gateway.mime.headers import merge_rfc2231
from gateway.mime.imap import transfer_encoding
from gateway.mime.structure import Node
from gateway.mime.words import decode_charset

_HTML_SKIP = re.compile(r"<(script|style|head|title)\b.*?(</\1\s*>|$)", re.I | re.S)
_HTML_TAG = re.compile(r"<[^>]*>?", re.S)
_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")
_FIRST_PREFIX = 512  # characters collapsed first; grows fourfold while too short
_CUT_MARGIN = 64  # characters beyond PREVIEW_CHARS that a prefix must yield


def _decode_body(chunk: bytes, encoding: str) -> bytes:
    """RFC 2045 §6 transfer decoding of a body prefix (tolerant of a cut end)."""
    if encoding == "base64":
        clean = _B64_JUNK.sub(b"", chunk)  # drops line breaks and "=" padding
        if len(clean) % 4 == 1:
            clean = clean[:-1]  # a cut prefix: that sextet carries no whole octet
        clean += b"=" * (-len(clean) % 4)
        try:
            return base64.b64decode(clean)
        except (binascii.Error, ValueError):
            return b""
    if encoding == "quoted-printable":
        return quopri.decodestring(chunk)
    return chunk


def preview_text(data: bytes, node: Node, *, html: bool) -> str:
    """Preview of the text part ``node`` (HTML tags stripped when ``html``)."""
    chunk = data[node.header_end : min(node.body_end, node.header_end + limits.PREVIEW_SCAN)]
    body = _decode_body(chunk, transfer_encoding(node).strip().lower())
    charset = merge_rfc2231(node.params).get("charset", "utf-8")
    text = decode_charset(body, charset)
    # Collapse a growing prefix until it yields enough characters: most bodies need
    # only their first kilobyte, and the substitutions cost per match over what they
    # are given. A prefix's result equals the whole text's result up to the cut, and
    # the margin keeps a cut-off entity or tag at the cut out of the characters kept.
    wanted = limits.PREVIEW_CHARS + _CUT_MARGIN
    size = _FIRST_PREFIX
    while True:
        preview = _collapse(text[:size], html=html)
        if len(preview) >= wanted or size >= len(text):
            break
        size *= 4
    if len(preview) > limits.PREVIEW_CHARS:
        preview = preview[: limits.PREVIEW_CHARS].rstrip()
    return preview


def _collapse(text: str, *, html: bool) -> str:
    if html:
        text = _HTML_SKIP.sub(" ", text)
        text = html_lib.unescape(_HTML_TAG.sub(" ", text))
    return " ".join(text.split())  # white space runs -> one space, trimmed
