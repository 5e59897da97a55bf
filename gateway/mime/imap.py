"""IMAP ENVELOPE and BODYSTRUCTURE from the scanned structure (RFC 3501 §7.4.2,
RFC 9051 §7.5.2).

Role: build both as nested Python lists (``str`` = IMAP string, ``int`` = number,
``None`` = NIL, ``list`` = parenthesised list) for the IMAP layer to serialise as is.

Invariants, chosen to match Dovecot (the reference peer) byte for byte where RFC 3501
leaves room:
- type, subtype, parameter names and values, transfer encoding and disposition keep the
  case in which they were written; defaults are lower-case ("text" "plain"
  ("charset" "us-ascii"), "7bit").
- A text/* part without a charset parameter gets ``"charset" "us-ascii"`` appended.
- RFC 2231 parameters: continuations are joined; an extended (``*``) value is kept
  encoded under ``name*`` for the client to decode (as Dovecot).
- A multipart with no parts gets one empty text/plain part (the grammar needs one).
- Encoded words stay as written; Subject and display names have white space runs
  collapsed to one space and are trimmed, other envelope strings are only unfolded.
- Sender and Reply-To default to From (RFC 3501 §7.4.2).
- Parts made opaque by a limit are ``"application" "octet-stream"``.
Never raises.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.mime.addresses import Address, parse_addresses
from gateway.mime.headers import (
    mechanism_token,
    parse_disposition,
    parse_language,
    to_text,
    unfold,
)
from gateway.mime.structure import Node

_WS_RUN = re.compile(r"[ \t\r\n]+")

# Dovecot's EMPTY_BODYSTRUCTURE for a multipart without parts, with extension data.
EMPTY_PART: list[Any] = [
    "text",
    "plain",
    ["charset", "us-ascii"],
    None,
    None,
    "7bit",
    0,
    0,
    None,
    None,
    None,
    None,
]


def for_humans(text: str) -> str:
    """Collapse runs of white space to one space and trim (Dovecot's
    imap_append_string_for_humans, used for Subject and display names)."""
    return _WS_RUN.sub(" ", text).strip(" ")


def field_text(node: Node, name: str) -> str | None:
    """Unfolded text of the first ``name`` field, or None when absent."""
    raw = node.fields.get(name)
    if raw is None:
        return None
    return to_text(unfold(raw))


def address_field(node: Node, name: str) -> list[Address] | None:
    value = field_text(node, name)
    if value is None:
        return None
    addresses = parse_addresses(value)
    for address in addresses:
        if address[0] is not None:
            address[0] = for_humans(address[0]) if address[0].strip() else None
    return addresses or None


def envelope(node: Node) -> list[Any]:
    """ENVELOPE of the message whose header is ``node``'s (RFC 3501 §7.4.2)."""
    subject = field_text(node, "subject")
    from_ = address_field(node, "from")
    sender = address_field(node, "sender") or from_
    reply_to = address_field(node, "reply-to") or from_
    return [
        field_text(node, "date"),
        for_humans(subject) if subject is not None else None,
        from_,
        sender,
        reply_to,
        address_field(node, "to"),
        address_field(node, "cc"),
        address_field(node, "bcc"),
        field_text(node, "in-reply-to"),
        field_text(node, "message-id"),
    ]


