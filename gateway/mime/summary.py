"""The analysis result stored with each message: :class:`MessageSummary`, :class:`PartInfo`.

Role: what IMAP, POP3, ActiveSync and web mail need about a message, computed once at
delivery (docs/message-analysis.md) and stored as JSON.

Invariants: frozen; ``MessageSummary.from_json(s.to_json()) == s``; every offset is a
byte offset into the stored (CRLF-normalised) message and ``0 <= start <= end <= size``.
``envelope`` and ``bodystructure`` are nested lists of ``str`` (an IMAP string), ``int``
(an IMAP number), ``None`` (NIL) and lists (parenthesised lists), in RFC 3501 §7.4.2
order, ready for the IMAP layer to serialise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

JSON_VERSION = 1


@dataclass(frozen=True)
class PartInfo:
    """One addressable MIME part (RFC 3501 §6.4.5 part specifier ``number``).

    ``number`` is "1", "1.2", ... The message itself is not listed when it is a
    multipart (BODY[HEADER] / BODY[TEXT] address it); a non-multipart message lists its
    body as part "1", whose "MIME header" is the message header.
    For message/rfc822 parts ``[body_start, message_text_start)`` is the encapsulated
    header (``<n>.HEADER``) and ``[message_text_start, message_text_end)`` its body
    (``<n>.TEXT``); both are None for other parts. ``message_text_end`` equals
    ``body_end`` except in one Dovecot edge case (see docs/message-analysis.md).
    """

    number: str
    content_type: str  # lower-case "type/subtype"
    params: dict[str, str]  # lower-case names, RFC 2231 decoded
    encoding: str  # lower-case Content-Transfer-Encoding, "7bit" when absent
    header_start: int
    header_end: int
    body_start: int
    body_end: int
    lines: int  # line count of the body (LF count, as Dovecot counts)
    disposition: str | None = None  # lower-case disposition type
    filename: str | None = None  # decoded (disposition filename, else Content-Type name)
    content_id: str | None = None
    message_text_start: int | None = None
    message_text_end: int | None = None
    is_multipart: bool = False

    @property
    def body_size(self) -> int:
        return self.body_end - self.body_start


@dataclass(frozen=True)
class MessageSummary:
    """Everything computed about one message at delivery."""

    size: int
    header_size: int
    body_offset: int
    envelope: list[Any]
    bodystructure: list[Any]
    parts: list[PartInfo]
    subject: str = ""
    from_: str = ""
    to: str = ""
    cc: str = ""
    bcc: str = ""
    message_id: str = ""
    in_reply_to: str = ""
    references: str = ""
    date: datetime | None = None
    preview: str = ""
    has_attachments: bool = False
    _index: dict[str, PartInfo] = field(default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {part.number: part for part in self.parts})

    # -- section addressing (RFC 3501 §6.4.5) ---------------------------------------------

    def part(self, number: str) -> PartInfo | None:
        """The part with IMAP part number ``number`` ("1", "2.1"), or None."""
        return self._index.get(number)

    def section_range(self, section: str) -> tuple[int, int] | None:
        """Byte range of a FETCH BODY[section] / BINARY[section] (before decoding).

        ``section`` is the text inside the brackets without the field list: "",
        "HEADER", "TEXT", "HEADER.FIELDS" (the header range, to be filtered by the
        caller), "1.2", "1.2.MIME", "3.HEADER", "3.TEXT". None when the section does not
        exist (the IMAP layer returns an empty string or NIL as RFC 9051 §6.4.5 says).
        """
        bits = section.upper().split(".")
        count = 0
        while count < len(bits) and bits[count].isdigit():
            count += 1
        number = ".".join(bits[:count])
        text = ".".join(bits[count:])
        if number == "":
            if text == "":
                return (0, self.size)
            if text.startswith("HEADER"):
                return (0, self.header_size)
            if text == "TEXT":
                return (self.body_offset, self.size)
            return None
        part = self._index.get(number)
        if part is None:
            return None
        if text == "":
            return (part.body_start, part.body_end)
        if text == "MIME":
            return (part.header_start, part.header_end)
        if part.message_text_start is None or part.message_text_end is None:
            return None
        if text.startswith("HEADER"):
            return (part.body_start, part.message_text_start)
        if text == "TEXT":
            return (part.message_text_start, part.message_text_end)
        return None

    # -- JSON ---------------------------------------------------------------------------

    def to_json(self) -> str:
        """Compact JSON text; see :meth:`from_json`."""
        # Field by field, without dataclasses.asdict: its deep copy was a third of the
        # cost of summarising a small message at delivery.
        data: dict[str, Any] = {name: getattr(self, name) for name in _SUMMARY_FIELDS}
        data["parts"] = [{name: getattr(part, name) for name in _PART_FIELDS}
                         for part in self.parts]
        data["date"] = self.date.isoformat() if self.date is not None else None
        data["v"] = JSON_VERSION
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> MessageSummary:
        """Rebuild a summary stored by :meth:`to_json` (raises ValueError if malformed)."""
        try:
            data = json.loads(text)
            data.pop("v", None)
            data["parts"] = [PartInfo(**p) for p in data["parts"]]
            if data.get("date") is not None:
                data["date"] = datetime.fromisoformat(data["date"])
            return cls(**data)
        except (TypeError, KeyError, AttributeError) as exc:
            raise ValueError(f"not a stored message summary: {exc}") from exc


_PART_FIELDS = tuple(f.name for f in fields(PartInfo))
_SUMMARY_FIELDS = tuple(f.name for f in fields(MessageSummary) if f.name != "_index")
