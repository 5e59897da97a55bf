"""Validation of the names and addresses operators type into cmdlets.

Rules and their sources:

* accepted domain: ``example.test`` or ``*.example.test`` (all subdomains); no other
  wildcard; at most 256 characters (Exchange, New-AcceptedDomain -DomainName); labels
  of 1-63 letters, digits and hyphens, not starting or ending with a hyphen (RFC 1035
  §2.3.1, RFC 1123 §2.1); Unicode names are stored as A-labels (RFC 5890);
* SMTP address: ``local@domain`` with a dot-atom local part (RFC 5322 §3.2.3), local
  part at most 64 octets and the address at most 254 (RFC 5321 §4.5.3.1.1 and
  §4.5.3.1.3, a 256-octet path less its angle brackets); the domain as above without a
  wildcard; stored with the local part as given and the domain in lower case;
* mailbox address domains must be accepted domains of type Authoritative or
  InternalRelay (Exchange: recipients' addresses need an accepted domain); a wildcard
  accepted domain ``*.d`` covers the subdomains of ``d``, not ``d`` itself;
* names: 1-64 characters (Exchange Name), display names up to 256, no control
  characters, and no ``*``/``?`` in names (Get-* reads them as wildcards);
  sAMAccountName at most 20 characters without ``"/\\[]:;|=,+*?<>@``.

Every function raises ``CmdletError`` with the offending value and the rule broken.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from gateway.admin.errors import CmdletError
from gateway.admin.storeapi import AcceptedDomainView

MAX_DOMAIN_LENGTH = 256
MAX_LABEL_LENGTH = 63
MAX_LOCAL_PART = 64
MAX_ADDRESS_LENGTH = 254
MAX_NAME_LENGTH = 64
MAX_DISPLAY_NAME_LENGTH = 256
MAX_SAM_LENGTH = 20
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = re.compile(rf"^{_ATEXT}(?:\.{_ATEXT})*$")
_SAM_FORBIDDEN = set('"/\\[]:;|=,+*?<>@')
RECIPIENT_DOMAIN_TYPES = ("Authoritative", "InternalRelay")


def _clip(text: str) -> str:
    shown = text if len(text) <= 60 else text[:60] + "..."
    return ascii(shown)[1:-1] if not shown.isprintable() else shown


def accepted_domain_name(text: str) -> str:
    """Validate and normalise an accepted domain (``d`` or ``*.d``) to lower case."""
    raw = text.strip()
    if len(raw) > MAX_DOMAIN_LENGTH:
        raise CmdletError(
            f"The domain name '{_clip(raw)}' is longer than {MAX_DOMAIN_LENGTH} characters."
        )
    wildcard = raw.startswith("*.")
    body = raw[2:] if wildcard else raw
    if "*" in body:
        raise CmdletError(
            f"The domain name '{_clip(raw)}' is not valid: a wildcard is only allowed as "
            "the first label ('*.example.test')."
        )
    name = domain(body, what="domain name")
    return f"*.{name}" if wildcard else name


def domain(text: str, *, what: str = "domain") -> str:
    """Validate a host domain (no wildcard) and return it lower case, as A-labels."""
    raw = text.strip().removesuffix(".")  # a fully qualified "example.test." is fine
    if not raw:
        raise CmdletError(f"The {what} is empty.")
    try:
        ascii_name = raw.encode("idna").decode("ascii") if not raw.isascii() else raw
    except UnicodeError:
        raise CmdletError(f"The {what} '{_clip(raw)}' is not a valid domain name.") from None
    lowered = ascii_name.lower()
    if len(lowered) > MAX_DOMAIN_LENGTH:
        raise CmdletError(f"The {what} '{_clip(raw)}' is too long.")
    for label in lowered.split("."):
        if not label:
            raise CmdletError(f"The {what} '{_clip(raw)}' has an empty label.")
        if len(label) > MAX_LABEL_LENGTH:
            raise CmdletError(
                f"The {what} '{_clip(raw)}' has a label longer than {MAX_LABEL_LENGTH} "
                "characters."
            )
        if not _LABEL.match(label):
            raise CmdletError(
                f"The {what} '{_clip(raw)}' is not valid: labels hold letters, digits and "
                "hyphens, and do not start or end with a hyphen."
            )
    return lowered


def smtp_address(text: str, *, what: str = "email address") -> str:
    """Validate ``local@domain``; return it with the domain in lower case."""
    raw = text.strip()
    if len(raw) > MAX_ADDRESS_LENGTH:
        raise CmdletError(
            f"The {what} '{_clip(raw)}' is longer than {MAX_ADDRESS_LENGTH} characters."
        )
    local, at, host = raw.rpartition("@")
    if not at or not local or not host:
        raise CmdletError(f"The {what} '{_clip(raw)}' is not valid: expected user@domain.")
    if len(local.encode()) > MAX_LOCAL_PART:
        raise CmdletError(
            f"The {what} '{_clip(raw)}' has a local part longer than {MAX_LOCAL_PART} octets."
        )
    if not _DOT_ATOM.match(local):
        raise CmdletError(
            f"The {what} '{_clip(raw)}' is not valid: the part before '@' may hold letters, "
            "digits, dots (not first, last or doubled) and !#$%&'*+/=?^_`{|}~-."
        )
    if "*" in host:
        raise CmdletError(f"The {what} '{_clip(raw)}' cannot contain a wildcard domain.")
    return f"{local}@{domain(host, what=f'domain of {what} {_clip(raw)!r}')}"


def covering_domain(
    address: str, domains: Iterable[AcceptedDomainView]
) -> AcceptedDomainView | None:
    """The accepted domain that covers ``address``'s domain (exact match first)."""
    host = address.rpartition("@")[2].lower()
    candidates = list(domains)
    for d in candidates:
        if d.domain_name == host:
            return d
    best: AcceptedDomainView | None = None
    for d in candidates:
        if d.domain_name.startswith("*.") and host.endswith(d.domain_name[1:]):
            if best is None or len(d.domain_name) > len(best.domain_name):
                best = d
    return best


