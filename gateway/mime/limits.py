"""Explicit limits of message analysis.

Role: one place for every bound that keeps :func:`gateway.mime.analyse_message` linear
in the message size and its output bounded, whatever the input. Exceeding a limit never
fails the analysis: the offending part is treated as described next to each constant
(and in docs/message-analysis.md).
"""

from __future__ import annotations

# MIME nesting (multipart and message/rfc822 levels). A multipart or message part
# deeper than this is an opaque leaf (application/octet-stream in BODYSTRUCTURE); its
# bytes stay addressable as one part. Dovecot's default limit is 100.
MAX_DEPTH = 32

# Parts listed per message. Once reached, further body parts of a multipart are not
# listed; their bytes stay inside the parent's body. Dovecot's default is 10000.
MAX_PARTS = 5000

# Boundary parameter length. RFC 2046 §5.1.1 allows 70 characters; longer (up to this)
# is tolerated as Dovecot does; a multipart with a longer or empty boundary has no parts.
MAX_BOUNDARY = 200

# Header bytes of one part examined for fields. Fields beyond are ignored for analysis;
# offsets are unaffected.
MAX_HEADER_SCAN = 256 * 1024

# Bytes of one header field value used for analysis (longer values are cut).
MAX_FIELD_VALUE = 64 * 1024

# Addresses taken from one address header field (ENVELOPE and display fields).
MAX_ADDRESSES = 1000

# MIME parameters kept per header field (Content-Type, Content-Disposition).
MAX_PARAMS = 64

# Body bytes decoded for the preview, and the preview length in characters.
PREVIEW_SCAN = 16 * 1024
PREVIEW_CHARS = 256
