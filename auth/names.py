"""Login-name parsing: ``user@domain``, ``DOMAIN\\user`` or a bare ``user``.

Role: the one syntactic gate every login name passes before any directory (local store,
LDAP) sees it. Security reference A4: NUL, CR, LF and other control characters and
over-long names are refused here, so no backend has to be trusted with them.

Invariants: a ``LoginName`` is always well-formed: its ``user`` is non-empty, at most
``MAX_USER_LENGTH`` characters, free of control/format characters and of surrounding
white space (a UPN's local part may hold ``+``, ``.``, ``'`` and the like); ``domain``
is ``None`` only for a bare name that had no default domain to apply. Parsing is pure;
it does not decide whether the domain is one of ours (the directory does).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

from auth.errors import LoginNameError

#: Longest login name accepted as a whole (an SMTP address is at most 254 octets
#: in practice, RFC 5321 §4.5.3.1.3; UPNs fit the same bound).
MAX_LOGIN_LENGTH = 320
#: Longest user part (local part of a UPN, or the account of DOMAIN\user).
MAX_USER_LENGTH = 256
#: Longest domain part (RFC 1035 §2.3.4: 255 octets for a DNS name).
MAX_DOMAIN_LENGTH = 255

LoginForm = Literal["upn", "downlevel", "bare"]

# Unicode categories refused anywhere in a name: controls (Cc, includes NUL/CR/LF/TAB),
# format characters (Cf: zero-width and bidi overrides that make names look alike),
# line/paragraph separators, unassigned code points and surrogates.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cn", "Cs"})
# Characters that may never appear in a domain part (DNS or NetBIOS name).
_REFUSED_DOMAIN_CHARS = frozenset(' \t\\/"<>()[]:;,@|=+*?')


@dataclass(frozen=True)
class LoginName:
    """A parsed login name.

    ``form`` says how it was written: ``upn`` (``user@domain``), ``downlevel``
    (``DOMAIN\\user``, domain is the NetBIOS name) or ``bare`` (``user``, ``domain`` is
    the default domain applied, or ``None``). ``raw`` is the name as given (validated).
    """

    raw: str
    form: LoginForm
    user: str
    domain: str | None

    @property
    def address(self) -> str | None:
        """``user@domain`` for the upn and bare forms with a domain, else ``None``."""
        if self.form == "downlevel" or self.domain is None:
            return None
        return f"{self.user}@{self.domain}"

    @property
    def normalised(self) -> str:
        """A case-folded canonical spelling, for cache and throttle keys."""
        if self.form == "downlevel":
            return f"{(self.domain or '').casefold()}\\{self.user.casefold()}"
        if self.domain is None:
            return self.user.casefold()
        return f"{self.user.casefold()}@{self.domain.casefold()}"


def _check_part(value: str, what: str, limit: int, *, domain: bool = False) -> None:
    if not value:
        raise LoginNameError(f"{what} is empty")
    if len(value) > limit:
        raise LoginNameError(f"{what} is longer than {limit} characters")
    if value != value.strip():
        raise LoginNameError(f"{what} begins or ends with white space")
    for ch in value:
        if unicodedata.category(ch) in _REFUSED_CATEGORIES or (
                domain and ch in _REFUSED_DOMAIN_CHARS):
            raise LoginNameError(f"{what} contains a forbidden character (U+{ord(ch):04X})")


def parse_login(raw: str, *, default_domain: str | None = None) -> LoginName:
    """Parse ``raw`` into a ``LoginName`` or raise ``LoginNameError``.

    ``DOMAIN\\user`` (down-level logon name) splits at the backslash; ``user@domain``
    (user principal name) splits at the last ``@``; anything else is a bare user name
    that takes ``default_domain`` (if given) as its domain.
    """
    if not isinstance(raw, str):
        raise LoginNameError("login name is not text")
    if not raw:
        raise LoginNameError("login name is empty")
    if len(raw) > MAX_LOGIN_LENGTH:
        raise LoginNameError(f"login name is longer than {MAX_LOGIN_LENGTH} characters")
    if "\\" in raw:
        domain, _, user = raw.partition("\\")
        _check_part(domain, "domain", MAX_DOMAIN_LENGTH, domain=True)
        _check_part(user, "user name", MAX_USER_LENGTH)
        if "\\" in user:
            raise LoginNameError("more than one backslash in DOMAIN\\user")
        return LoginName(raw=raw, form="downlevel", user=user, domain=domain)
    if "@" in raw:
        user, _, domain = raw.rpartition("@")
        _check_part(user, "user name", MAX_USER_LENGTH)
        _check_part(domain, "domain", MAX_DOMAIN_LENGTH, domain=True)
        if domain.startswith(".") or domain.endswith(".") or ".." in domain:
            raise LoginNameError("domain is not a valid domain name")
        return LoginName(raw=raw, form="upn", user=user, domain=domain)
    _check_part(raw, "user name", MAX_USER_LENGTH)
    if default_domain is not None:
        _check_part(default_domain, "default domain", MAX_DOMAIN_LENGTH, domain=True)
    return LoginName(raw=raw, form="bare", user=raw, domain=default_domain or None)
