"""Per-protocol enablement of a mailbox (Exchange Set-CASMailbox).

Role: decide whether a mailbox may use a client protocol at all. The full
per-protocol policy (login types, TLS requirements, authentication methods per virtual
directory) arrives in a later issue; this is the seam it will grow from.
Invariant: fails closed: an unknown protocol name is not allowed.
"""

from __future__ import annotations

from typing import Literal, Protocol

ClientProtocol = Literal["smtp", "imap", "pop3", "owa", "activesync"]
CLIENT_PROTOCOLS: frozenset[str] = frozenset({"smtp", "imap", "pop3", "owa", "activesync"})


class ProtocolFlags(Protocol):
    """The Set-CASMailbox switches (``gateway.store.models.Mailbox`` and
    ``auth.directory.Account`` both have them)."""

    @property
    def owa_enabled(self) -> bool: ...
    @property
    def activesync_enabled(self) -> bool: ...
    @property
    def imap_enabled(self) -> bool: ...
    @property
    def pop_enabled(self) -> bool: ...
    @property
    def smtp_submission_enabled(self) -> bool: ...


def protocol_allowed(mailbox: ProtocolFlags, protocol: str) -> bool:
    """True when ``mailbox`` may authenticate to ``protocol``."""
    if protocol == "smtp":
        return mailbox.smtp_submission_enabled
    if protocol == "imap":
        return mailbox.imap_enabled
    if protocol == "pop3":
        return mailbox.pop_enabled
    if protocol == "owa":
        return mailbox.owa_enabled
    if protocol == "activesync":
        return mailbox.activesync_enabled
    return False
