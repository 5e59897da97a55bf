"""Validation of names and addresses the store accepts (clear ``ValidationError``s).

Invariants: an SMTP address is stored with its local part as given and its domain in
lower case (RFC 5321 §2.4: the local part MAY be case-sensitive, domains are not);
lookups compare the whole address case-insensitively (``address_key``), as Exchange does.
"""

from __future__ import annotations

import re

from gateway.errors import ValidationError

MAX_NAME = 256
MAX_ADDRESS = 320  # RFC 3696 §3: 64 + 1 + 255
MAX_LOCAL_PART = 64
MAX_DOMAIN = 253  # RFC 1035 §2.3.4, without the trailing dot

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_LOCAL_FORBIDDEN = re.compile(r"[\s\x00-\x1f\x7f<>()\[\]\\,;:@\"]")


def name_key(value: str) -> str:
    """The case-insensitive key of a name (Unicode case folding)."""
    return value.casefold()


def address_key(address: str) -> str:
    """The case-insensitive key of an address or login name."""
    return address.strip().casefold()


def check_name(value: object, what: str) -> str:
    """A display or object name: non-empty, no control characters, bounded."""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be text")
    value = value.strip()
    if not value:
        raise ValidationError(f"{what} must not be empty")
    if len(value) > MAX_NAME:
        raise ValidationError(f"{what} is longer than {MAX_NAME} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValidationError(f"{what} must not contain control characters")
    return value


def check_domain(value: object, *, wildcard: bool = False, what: str = "domain") -> str:
    """A DNS domain (RFC 1035 LDH labels), lower-cased; ``*.`` allowed if ``wildcard``."""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be text")
    domain = value.strip().lower().rstrip(".")
    body = domain[2:] if wildcard and domain.startswith("*.") else domain
    if not body or len(domain) > MAX_DOMAIN:
        raise ValidationError(f"{what} {value!r} is not a valid domain name")
    labels = body.split(".")
    if any(not _LABEL.match(label) for label in labels):
        raise ValidationError(f"{what} {value!r} is not a valid domain name "
                              "(letters, digits and hyphens; use punycode for IDN)")
    return domain


def check_address(value: object, what: str = "address") -> str:
    """An SMTP address ``local@domain``; returns it with the domain lower-cased."""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be text")
    address = value.strip()
    if address.lower().startswith("smtp:"):  # Exchange's "smtp:" proxy-address prefix
        address = address[5:]
    local, sep, domain = address.rpartition("@")
    if not sep or not local or len(address) > MAX_ADDRESS or len(local) > MAX_LOCAL_PART:
        raise ValidationError(f"{what} {value!r} is not an address of the form local@domain")
    if _LOCAL_FORBIDDEN.search(local) or local.startswith(".") or local.endswith(".") \
            or ".." in local:
        raise ValidationError(f"{what} {value!r} has an invalid local part")
    return f"{local}@{check_domain(domain, what=what)}"
