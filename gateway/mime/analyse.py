"""Message analysis at delivery: :func:`analyse_message` (docs/message-analysis.md).

Role: compose the structure scan, IMAP ENVELOPE/BODYSTRUCTURE, part table and the
decoded display fields into one :class:`~gateway.mime.summary.MessageSummary`.

Invariants: pure and total: any ``bytes`` give a summary, never an exception (should
a defect raise anyway, it is logged and a minimal one-part summary is returned, so
delivery never fails); offsets refer to ``normalise_line_endings(raw)``, which is
``raw`` itself for a message already in stored form; work is linear in the message
size.
"""

from __future__ import annotations

import email.utils
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

from gateway.mime import limits
from gateway.mime.addresses import Address, display_addresses, parse_addresses
from gateway.mime.headers import merge_rfc2231, parse_disposition, unfold
from gateway.mime.imap import (
    body_lines,
    bodystructure,
    envelope,
    for_humans,
    transfer_encoding,
)
from gateway.mime.lineends import normalise_line_endings
from gateway.mime.preview import preview_text
from gateway.mime.structure import Node, scan
from gateway.mime.summary import MessageSummary, PartInfo
from gateway.mime.words import decode_words

log = logging.getLogger(__name__)

_SIGNATURE_TYPES = frozenset(
    {"application/pgp-signature", "application/pkcs7-signature", "application/x-pkcs7-signature"}
)


def _display_raw(node: Node, name: str) -> str | None:
    """A header for display: UTF-8 if valid, else Windows-1252 (the usual 8-bit
    legacy), unfolded; None when absent."""
    raw = node.fields.get(name)
    if raw is None:
        return None
    value = unfold(raw)
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = value.decode("cp1252", "replace")
    return text.replace("\x00", "\ufffd")


def _display(node: Node, name: str) -> str:
    value = _display_raw(node, name)
    return for_humans(decode_words(value)) if value else ""


def _display_addresses(node: Node, name: str, parsed: list[Address] | None) -> str:
    """Decoded address list for display; reuses the ENVELOPE parse ``parsed`` when the
    field is valid UTF-8 (then both parses would see the same text)."""
    value = _display_raw(node, name)
    if not value:
        return ""
    if parsed is None or "\ufffd" in value or not _is_utf8(node.fields.get(name, b"")):
        parsed = parse_addresses(value)
        for address in parsed:
            if address[0] is not None:
                address[0] = for_humans(address[0])
    return for_humans(display_addresses(parsed) if parsed else decode_words(value))


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _date(node: Node) -> datetime | None:
    value = _display_raw(node, "date")
    if not value or len(value) > 200:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _number(node: Node, number: str, data: bytes, out: list[PartInfo]) -> None:
    """Register ``node`` as part ``number`` and number what is inside it
    (RFC 3501 §6.4.5)."""
    if len(out) >= limits.MAX_PARTS:
        return
    out.append(_part_info(node, number, data))
    if node.kind == "multipart":
        for index, child in enumerate(node.children, 1):
            _number(child, f"{number}.{index}", data, out)
    elif node.kind == "message" and node.message is not None:
        inner = node.message
        if inner.kind == "multipart":
            for index, child in enumerate(inner.children, 1):
                _number(child, f"{number}.{index}", data, out)
        else:
            _number(inner, f"{number}.1", data, out)


def _disposition(node: Node) -> tuple[str | None, dict[str, str]]:
    raw = _display_raw(node, "content-disposition") if node.mime else None
    parsed = parse_disposition(raw) if raw else None
    if parsed is None:
        return None, {}
    return parsed[0].lower(), merge_rfc2231(parsed[1])


def _part_info(node: Node, number: str, data: bytes) -> PartInfo:
    params = merge_rfc2231(node.params)
    disposition, disp_params = _disposition(node)
    filename = disp_params.get("filename") or params.get("name")
    content_id = _display_raw(node, "content-id") if node.mime else None
    inner = node.message if node.kind == "message" else None
    return PartInfo(
        number=number,
        content_type="application/octet-stream" if node.opaque else node.full_type,
        params=params,
        encoding=transfer_encoding(node).lower(),
        header_start=node.header_start,
        header_end=node.header_end,
        body_start=node.header_end,
        body_end=node.body_end,
        lines=body_lines(data, node),
        disposition=disposition,
        filename=for_humans(decode_words(filename)) if filename else None,
        content_id=content_id.strip() if content_id else None,
        message_text_start=inner.header_end if inner is not None else None,
        message_text_end=inner.body_end if inner is not None else None,
        is_multipart=node.kind == "multipart",
    )


