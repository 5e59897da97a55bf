"""Message analysis computed once at delivery (docs/message-analysis.md).

Public API (docs/dev/interfaces.md, "Message analysis"):

- :func:`analyse_message` ``(raw: bytes) -> MessageSummary``: pure, never raises.
- :func:`normalise_line_endings` ``(raw: bytes) -> bytes``: the stored CRLF form.
- :class:`MessageSummary`, :class:`PartInfo`: the result, JSON round-trippable.
"""

from gateway.mime.analyse import analyse_message
from gateway.mime.lineends import normalise_line_endings
from gateway.mime.summary import MessageSummary, PartInfo

__all__ = ["MessageSummary", "PartInfo", "analyse_message", "normalise_line_endings"]
