"""What the store computes once per content at delivery (never per fetch).

``analyse(raw)`` normalises line ends to the stored CRLF form, hashes the content and
runs ``gateway.mime.analyse_message`` to get the summary (envelope, body structure,
parts, search fields). It is CPU-bound: callers run it in a thread.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from gateway.mime import analyse_message, normalise_line_endings

MAX_FIELD = 2000  # characters kept of each denormalised search column


@dataclass(frozen=True)
class ContentFacts:
    raw: bytes  # stored form (CRLF)
    sha256: str
    summary_json: str
    subject: str
    from_: str
    to: str
    cc: str
    message_id: str
    date: float | None
    preview: str
    has_attachments: bool


def _clip(value: object) -> str:
    return str(value or "")[:MAX_FIELD]


def analyse(raw: bytes, *, stored_form: bool = False) -> ContentFacts:
    """Normalise, hash and summarise one message (pure; ``analyse_message`` never raises
    on bad input). ``stored_form``: ``raw`` is known to have CRLF-only line ends (the
    check is a full pass over the message; done once, or not at all when vouched for)."""
    stored = bytes(raw) if stored_form else normalise_line_endings(bytes(raw))
    s = analyse_message(stored, stored_form=True)
    return ContentFacts(
        raw=stored, sha256=hashlib.sha256(stored).hexdigest(), summary_json=s.to_json(),
        subject=_clip(s.subject), from_=_clip(s.from_), to=_clip(s.to), cc=_clip(s.cc),
        message_id=_clip(s.message_id),
        date=s.date.timestamp() if s.date is not None else None, preview=_clip(s.preview),
        has_attachments=bool(s.has_attachments))