def _leaves(node: Node, parent: Node | None = None) -> Iterator[tuple[Node, Node | None]]:
    """Leaf parts of this message in order, not descending into attached messages."""
    if node.kind == "multipart":
        for child in node.children:
            yield from _leaves(child, node)
    else:
        yield node, parent


def _has_attachments(root: Node) -> bool:
    """An attachment: a part with disposition "attachment", an attached message, or a
    named part (file name) that is not inline and not inside multipart/related."""
    for node, parent in _leaves(root):
        if node.kind == "message" or node.opaque:
            return True
        if (
            parent is not None
            and parent.full_type == "multipart/signed"
            and (node.full_type in _SIGNATURE_TYPES)
        ):
            continue  # RFC 1847 §2.1: the signature of a signed message
        disposition, disp_params = _disposition(node)
        if disposition == "attachment":
            return True
        named = disp_params.get("filename") or merge_rfc2231(node.params).get("name")
        related = parent is not None and parent.full_type == "multipart/related"
        if named and disposition != "inline" and not related:
            return True
    return False


def _preview(data: bytes, root: Node) -> str:
    html: Node | None = None
    for node, _parent in _leaves(root):
        if node.kind != "leaf" or node.opaque:
            continue
        disposition, _ = _disposition(node)
        if disposition == "attachment":
            continue
        full_type = node.full_type
        if full_type == "text/plain":
            return preview_text(data, node, html=False)
        if full_type == "text/html" and html is None:
            html = node
    return preview_text(data, html, html=True) if html is not None else ""


def _analyse(data: bytes) -> MessageSummary:
    root = scan(data)
    parts: list[PartInfo] = []
    if root.kind == "multipart":
        for index, child in enumerate(root.children, 1):
            _number(child, str(index), data, parts)
    else:
        _number(root, "1", data, parts)
    env = envelope(root)
    return MessageSummary(
        size=len(data),
        header_size=root.header_end,
        body_offset=root.header_end,
        envelope=env,
        bodystructure=bodystructure(data, root),
        parts=parts,
        subject=_display(root, "subject"),
        # RFC 3501 §7.4.2 ENVELOPE order: date subject from sender reply-to to cc bcc.
        from_=_display_addresses(root, "from", env[2]),
        to=_display_addresses(root, "to", env[5]),
        cc=_display_addresses(root, "cc", env[6]),
        bcc=_display_addresses(root, "bcc", env[7]),
        message_id=_display(root, "message-id"),
        in_reply_to=_display(root, "in-reply-to"),
        references=_display(root, "references"),
        date=_date(root),
        preview=_preview(data, root),
        has_attachments=_has_attachments(root),
    )


def _fallback(data: bytes) -> MessageSummary:
    """The summary of last resort: the whole body as one text/plain part."""
    blank = data.find(b"\r\n\r\n")
    header_end = len(data) if blank < 0 else blank + 4
    if data.startswith(b"\r\n"):
        header_end = 2
    size = len(data) - header_end
    lines = data.count(b"\n", header_end)
    part = PartInfo(
        "1",
        "text/plain",
        {"charset": "us-ascii"},
        "7bit",
        0,
        header_end,
        header_end,
        len(data),
        lines,
    )
    return MessageSummary(
        size=len(data),
        header_size=header_end,
        body_offset=header_end,
        envelope=[None] * 10,
        bodystructure=[
            "text",
            "plain",
            ["charset", "us-ascii"],
            None,
            None,
            "7bit",
            size,
            lines,
            None,
            None,
            None,
            None,
        ],
        parts=[part],
    )


def analyse_message(raw: bytes, *, stored_form: bool = False) -> MessageSummary:
    """Analyse one message (RFC 5322 / MIME) for storage; never raises on bad input.

    Offsets in the result refer to ``normalise_line_endings(raw)``; the store keeps
    that form. ``stored_form=True``: the caller has already normalised ``raw`` (the
    check is a pass over the message, not worth doing twice). Should a defect in this
    package raise anyway, the error is logged and a minimal summary (one text/plain
    body) is returned so that delivery never fails.
    """
    data = bytes(raw) if stored_form else normalise_line_endings(bytes(raw))
    try:
        return _analyse(data)
    except Exception:  # defence in depth: delivery must not fail on our bug
        log.exception("message analysis failed; storing a minimal summary")
        return _fallback(data)