def param_list(params: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Parameters as BODYSTRUCTURE shows them: plain ones in order (duplicates kept),
    then RFC 2231 ones (continuations joined, ``name*`` when the first section is
    extended) sorted by name; sections not reachable from ``*0`` as written.
    """
    plain: list[tuple[str, str]] = []
    sections: dict[str, dict[int, tuple[str, bool, str]]] = {}
    for name, value in params:
        star = name.find("*")
        if star < 0:
            plain.append((name, value))  # duplicates too, as written (as Dovecot)
            continue
        base = name[:star]
        rest = name[star + 1 :]
        extended = rest.endswith("*") or rest == ""
        number = rest.rstrip("*")
        if number and not (number.isdigit() and len(number) < 4):
            continue
        index = int(number) if number else 0
        sections.setdefault(base.lower(), {}).setdefault(index, (base, extended, value))
    for key in sorted(sections):
        parts = sections[key]
        index = 0
        if 0 in parts:
            base, extended, _ = parts[0]
            values: list[str] = []
            while index in parts:
                values.append(parts[index][2])
                index += 1
            plain.append((base + ("*" if extended else ""), "".join(values)))
        # Sections not reachable from *0 are shown as written (as Dovecot does).
        for section in sorted(k for k in parts if k >= index):
            base, extended, value = parts[section]
            plain.append((f"{base}*{section}" + ("*" if extended else ""), value))
    return plain


def _flat(params: list[tuple[str, str]]) -> list[str] | None:
    if not params:
        return None
    flat: list[str] = []
    for name, value in params:
        flat += [name, value]
    return flat


def _extension(node: Node) -> list[Any]:
    """body-ext-1part after MD5 / body-ext-mpart after params: disposition, language,
    location (RFC 3501 §7.4.2)."""
    disposition: list[Any] | None = None
    language: list[str] | None = None
    location: str | None = None
    if node.mime:
        raw = field_text(node, "content-disposition")
        parsed = parse_disposition(raw) if raw is not None else None
        if parsed is not None:
            disposition = [parsed[0], _flat(param_list(parsed[1]))]
        raw = field_text(node, "content-language")
        if raw is not None:
            language = parse_language(raw) or None
        location = field_text(node, "content-location")
    return [disposition, language, location]


def _mime_field(node: Node, name: str) -> str | None:
    """A Content-* field of a MIME entity as written (unfolded; Dovecot keeps even
    trailing white space), None when absent or when the entity is not MIME."""
    return field_text(node, name) if node.mime else None


def transfer_encoding(node: Node) -> str:
    """Content-Transfer-Encoding (RFC 2045 §6.1) as written: one token; absent, empty or
    followed by junk means the default "7bit" (as Dovecot)."""
    value = _mime_field(node, "content-transfer-encoding")
    if not value:
        return "7bit"
    token, rest = mechanism_token(value)
    return token if token and not rest else "7bit"


def body_lines(data: bytes, node: Node) -> int:
    """Lines of ``node``'s body (BODYSTRUCTURE's body-fld-lines, RFC 3501 §7.4.2),
    counted once per node: the part table and BODYSTRUCTURE both need it, and counting
    is a pass over the body."""
    if node.lines is None:
        node.lines = data.count(b"\n", node.header_end, node.body_end)
    return node.lines


def bodystructure(data: bytes, node: Node) -> list[Any]:
    """Extensible BODYSTRUCTURE of ``node`` (RFC 3501 §7.4.2 body)."""
    if node.kind == "multipart":
        children = [bodystructure(data, child) for child in node.children]
        if not children:
            children = [list(EMPTY_PART)]
        return [*children, node.csubtype, _flat(param_list(node.params)), *_extension(node)]
    if node.opaque:
        ctype, csubtype, params = "application", "octet-stream", []
    elif node.kind == "message":
        # Dovecot writes the type of a parsed message part in lower case.
        ctype, csubtype, params = "message", "rfc822", param_list(node.params)
    else:
        ctype, csubtype, params = node.ctype, node.csubtype, param_list(node.params)
    if ctype.lower() == "text" and not any(name.lower() == "charset" for name, _ in params):
        params = [*params, ("charset", "us-ascii")]
    size = node.body_end - node.header_end
    body: list[Any] = [
        ctype,
        csubtype,
        _flat(params),
        _mime_field(node, "content-id"),
        _mime_field(node, "content-description"),
        transfer_encoding(node),
        size,
    ]
    if node.kind == "message" and node.message is not None:
        body += [envelope(node.message), bodystructure(data, node.message), body_lines(data, node)]
    elif ctype.lower() == "text":
        body.append(body_lines(data, node))
    body.append(_mime_field(node, "content-md5"))
    return body + _extension(node)
