"""Frozen dataclasses the store returns (docs/dev/interfaces.md, docs/store.md).

Organisation and auth-state models are fixed by docs/dev/interfaces.md; the mail models
are the store's own and documented in docs/store.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

DomainType = Literal["Authoritative", "InternalRelay", "ExternalRelay"]
DOMAIN_TYPES: tuple[str, ...] = ("Authoritative", "InternalRelay", "ExternalRelay")
CERTIFICATE_KINDS: tuple[str, ...] = ("rfc822", "upn", "subject", "thumbprint")


@dataclass(frozen=True)
class AcceptedDomain:
    id: int
    name: str
    domain_name: str
    domain_type: DomainType
    is_default: bool


@dataclass(frozen=True)
class Mailbox:
    id: int
    name: str
    display_name: str
    primary_smtp_address: str
    email_addresses: tuple[str, ...]
    user_principal_name: str
    sam_account_name: str
    password_hash: str | None
    nt_hash: bytes | None
    ntlm_enabled: bool
    owa_enabled: bool
    activesync_enabled: bool
    imap_enabled: bool
    pop_enabled: bool
    smtp_submission_enabled: bool
    credential_version: int
    source: str
    created_at: datetime


@dataclass(frozen=True)
class FailureCounter:
    key: str
    count: int
    first_failure: float
    last_failure: float
    locked_until: float


@dataclass(frozen=True)
class AuthAuditEvent:
    at: float
    event: str
    protocol: str
    mechanism: str
    login: str
    mailbox_id: int | None
    source_ip: str
    outcome: str
    reason: str


# -- mail ----------------------------------------------------------------------------

SpecialUse = Literal["inbox", "drafts", "sent", "deleted", "junk", "outbox"]

# The default folders every mailbox gets, with their display names (Exchange's) and
# the RFC 6154 special-use attribute IMAP advertises for them.
DEFAULT_FOLDERS: tuple[tuple[SpecialUse, str, str | None], ...] = (
    ("inbox", "Inbox", None),
    ("drafts", "Drafts", "\\Drafts"),
    ("sent", "Sent Items", "\\Sent"),
    ("deleted", "Deleted Items", "\\Trash"),
    ("junk", "Junk Email", "\\Junk"),
    ("outbox", "Outbox", None),
)

HIERARCHY_DELIMITER = "/"


@dataclass(frozen=True)
class Folder:
    id: int
    mailbox_id: int
    parent_id: int | None
    name: str  # leaf name
    full_name: str  # path with HIERARCHY_DELIMITER, e.g. "Inbox/Projects"
    special_use: SpecialUse | None
    uidvalidity: int  # RFC 9051 §2.3.1.1
    uidnext: int
    highest_modseq: int  # RFC 7162 §3.1.2.1
    message_count: int
    unseen_count: int
    total_size: int
    subscribed: bool


# System flags as a bitmask (RFC 9051 §2.3.2); keywords are stored separately.
SYSTEM_FLAGS: dict[str, int] = {
    "\\seen": 1,
    "\\answered": 2,
    "\\flagged": 4,
    "\\deleted": 8,
    "\\draft": 16,
}
FLAG_NAMES: dict[int, str] = {1: "\\Seen", 2: "\\Answered", 4: "\\Flagged", 8: "\\Deleted",
                              16: "\\Draft"}
SEEN = 1
DELETED = 8


@dataclass(frozen=True)
class Message:
    id: int  # stable across the message's life in its folder (ActiveSync ServerId)
    mailbox_id: int
    folder_id: int
    uid: int
    content_id: int
    flags: int  # SYSTEM_FLAGS bitmask
    keywords: tuple[str, ...]
    internal_date: float  # unix seconds
    size: int
    modseq: int
    summary_json: str | None = None  # only when fetched with with_summary=True

    @property
    def flag_names(self) -> tuple[str, ...]:
        """System flags then keywords, as IMAP writes them."""
        names = [name for bit, name in FLAG_NAMES.items() if self.flags & bit]
        return (*names, *self.keywords)

    @property
    def seen(self) -> bool:
        return bool(self.flags & SEEN)


@dataclass(frozen=True)
class MessageHeaderFields:
    """The denormalised search/list columns of a message's content (for the web)."""

    subject: str
    from_: str
    to: str
    cc: str
    message_id: str
    date: float | None
    preview: str
    has_attachments: bool


@dataclass(frozen=True)
class FlagUpdate:
    """Result of ``store_flags``: what changed, and what UNCHANGEDSINCE refused."""

    updated: tuple[Message, ...]
    modified: tuple[int, ...]  # RFC 7162 §3.1.3: UIDs failing the UNCHANGEDSINCE test


@dataclass(frozen=True)
class CopyResult:
    """RFC 4315 COPYUID / RFC 6851 MOVE: destination UIDVALIDITY and UID pairs."""

    uidvalidity: int
    pairs: tuple[tuple[int, int], ...]  # (source uid, destination uid)


ChangeKind = Literal["folder_created", "folder_renamed", "folder_deleted", "message_added",
                     "flags_changed", "expunged"]


@dataclass(frozen=True)
class Change:
    """One change-feed row. ``modseq`` orders the feed of one mailbox; all rows of one
    transaction share it."""

    id: int
    mailbox_id: int
    modseq: int
    folder_id: int
    kind: ChangeKind
    uid: int | None
    message_id: int | None
    detail: str | None  # folder full name for folder changes
    at: float


@dataclass(frozen=True)
class DeliveredTo:
    mailbox_id: int
    folder_id: int
    uid: int
    message_id: int


@dataclass(frozen=True)
class DeliveryResult:
    content_sha256: str
    size: int
    recipients: tuple[DeliveredTo, ...]


@dataclass(frozen=True)
class SyncState:
    """ActiveSync per-(mailbox, device, collection) state (MS-ASCMD 2.2.3.166)."""

    mailbox_id: int
    device_id: str
    collection_id: str
    sync_key: str
    state: bytes
    updated_at: float
