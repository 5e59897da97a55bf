"""The MIME structure scanner: exact byte offsets of every part (RFC 2045, RFC 2046).

Role: one forward pass over the CRLF-normalised message that finds each part's header
and body, following multipart boundaries and message/rfc822 encapsulation, and records
offsets that the IMAP layer slices for BODY[section] without re-parsing.

Model (as Dovecot's message parser, the reference peer):
- A header ends after the first empty line; its range includes that empty line. A
  header with no empty line ends at the next boundary line or at the end of the data
  (the body is then empty).
- A boundary line is a line that starts with ``--`` followed by an active boundary
  (RFC 2046 §5.1.1); like Dovecot, the rest of the line is not checked, and when
  several active boundaries match, the longest wins (so nested multiparts that reuse or
  extend a boundary still split correctly). A boundary followed by ``--`` closes its
  multipart; an outer boundary also closes every multipart inside it.
- The CRLF before a boundary line belongs to the boundary (RFC 2046 §5.1.1), so a body
  ends before it; when the boundary line directly follows the header, the body is empty
  and the header gives up its last CRLF. Dovecot's exception is kept for byte-exact
  answers: the entities such a boundary closes keep that CRLF (see ``_end``).
- A boundary that is the unterminated last line opens no new part.
- A multipart's body runs from its header's end to the boundary that ends it (or the
  data's end) and includes preamble and epilogue.

Invariants: never raises; every recorded range satisfies ``0 <= start <= end <=
len(data)`` and children lie inside their parent's body; the pass is linear in the
data (each search resumes where the previous one stopped; the "next empty line" search
is memoised), bounded by ``limits.MAX_DEPTH`` and ``limits.MAX_PARTS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.mime import limits
from gateway.mime.headers import (
    merge_rfc2231,
    parse_content_type,
    split_fields,
    to_text,
    unfold,
)

ADDRESS_FIELDS = frozenset({"from", "sender", "reply-to", "to", "cc", "bcc"})
# Fields where a repeated occurrence replaces the earlier one (as Dovecot reads them);
# for every other field the first occurrence counts.
LAST_WINS_FIELDS = frozenset(
    {"date", "subject", "message-id", "in-reply-to", "content-disposition"}
)


@dataclass
class Node:
    """One MIME entity found by the scanner (internal, mutable while scanning).

    ``kind`` is "leaf", "multipart" or "message" (message/rfc822 or message/global whose
    body was parsed as a message, held in ``message``). ``fields`` holds the raw values
    of every header field of this entity by lower-case name (which occurrence: see
    ``LAST_WINS_FIELDS`` and ``ADDRESS_FIELDS``).
    """

    header_start: int
    header_end: int = 0
    body_end: int = 0
    ctype: str = "text"
    csubtype: str = "plain"
    params: list[tuple[str, str]] = field(default_factory=list)
    explicit_type: bool = False
    kind: str = "leaf"
    fields: dict[str, bytes] = field(default_factory=dict)
    children: list[Node] = field(default_factory=list)
    message: Node | None = None
    opaque: bool = False
    mime: bool = True
    lines: int | None = None  # body line count, computed once (see imap.body_lines)

    @property
    def full_type(self) -> str:
        return f"{self.ctype}/{self.csubtype}".lower()


@dataclass
class _Hit:
    """A boundary line: where it starts, which stack level matched, close or not.

    ``keep_crlf``: the entities this line closes keep the CRLF before it (see ``_end``).
    """

    line_start: int
    level: int
    close: bool
    next_line: int
    keep_crlf: bool = False


class _Scanner:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)
        self.stack: list[bytes] = []
        self.parts = 0
        self._blank_from = -1
        self._blank_at = -1

    # -- searches ----------------------------------------------------------------------

    def _next_blank(self, pos: int) -> int:
        """Index of the first ``\\r\\n\\r\\n`` at or after ``pos`` (-1: none), memoised.

        Positions passed in only grow between calls that matter, so the memo keeps the
        total search work linear even when many headers lack an empty line.
        """
        if (
            self._blank_from != -1
            and self._blank_from <= pos
            and (self._blank_at == -1 or self._blank_at >= pos)
        ):
            return self._blank_at
        self._blank_from = pos
        self._blank_at = self.data.find(b"\r\n\r\n", pos)
        return self._blank_at

    def _match(self, line: int) -> _Hit | None:
        """Does the line starting at ``line`` (which starts with "--") match a boundary?"""
        data = self.data
        best = -1
        best_len = -1
        # Innermost first, so that on equal length a nested multipart reusing its
        # parent's boundary wins (as Dovecot's boundary_find).
        for level in range(len(self.stack) - 1, -1, -1):
            boundary = self.stack[level]
            if len(boundary) > best_len and data.startswith(boundary, line + 2):
                best = level
                best_len = len(boundary)
        if best < 0:
            return None
        after = line + 2 + best_len
        close = data.startswith(b"--", after)
        eol = data.find(b"\r\n", after)
        if eol < 0:
            # A boundary as the unterminated last line opens no new part (Dovecot).
            return _Hit(line, best, True, self.size)
        return _Hit(line, best, close, eol + 2)

    def find_boundary(self, pos: int, limit: int) -> _Hit | None:
        """The first boundary line starting in ``[pos, limit)``; ``pos`` is a line start."""
        if not self.stack:
            return None
        data = self.data
        if pos < limit and data.startswith(b"--", pos):
            hit = self._match(pos)
            if hit is not None:
                return hit
        search_end = min(limit + 2, self.size)
        at = pos
        while True:
            at = data.find(b"\r\n--", at, search_end)
            if at < 0:
                return None
            hit = self._match(at + 2)
            if hit is not None:
                return hit
            at += 2

    # -- parts ------------------------------------------------------------------------

    def _header(self, node: Node) -> _Hit | None:
        """Find the end of the header starting at ``node.header_start``.

        Returns the boundary hit when a boundary line ends the header (body empty).
        """
        start = node.header_start
        if self.data.startswith(b"\r\n", start):
            node.header_end = start + 2
            return None
        blank = self._next_blank(start)
        header_end = self.size if blank < 0 else blank + 4
        # A boundary line inside the would-be header ends it (the last header line
        # starts at or before ``blank``). The line after the empty line is body: it
        # may be the first boundary of this very multipart.
        hit = self.find_boundary(start, self.size if blank < 0 else blank + 2)
        if hit is not None and hit.line_start < header_end:
            # The CRLF before the boundary line belongs to the boundary (RFC 2046
            # §5.1.1), so it is not part of this header either (as Dovecot).
            node.header_end = max(start, hit.line_start - 2)
            hit.keep_crlf = True
            return hit
        node.header_end = header_end
        return None

    def _read_fields(self, node: Node, default: tuple[str, str], is_message: bool) -> None:
        fields: dict[str, bytes] = {}
        for name, value in split_fields(self.data, node.header_start, node.header_end):
            if name in ADDRESS_FIELDS and name in fields:
                # Repeated address fields are read as one list (as Dovecot does).
                fields[name] += b"," + value
            elif name in LAST_WINS_FIELDS:
                fields[name] = value
            else:
                fields.setdefault(name, value)
        node.fields = fields
        # A message (top level or encapsulated) is MIME only with MIME-Version or
        # Content-Type (RFC 2045 §4); otherwise its other Content-* fields are ignored,
        # as Dovecot does. Body parts of a multipart are always MIME entities.
        node.mime = not is_message or "mime-version" in fields or "content-type" in fields
        node.ctype, node.csubtype = default
        raw = fields.get("content-type")
        if raw is not None:
            parsed = parse_content_type(to_text(unfold(raw)))
            if parsed is not None:
                node.ctype, node.csubtype, node.params = parsed
                node.explicit_type = True
        if not node.explicit_type and default == ("text", "plain"):
            node.params = [("charset", "us-ascii")]

    def parse_entity(
        self, start: int, depth: int, default: tuple[str, str], is_message: bool
    ) -> tuple[Node, _Hit | None]:
        """Parse one entity (header and body) at ``start``; return it and what ended it.

        ``is_message``: the entity is a whole message (top level or message/rfc822
        body) rather than a body part of a multipart.
        """
        self.parts += 1
        node = Node(header_start=start)
        hit = self._header(node)
        self._read_fields(node, default, is_message)
        body_start = node.header_end
        if hit is not None:
            # Header ran into a boundary: empty body, but a multipart or message part
            # keeps its kind so that BODYSTRUCTURE stays well-formed (as Dovecot).
            node.body_end = body_start
            if depth < limits.MAX_DEPTH:
                if node.ctype.lower() == "multipart":
                    node.kind = "multipart"
                elif node.full_type == "message/rfc822":
                    node.kind = "message"
                    node.message = self._empty_message(body_start)
            return node, hit
        if node.ctype.lower() == "multipart":
            boundary = merge_rfc2231(node.params).get("boundary", "")
            if depth >= limits.MAX_DEPTH:
                node.opaque = True
            else:
                node.kind = "multipart"
                if boundary and len(boundary) <= limits.MAX_BOUNDARY:
                    hit = self._multipart(
                        node, body_start, boundary.encode("utf-8", "replace"), depth
                    )
                    self._end(node, hit)
                    return node, hit
                # No usable boundary: a multipart without parts (Dovecot shows one
                # empty text/plain part); its body ends like a leaf's.
        elif node.full_type == "message/rfc822":
            # RFC 2046 §5.2.1. Like Dovecot, the body is parsed as a message whatever
            # its (non-identity, hence invalid) transfer encoding; message/global
            # (RFC 6532) stays a basic part, as in Dovecot 2.3.
            if depth >= limits.MAX_DEPTH:
                node.opaque = True
            else:
                node.kind = "message"
                inner, hit = self.parse_entity(body_start, depth + 1, ("text", "plain"), True)
                if hit is not None and hit.line_start <= body_start:
                    self._end(node, hit)  # empty: the header's last CRLF is the boundary's
                    inner = self._empty_message(node.header_end)
                    node.message = inner
                    return node, hit
                node.message = inner
                self._end(node, hit)
                return node, hit
        hit = self.find_boundary(body_start, self.size)
        self._end(node, hit)
        return node, hit

    @staticmethod
    def _empty_message(at: int) -> Node:
        """The empty message inside a message/rfc822 part that has no body."""
        return Node(header_start=at, header_end=at, body_end=at, params=[("charset", "us-ascii")])

    def _end(self, node: Node, hit: _Hit | None) -> None:
        """Set ``node.body_end`` from the boundary that ended it (None: end of data).

        When that boundary line starts right at the body, the body is empty and the
        CRLF of the header's empty line is the one before the boundary, so it leaves
        the header (RFC 2046 §5.1.1; Dovecot does the same).
        """
        body_start = node.header_end
        if hit is None:
            node.body_end = self.size
        elif hit.line_start <= body_start:
            node.header_end = max(node.header_start, body_start - 2)
            node.body_end = node.header_end
            hit.keep_crlf = True  # but the entities it closes keep it (Dovecot)
        elif hit.keep_crlf:
            # Dovecot quirk kept for byte-exact answers: when the boundary ended a
            # nested header or directly follows one (empty body), or directly follows
            # a close delimiter (empty epilogue), the entities that it closes keep the
            # CRLF before it, although the header or part it follows does not.
            node.body_end = hit.line_start
        else:
            node.body_end = hit.line_start - 2

    def _multipart(self, node: Node, body_start: int, boundary: bytes, depth: int) -> _Hit | None:
        """Scan a multipart body: preamble, parts, epilogue (RFC 2046 §5.1.1)."""
        self.stack.append(boundary)
        level = len(self.stack) - 1
        # RFC 2046 §5.1.5: in a digest, body parts default to message/rfc822.
        digest = node.csubtype.lower() == "digest"
        child_default = ("message", "rfc822") if digest else ("text", "plain")
        try:
            hit = self.find_boundary(body_start, self.size)
            while hit is not None and hit.level == level and not hit.close:
                if self.parts >= limits.MAX_PARTS:
                    # Not listed any more: skip to the next boundary of this level or above.
                    hit = self.find_boundary(hit.next_line, self.size)
                    continue
                child, hit = self.parse_entity(hit.next_line, depth + 1, child_default, False)
                node.children.append(child)
                # A hit at a deeper level cannot come back here: inner scans pop first.
            if hit is not None and hit.level == level and hit.close:
                del self.stack[level:]
                after = self.find_boundary(hit.next_line, self.size)
                if after is not None and after.line_start == hit.next_line:
                    after.keep_crlf = True
                return after
            return hit
        finally:
            del self.stack[level:]


def scan(data: bytes) -> Node:
    """Parse the whole (CRLF-normalised) message; the root is the message itself."""
    scanner = _Scanner(data)
    root, _ = scanner.parse_entity(0, 0, ("text", "plain"), True)
    return root
