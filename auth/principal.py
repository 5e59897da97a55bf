"""Who a session acts as, once authentication is over.

Role: the single identity object every protocol and every policy decision receives.
Invariants: immutable; anonymous is exactly ``NT AUTHORITY\\ANONYMOUS LOGON`` with no
mailbox; every authenticated principal carries a mailbox id and belongs to
``NT AUTHORITY\\Authenticated Users`` (the group Exchange grants receive-connector and
client-access rights to).
"""

from __future__ import annotations

from dataclasses import dataclass, field

ANONYMOUS_LOGON = "NT AUTHORITY\\ANONYMOUS LOGON"
AUTHENTICATED_USERS = "NT AUTHORITY\\Authenticated Users"
EVERYONE = "Everyone"


@dataclass(frozen=True)
class Principal:
    """An authenticated user or the anonymous logon.

    ``name`` is the Windows-style account name (``DOMAIN\\user`` when the organisation
    has a NetBIOS domain, else the user principal name); ``login_name`` is the user
    principal name; ``groups`` holds the well-known groups the principal belongs to.
    """

    name: str
    groups: frozenset[str] = field(default_factory=frozenset)
    mailbox_id: int | None = None
    primary_smtp_address: str | None = None
    display_name: str = ""
    login_name: str = ""

    @property
    def is_anonymous(self) -> bool:
        return self.mailbox_id is None

    @classmethod
    def for_mailbox(cls, *, mailbox_id: int, name: str, login_name: str,
                    primary_smtp_address: str, display_name: str,
                    extra_groups: frozenset[str] = frozenset()) -> Principal:
        """An authenticated principal for a mailbox (adds the well-known groups)."""
        return cls(name=name, mailbox_id=mailbox_id, login_name=login_name,
                   primary_smtp_address=primary_smtp_address, display_name=display_name,
                   groups=frozenset({EVERYONE, AUTHENTICATED_USERS}) | extra_groups)

    def __str__(self) -> str:
        return self.name


ANONYMOUS = Principal(name=ANONYMOUS_LOGON, groups=frozenset({EVERYONE, ANONYMOUS_LOGON}),
                      display_name="Anonymous")