def require_recipient_domain(address: str, domains: Iterable[AcceptedDomainView]) -> None:
    """Refuse an address whose domain is not an Authoritative/InternalRelay accepted domain."""
    covering = covering_domain(address, domains)
    host = address.rpartition("@")[2]
    if covering is None:
        raise CmdletError(
            f"The email address '{_clip(address)}' isn't valid: '{host}' is not an accepted "
            "domain of the organization. Add it with New-AcceptedDomain first."
        )
    if covering.domain_type not in RECIPIENT_DOMAIN_TYPES:
        raise CmdletError(
            f"The email address '{_clip(address)}' isn't valid: the accepted domain "
            f"'{covering.domain_name}' is {covering.domain_type}, and mailboxes can only have "
            "addresses in Authoritative or InternalRelay domains."
        )


def object_name(
    text: str, *, what: str = "Name", limit: int = MAX_NAME_LENGTH, wildcards: bool = False
) -> str:
    """A Name or DisplayName: trimmed, not empty, within ``limit``, no control characters.

    Names (identities) cannot hold ``*`` or ``?``, which Get-* cmdlets read as wildcards.
    """
    value = text.strip()
    if not value:
        raise CmdletError(f"The {what} cannot be empty.")
    if len(value) > limit:
        raise CmdletError(f"The {what} '{_clip(value)}' is longer than {limit} characters.")
    if not value.isprintable():
        raise CmdletError(f"The {what} '{_clip(value)}' contains control characters.")
    if not wildcards and ("*" in value or "?" in value):
        raise CmdletError(
            f"The {what} '{_clip(value)}' cannot contain '*' or '?' (they are wildcards)."
        )
    return value


def sam_account_name(text: str) -> str:
    """Validate a pre-Windows 2000 logon name (used for ``DOMAIN\\user`` logins)."""
    value = object_name(text, what="SamAccountName", limit=MAX_SAM_LENGTH)
    bad = sorted(set(value) & _SAM_FORBIDDEN)
    if bad or value.endswith("."):
        raise CmdletError(
            f"The SamAccountName '{_clip(value)}' is not valid: it cannot contain "
            f"{' '.join(sorted(_SAM_FORBIDDEN))} or end with '.'."
        )
    return value


def derive_sam_account_name(name: str) -> str:
    """Exchange-style default: the Name without forbidden characters, cut to 20."""
    cleaned = "".join(ch for ch in name if ch not in _SAM_FORBIDDEN and not ch.isspace())
    cleaned = cleaned[:MAX_SAM_LENGTH].rstrip(".")
    if not cleaned:
        raise CmdletError(
            f"No logon name can be derived from the Name '{_clip(name)}'; give -SamAccountName."
        )
    return cleaned


def password(text: str) -> str:
    """Check a new password's length; the value itself never appears in a message."""
    if len(text) < MIN_PASSWORD_LENGTH:
        raise CmdletError(f"The password must be at least {MIN_PASSWORD_LENGTH} characters long.")
    if len(text) > MAX_PASSWORD_LENGTH:
        raise CmdletError(f"The password must be at most {MAX_PASSWORD_LENGTH} characters long.")
    if "\0" in text:
        raise CmdletError("The password cannot contain a NUL character.")
    return text


def is_local_part(text: str) -> bool:
    """True when ``text`` can be used as the part before '@' of an address."""
    return len(text.encode()) <= MAX_LOCAL_PART and bool(_DOT_ATOM.match(text))
