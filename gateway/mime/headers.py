"""Header block splitting and MIME header field syntax (RFC 5322 §2.2, RFC 2045 §5).

Role: turn the bytes of one header block into fields, and parse the MIME fields
(Content-Type, Content-Disposition, Content-Language) into tokens and parameters.

Invariants: never raises; work is linear in the input, bounded by
``limits.MAX_HEADER_SCAN`` per block and ``limits.MAX_FIELD_VALUE`` per field. Field
values are returned as ``str`` decoded from UTF-8 with invalid bytes replaced (so
valid 8-bit UTF-8 headers round-trip, RFC 6532) and NUL replaced by U+FFFD, because
NUL cannot appear in an IMAP string.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from gateway.mime import limits
from gateway.mime.words import decode_charset

_WSP = " \t"
# RFC 2045 §5.1 tspecials; a token is a run of anything else but space and CTLs.
_TSPECIALS = frozenset('()<>@,;:\\"/[]?=')


def to_text(raw: bytes) -> str:
    """Decode header bytes for output: UTF-8, invalid bytes as U+FFFD, NUL as U+FFFD."""
    text = raw.decode("utf-8", "replace")
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    return text


def split_fields(data: bytes, start: int, end: int) -> list[tuple[str, bytes]]:
    """Split the header block ``data[start:end]`` into ``(lower-case name, raw value)``.

    The value keeps its folding CRLFs (see :func:`unfold`) and has the white space after
    the colon removed. Lines that are neither a field nor a continuation are skipped
    (RFC 5322 §3.6.8 allows no such lines; Dovecot and Python skip them too).
    """
    block = data[start : min(end, start + limits.MAX_HEADER_SCAN)]
    fields: list[tuple[str, bytes]] = []
    name: str | None = None
    value: list[bytes] = []
    size = 0
    for line in block.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            if name is not None and size < limits.MAX_FIELD_VALUE:
                value.append(line)
                size += len(line) + 2
            continue
        if name is not None:
            fields.append((name, b"\r\n".join(value)[: limits.MAX_FIELD_VALUE]))
            name = None
        if not line:
            break
        colon = line.find(b":")
        if colon <= 0:
            continue
        raw_name = line[:colon].rstrip(b" \t")
        if not raw_name or b" " in raw_name or b"\t" in raw_name:
            continue
        name = raw_name.decode("latin-1").lower()
        first = line[colon + 1 :].lstrip(b" \t")
        value = [first]
        size = len(first)
    if name is not None:
        fields.append((name, b"\r\n".join(value)[: limits.MAX_FIELD_VALUE]))
    return fields


def unfold(value: bytes) -> bytes:
    """RFC 5322 §2.2.3 unfolding: remove the CRLF of each fold, keep the white space."""
    return value.replace(b"\r\n", b"")


# --- RFC 2045 / RFC 822 lexical tokens for MIME fields -------------------------------


def _skip_cfws(s: str, i: int) -> int:
    """Skip white space and (nested) comments from ``s[i]``; return the new index."""
    n = len(s)
    while i < n:
        c = s[i]
        if c in " \t\r\n":
            i += 1
        elif c == "(":
            depth = 0
            while i < n:
                c = s[i]
                if c == "\\":
                    i += 2
                    continue
                if c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                    if depth == 0:
                        i += 1
                        break
                i += 1
        else:
            break
    return i


def _quoted(s: str, i: int) -> tuple[str | None, int]:
    """Read the quoted string starting at ``s[i] == '"'``; unescape quoted pairs.

    Returns None as the value when the closing quote is missing.
    """
    out: list[str] = []
    i += 1
    n = len(s)
    while i < n:
        c = s[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\" and i + 1 < n:
            i += 1
            c = s[i]
        if c not in "\r\n":
            out.append(c)
        i += 1
    return None, i


def _token(s: str, i: int) -> tuple[str, int]:
    j = i
    n = len(s)
    while j < n and s[j] not in _TSPECIALS and s[j] > " " and s[j] != "\x7f":
        j += 1
    return s[i:j], j


def _value(s: str, i: int) -> tuple[str | None, int]:
    """A parameter value at ``s[i]``: quoted string or token (None: unterminated).

    A token running straight into tspecials other than ";" (``boundary=----=_Part_1``,
    ``name=a/b``) is common: like Python's email package we take the value up to the
    next ";" or white space rather than cutting it at the first tspecial.
    """
    n = len(s)
    if i < n and s[i] == '"':
        return _quoted(s, i)
    token, j = _token(s, i)
    if j < n and s[j] in _TSPECIALS and s[j] not in ';"(':
        while j < n and s[j] not in "; \t\r\n":
            j += 1
        return s[i:j], j
    return token, j  # may be empty ("boundary=;"), as Dovecot accepts


def parse_params(s: str, i: int) -> list[tuple[str, str]]:
    """Parse ``*(";" attribute "=" value)`` from ``s[i]`` (RFC 2045 §5.1).

    Returns raw ``(name, value)`` pairs in order, names as written (RFC 2231
    continuations are merged later). Error recovery follows Dovecot: a parameter
    without "=" is skipped up to the next ";", junk after a value is skipped up to the
    next ";" (the value is kept), and an unterminated quoted string ends the list.
    """
    params: list[tuple[str, str]] = []
    n = len(s)
    i = _skip_cfws(s, i)
    while i < n and len(params) < limits.MAX_PARAMS:
        if s[i] != ";":
            # Junk where a ";" should be: skip to the next one.
            semi = s.find(";", i)
            if semi < 0:
                break
            i = semi
        i = _skip_cfws(s, i + 1)
        if i >= n:
            break  # a trailing ";" is harmless
        name, j = _token(s, i)
        j = _skip_cfws(s, j)
        if j >= n or s[j] != "=":
            i = j if j > i else i + 1
            continue
        value, i = _value(s, _skip_cfws(s, j + 1))
        if value is None:
            break
        params.append((name, value))
        i = _skip_cfws(s, i)
    return params


def parse_content_type(s: str) -> tuple[str, str, list[tuple[str, str]]] | None:
    """Parse a Content-Type value into ``(type, subtype, params)`` as written.

    Returns None when the value has no valid ``type "/" subtype`` (RFC 2045 §5.2: such a
    field is treated as absent).
    """
    i = _skip_cfws(s, 0)
    ctype, i = _token(s, i)
    i = _skip_cfws(s, i)
    if not ctype or i >= len(s) or s[i] != "/":
        return None
    i = _skip_cfws(s, i + 1)
    subtype, i = _token(s, i)
    if not subtype:
        return None
    return ctype, subtype, parse_params(s, i)


def parse_disposition(s: str) -> tuple[str, list[tuple[str, str]]] | None:
    """Parse a Content-Disposition value (RFC 2183 §2) into ``(type, params)``."""
    i = _skip_cfws(s, 0)
    disp, i = _token(s, i)
    if not disp:
        return None
    return disp, parse_params(s, i)


def mechanism_token(s: str) -> tuple[str, str]:
    """The token of a Content-Transfer-Encoding value and what follows it (RFC 2045
    §6.1), comments and white space skipped."""
    token, i = _token(s, _skip_cfws(s, 0))
    return token, s[_skip_cfws(s, i) :]


def parse_language(s: str) -> list[str]:
    """Parse Content-Language (RFC 3282): a comma list of language tags."""
    tags: list[str] = []
    for item in s.split(","):
        i = _skip_cfws(item, 0)
        tag, _ = _token(item, i)
        if tag:
            tags.append(tag)
        if len(tags) >= limits.MAX_PARAMS:
            break
    return tags


def merge_rfc2231(params: list[tuple[str, str]]) -> dict[str, str]:
    """Decoded parameters keyed by lower-case name (RFC 2231 §3-§4).

    Continuations ``name*0``, ``name*1*`` ... are joined in order; ``name*`` values in
    ``charset'lang'percent-encoded`` form are decoded. The first plain occurrence of a
    name wins over later duplicates, a complete RFC 2231 value wins over a plain one.
    """
    plain: dict[str, str] = {}
    sections: dict[str, dict[int, tuple[bool, str]]] = {}
    for raw_name, value in params:
        name = raw_name.lower()
        if "*" not in name:
            plain.setdefault(name, value)
            continue
        base, _, rest = name.partition("*")
        extended = rest.endswith("*") or rest == ""
        number = rest.rstrip("*")
        index = int(number) if number.isdigit() and len(number) < 4 else 0
        if number and not number.isdigit():
            continue
        sections.setdefault(base, {}).setdefault(index, (extended, value))
    for base, parts in sections.items():
        charset = ""
        chunks: list[bytes] = []
        for index in range(len(parts)):
            if index not in parts:
                break
            extended, value = parts[index]
            if extended:
                if index == 0:
                    bits = value.split("'", 2)
                    if len(bits) == 3:
                        charset, value = bits[0], bits[2]
                chunks.append(unquote_to_bytes(value))
            else:
                chunks.append(value.encode("utf-8", "surrogatepass"))
        plain[base] = decode_charset(b"".join(chunks), charset or "utf-8")
    return plain
