"""RFC 5322 §3.4 address lists as IMAP ENVELOPE address structures (RFC 3501 §7.4.2).

Role: parse an address header (From, To, ...) into ``[name, adl, mailbox, host]`` lists,
with RFC 3501 group markers: ``[None, None, group-name, None]`` opens a group and
``[None, None, None, None]`` closes it.

Invariants (matching Dovecot, the reference peer): never raises; lenient on obsolete and
broken syntax; the display name keeps RFC 2047 encoded words as written (IMAP sends them
raw) with quoting removed and words joined by one space; an address with no local part
or domain gets ``MISSING_MAILBOX`` / ``MISSING_DOMAIN``; at most
``limits.MAX_ADDRESSES`` entries; linear in the input.
"""

from __future__ import annotations

from gateway.mime import limits
from gateway.mime.words import decode_words

Address = list[str | None]

_SPECIALS = frozenset("<>@,;:")
_ATOM_STOP = frozenset('()<>@,;:\\"[] \t\r\n')
MISSING_MAILBOX = "MISSING_MAILBOX"
MISSING_DOMAIN = "MISSING_DOMAIN"
SYNTAX_ERROR = "SYNTAX_ERROR"


def _lex(s: str) -> list[tuple[str, str]]:
    """Tokens: ("atom", text incl. dots), ("qs", unquoted), ("comment", text),
    ("lit", "[domain literal]") or (special, special) for ``<>@,;:``."""
    tokens: list[tuple[str, str]] = []
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c in " \t\r\n":
            i += 1
        elif c in _SPECIALS:
            tokens.append((c, c))
            i += 1
        elif c == '"':
            out: list[str] = []
            i += 1
            while i < n and s[i] != '"':
                if s[i] == "\\" and i + 1 < n:
                    i += 1
                if s[i] not in "\r\n":
                    out.append(s[i])
                i += 1
            tokens.append(("qs", "".join(out)))
            i += 1
        elif c == "(":
            depth = 0
            start = i
            while i < n:
                if s[i] == "\\":
                    i += 2
                    continue
                if s[i] == "(":
                    depth += 1
                elif s[i] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
            tokens.append(("comment", s[start + 1 : i].strip()))
            i += 1
        elif c == "[":
            end = s.find("]", i)
            end = n - 1 if end < 0 else end
            tokens.append(("lit", s[i : end + 1]))
            i = end + 1
        elif c in ")]\\":
            i += 1
        else:
            j = i
            while j < n and s[j] not in _ATOM_STOP:
                j += 1
            tokens.append(("atom", s[i:j]))
            i = j
    return tokens


def _words(tokens: list[tuple[str, str]]) -> list[str]:
    return [text for kind, text in tokens if kind in ("atom", "qs")]


def _phrase(tokens: list[tuple[str, str]]) -> str | None:
    phrase = " ".join(_words(tokens))
    return phrase if phrase.strip() else None


def _addr_spec(items: list[tuple[str, str]]) -> tuple[str, str, bool]:
    """Local part, domain and "clean" of an addr-spec (RFC 5322 §3.4.1).

    ``items`` holds no comments. Not clean means junk where the syntax allows none;
    the caller then stops reading the list, as Dovecot does.
    """
    if not items:
        return MISSING_MAILBOX, MISSING_DOMAIN, True
    kind, local = items[0]
    if kind == "@" and len(items) > 1 and items[1][0] in ("atom", "lit"):
        return MISSING_MAILBOX, items[1][1], len(items) == 2  # "@domain"
    if kind not in ("atom", "qs"):
        return MISSING_MAILBOX, MISSING_DOMAIN, False
    if len(items) == 1:
        return local, MISSING_DOMAIN, True
    if items[1][0] != "@" or len(items) < 3 or items[2][0] not in ("atom", "lit"):
        return local, MISSING_DOMAIN, False
    return local, items[2][1], len(items) == 3


