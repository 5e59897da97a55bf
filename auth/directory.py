"""The Directory seam: where accounts are looked up and passwords checked.

Role: an async, protocol-neutral view of user accounts. The local directory (accounts
in the store) and the LDAP directory implement it. A directory knows nothing of SMTP,
IMAP or HTTP, nor of throttling, caching or auditing: that is the AuthService's job,
once for every directory.

Invariants:
- ``lookup`` never raises for an unknown or foreign name: it answers ``None``.
- ``verify_password`` does the same amount of work whether or not the password
  matches; it is only called with an account ``lookup`` returned. For unknown users
  the AuthService does comparable work itself (a dummy verification), so the reply
  and its timing do not tell the two apart.
- Names reaching a directory have passed ``auth.names.parse_login``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from auth.names import LoginName


@dataclass(frozen=True)
class Account:
    """One account as a directory sees it (enough to build a Principal and decide).

    ``credential_version`` changes whenever the password (or NT hash) changes, on every
    node; the credential cache is only trusted while it is unchanged. ``enabled`` is
    False for a disabled account (authentication then always fails). The ``*_enabled``
    flags are the per-protocol switches of Set-CASMailbox, read by ``auth.policy``.
    """

    mailbox_id: int
    name: str                 # DOMAIN\\user when a NetBIOS domain is known, else the UPN
    user_principal_name: str
    primary_smtp_address: str
    display_name: str
    credential_version: int
    has_password: bool
    enabled: bool = True
    owa_enabled: bool = True
    activesync_enabled: bool = True
    imap_enabled: bool = True
    pop_enabled: bool = True
    smtp_submission_enabled: bool = True
    # The stored hash, for directories that keep one (local); None for LDAP. Private to
    # the directory that produced the Account; never logged (repr=False).
    password_hash: str | None = field(default=None, repr=False, compare=False)
    # Directory groups the account belongs to (LDAP memberOf), added to the
    # Principal's well-known groups.
    groups: frozenset[str] = frozenset()
    # The directory's own reference to the account (the LDAP entry's DN); private to
    # the directory that produced the Account.
    directory_key: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class PasswordCheck:
    """Outcome of a password verification.

    ``credential_version`` is set when the check itself changed the account's
    credential version (the local directory upgraded the stored hash), so the cache
    can record the version the next lookup will see.
    """

    ok: bool
    credential_version: int | None = None


class Directory(Protocol):
    """Async account lookup and password verification."""

    name: str  # "local", "ldap": for the audit trail and logs

    async def lookup(self, login: LoginName) -> Account | None:
        """The account ``login`` names, or ``None`` (unknown user or foreign domain)."""
        ...

    async def verify_password(self, account: Account, password: str) -> PasswordCheck:
        """Check ``password`` for ``account``. CPU- or network-bound work runs off the
        event loop. Never raises for a wrong password."""
        ...

    async def dummy_verify(self, password: str) -> None:
        """Do the work ``verify_password`` would do, for a user who does not exist."""
        ...


class NtHashDirectory(Protocol):
    """Optional capability of a directory: NT hashes for NTLM (MS-NLMP §3.3.2).

    The AuthService asks for it by attribute; a directory without it cannot serve
    NTLM. An NT hash is a password equivalent: whoever reads it can authenticate.
    """

    async def lookup_nt_hash(self, account: Account) -> bytes | None:
        """The 16-octet NT hash of ``account`` when NTLM is enabled for it, else None."""
        ...
