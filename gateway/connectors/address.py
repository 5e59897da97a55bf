"""A strict parser for SMTP envelope addresses (RFC 5321 §4.1.2, RFC 6531 §3.3).

Role: turn the text of a MAIL FROM / RCPT TO path into an ``SmtpAddress`` the policy
can trust, so that no spelling makes an external recipient look local (the open-relay
battery of issue 3, security.md).

Invariants of a parsed address:
* ``domain`` is lower-case ASCII: LDH labels, IDN as A-labels (IDNA 2008, no UTS 46
  mapping: full-width and other look-alike characters are refused, not folded), or an
  address literal ``[...]`` (``is_literal``) that never matches an accepted domain;
* ``local`` holds no routing character: ``%`` (percent hack), ``!`` (bang path) and
  ``@`` are refused even inside a quoted string; a quoted local part that is a plain
  dot-atom is unquoted (``"alice"`` → ``alice``);
* no source route (``@relay:user@host``), no trailing or doubled dot, no white space,
  no control character; RFC 5321 §4.5.3.1 lengths: local part 64 octets, domain 255,
  path 256.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass

import idna

MAX_LOCAL_OCTETS = 64        # RFC 5321 §4.5.3.1.1
MAX_DOMAIN_OCTETS = 255      # RFC 5321 §4.5.3.1.2
MAX_PATH_OCTETS = 256        # RFC 5321 §4.5.3.1.3
MAX_LABEL_OCTETS = 63        # RFC 1035 §2.3.4

_ATEXT = r"A-Za-z0-9#$&'*+\-/=?^_`{|}~"        # RFC 5322 atext minus '%' and '!'
_DOT_ATOM_ASCII = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*\Z")
_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
_ROUTING = frozenset("%!@")


class AddressError(ValueError):
    """The text is not an address the gateway accepts; the message says why."""


@dataclass(frozen=True)
class SmtpAddress:
    """A parsed envelope address. ``local`` keeps its case (RFC 5321 §2.4)."""

    local: str
    domain: str
    is_literal: bool = False

    @property
    def key(self) -> str:
        """The case-insensitive lookup form (how the store compares addresses)."""
        return f"{self.local.casefold()}@{self.domain}"

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"


NULL_SENDER = SmtpAddress("", "")


def _is_atext_utf8(ch: str) -> bool:
    if ord(ch) < 0x80:
        return bool(_DOT_ATOM_ASCII.match(ch))
    return unicodedata.category(ch)[0] not in ("C", "Z")   # RFC 6531 UTF8-non-ascii, printable


def _parse_local(text: str, smtputf8: bool) -> str:
    if not text:
        raise AddressError("empty local part")
    if text.startswith('"'):
        if len(text) < 2 or not text.endswith('"'):
            raise AddressError("unterminated quoted local part")
        out: list[str] = []
        body = text[1:-1]
        i = 0
        while i < len(body):
            ch = body[i]
            if ch == "\\":
                i += 1
                if i >= len(body):
                    raise AddressError("dangling backslash in quoted local part")
                ch = body[i]
                if ord(ch) < 32 or ord(ch) == 127:
                    raise AddressError("control character in local part")
            elif ch == '"':
                raise AddressError("stray quote in local part")
            elif ord(ch) < 32 or ord(ch) == 127:
                raise AddressError("control character in local part")
            out.append(ch)
            i += 1
        value = "".join(out)
        if not value:
            raise AddressError("empty quoted local part")
        if any(c in _ROUTING for c in value):
            raise AddressError("routing character (%, ! or @) in local part")
        if not smtputf8 and any(ord(c) > 127 for c in value):
            raise AddressError("non-ASCII local part without SMTPUTF8")
        if _is_dot_atom(value):
            return value
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if any(c in _ROUTING for c in text):
        raise AddressError("routing character (%, ! or @) in local part")
    if not smtputf8 and any(ord(c) > 127 for c in text):
        raise AddressError("non-ASCII local part without SMTPUTF8")
    if not _is_dot_atom(text):
        raise AddressError("local part is not a dot-atom")
    return text


def _is_dot_atom(value: str) -> bool:
    if value.isascii():
        return bool(_DOT_ATOM_ASCII.match(value))
    parts = value.split(".")
    return all(p and all(_is_atext_utf8(c) for c in p) for p in parts)


def _parse_literal(text: str) -> str:
    inner = text[1:-1]
    if inner[:5].lower() == "ipv6:":
        try:
            ip6 = ipaddress.IPv6Address(inner[5:])
        except ValueError:
            raise AddressError("bad IPv6 address literal") from None
        return f"[IPv6:{ip6.compressed}]"
    try:
        ip4 = ipaddress.IPv4Address(inner)
    except ValueError:
        raise AddressError("bad address literal") from None
    return f"[{ip4}]"


def parse_domain(text: str, *, smtputf8: bool = False) -> str:
    """Validate a domain (RFC 5321 §4.1.2 Domain, RFC 6531 U-labels) and return its
    lower-case A-label form. AddressError otherwise."""
    if not text:
        raise AddressError("empty domain")
    if text.endswith("."):
        raise AddressError("trailing dot in domain")
    labels = text.split(".")
    out: list[str] = []
    for label in labels:
        if not label:
            raise AddressError("empty label in domain")
        if label.isascii():
            low = label.lower()
            if not _LDH_LABEL.match(low):
                raise AddressError(f"bad domain label {label!r}")
            if low.startswith("xn--"):
                try:
                    idna.decode(low)           # must be a valid IDNA 2008 A-label
                except idna.IDNAError:
                    raise AddressError(f"bad IDN label {label!r}") from None
            out.append(low)
            continue
        if not smtputf8:
            raise AddressError("non-ASCII domain without SMTPUTF8")
        low = label.lower()
        if unicodedata.normalize("NFC", low) != low:
            raise AddressError("domain label not in NFC")
        try:
            a_label = idna.alabel(low).decode("ascii")   # strict IDNA 2008, no mapping
        except (idna.IDNAError, UnicodeError):
            raise AddressError(f"domain label {label!r} is not a valid IDN") from None
        out.append(a_label.lower())
    domain = ".".join(out)
    if len(domain) > MAX_DOMAIN_OCTETS:
        raise AddressError("domain too long")
    if len(out) == 1 and out[0].isdigit():
        raise AddressError("numeric domain")
    return domain


_LABEL_TEXT = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_FAST = re.compile(rf"([{_ATEXT}]+(?:\.[{_ATEXT}]+)*)@((?:{_LABEL_TEXT}\.)*{_LABEL_TEXT})\Z")


def parse_address(text: str, *, smtputf8: bool = False,
                  allow_null: bool = False) -> SmtpAddress:
    """Parse a Mailbox (optionally inside ``<>``). The null path ``<>`` (or empty
    text) gives ``NULL_SENDER`` when ``allow_null``. AddressError on anything else.

    The common case (an ASCII dot-atom at an LDH domain) takes a single regular
    expression; everything else goes through the full parser, which gives the same
    answer for the common case (checked by the unit tests)."""
    raw = text[1:-1] if text.startswith("<") and text.endswith(">") else text
    m = _FAST.match(raw)
    if m is not None:
        local, domain = m.group(1), m.group(2).lower()
        if len(local) <= MAX_LOCAL_OCTETS and len(raw) <= MAX_PATH_OCTETS - 2 \
                and len(domain) <= MAX_DOMAIN_OCTETS and "xn--" not in domain \
                and not domain.isdigit():
            return SmtpAddress(local, domain)
    return parse_address_full(text, smtputf8=smtputf8, allow_null=allow_null)


def parse_address_full(text: str, *, smtputf8: bool = False,
                       allow_null: bool = False) -> SmtpAddress:
    """``parse_address`` without the fast path."""
    raw = text
    if raw.startswith("<") and raw.endswith(">"):
        raw = raw[1:-1]
    elif raw.startswith("<") or raw.endswith(">"):
        raise AddressError("unbalanced angle brackets")
    if raw == "":
        if allow_null:
            return NULL_SENDER
        raise AddressError("empty address")
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_PATH_OCTETS - 2:
        raise AddressError("address too long")
    if raw.startswith("@"):
        raise AddressError("source routes are not accepted")
    if any(ord(c) < 32 or ord(c) == 127 for c in raw):
        raise AddressError("control character in address")
    at = raw.rfind("@")
    if at <= 0:
        raise AddressError("no @ in address")
    local_text, domain_text = raw[:at], raw[at + 1:]
    local = _parse_local(local_text, smtputf8)
    if len(local.encode("utf-8")) > MAX_LOCAL_OCTETS:
        raise AddressError("local part too long")
    if domain_text.startswith("[") and domain_text.endswith("]"):
        return SmtpAddress(local, _parse_literal(domain_text), is_literal=True)
    if any(c.isspace() for c in domain_text):
        raise AddressError("white space in domain")
    return SmtpAddress(local, parse_domain(domain_text, smtputf8=smtputf8))