def _mailbox(tokens: list[tuple[str, str]]) -> tuple[Address | None, bool]:
    """One mailbox (name-addr or addr-spec) from its tokens, and whether it was clean.

    The address is None when there is nothing but comments.
    """
    items = [t for t in tokens if t[0] != "comment"]
    if not items:
        return None, True
    lt = next((k for k, (kind, _) in enumerate(items) if kind == "<"), -1)
    if lt < 0:
        at = next((k for k, (kind, _) in enumerate(items) if kind == "@"), len(items))
        words = _words(items[:at])
        if len(words) > 1:
            # "Anne Person" (no address) or "ape rson@x": a display name (as Dovecot).
            return [" ".join(words), None, MISSING_MAILBOX, MISSING_DOMAIN], at == len(items)
        local, domain, clean = _addr_spec(items)
        comments = [text for kind, text in tokens if kind == "comment" and text]
        return [comments[-1] if comments else None, None, local, domain], clean
    name = _phrase(items[:lt])
    gt = next((k for k, (kind, _) in enumerate(items) if kind == ">" and k > lt), -1)
    inner = items[lt + 1 : gt if gt >= 0 else len(items)]
    clean = gt >= 0 and gt == len(items) - 1
    adl: str | None = None
    if inner and inner[0][0] == "@":
        # RFC 5322 §4.4 obs-route: "@a,@b:" before the addr-spec.
        colon = next((k for k, (kind, _) in enumerate(inner) if kind == ":"), -1)
        if colon >= 0:
            adl = "".join(text for _, text in inner[:colon])
            inner = inner[colon + 1 :]
    if not inner:
        if name is None:
            return None, clean
        return [name, adl, MISSING_MAILBOX, MISSING_DOMAIN], clean
    local, domain, spec_clean = _addr_spec(inner)
    if gt < 0 or not spec_clean:
        # Broken angle address: Dovecot reports the host as a syntax error.
        domain = SYNTAX_ERROR
    return [name, adl, local, domain], clean and spec_clean


def _split(tokens: list[tuple[str, str]], i: int, stops: str) -> tuple[list[tuple[str, str]], int]:
    """Tokens from ``i`` up to a stop special outside angle brackets."""
    start = i
    n = len(tokens)
    angle = False
    while i < n:
        kind = tokens[i][0]
        if kind == "<":
            angle = True
        elif kind == ">":
            angle = False
        elif not angle and kind in stops:
            break
        i += 1
    return tokens[start:i], i


def parse_addresses(value: str) -> list[Address]:
    """Parse an unfolded address-list value into IMAP address structures.

    Reading stops after an address followed by junk (as Dovecot does); an open group
    is then closed so the list stays well-formed.
    """
    tokens = _lex(value)
    out: list[Address] = []
    i = 0
    n = len(tokens)
    while i < n and len(out) < limits.MAX_ADDRESSES:
        kind = tokens[i][0]
        if kind in ",;>":
            i += 1
            continue
        # A group is "display-name ':' [mailbox-list] ';'" (RFC 5322 §3.4).
        j = i
        while j < n and tokens[j][0] not in "<@,;:":
            j += 1
        if j < n and tokens[j][0] == ":":
            out.append([None, None, _phrase(tokens[i:j]) or "", None])
            i = j + 1
            clean = True
            while i < n and tokens[i][0] != ";" and len(out) < limits.MAX_ADDRESSES:
                if tokens[i][0] in ",:":
                    i += 1
                    continue
                part, i = _split(tokens, i, ",;")
                address, clean = _mailbox(part)
                if address is not None:
                    out.append(address)
                if not clean:
                    break
            out.append([None, None, None, None])
            if not clean:
                break
            i += 1
            continue
        part, i = _split(tokens, i, ",")
        address, clean = _mailbox(part)
        if address is not None:
            out.append(address)
        if not clean:
            break
    return out


def display_addresses(addresses: list[Address]) -> str:
    """A decoded, human-readable form: ``Name <local@domain>, other@domain``."""
    items: list[str] = []
    group_open = False
    for name, _adl, mailbox, host in addresses:
        if host is None:
            if mailbox is not None:
                items.append(decode_words(mailbox) + ":")
                group_open = True
            elif group_open:
                items.append(";")
                group_open = False
            continue
        if mailbox == MISSING_MAILBOX:
            address = ""
        elif host == MISSING_DOMAIN:
            address = mailbox or ""
        else:
            address = f"{mailbox}@{host}"
        if name and address:
            items.append(f"{decode_words(name)} <{address}>")
        elif name or address:
            items.append(decode_words(name) if name else address)
    text = ""
    for item in items:
        if item == ";":
            text += ";"
        elif text and not text.endswith(":"):
            text += ", " + item
        else:
            text += (" " if text else "") + item
    return text
