"""An in-memory stand-in for ``store.org`` (docs/dev/interfaces.md), for unit tests only.

It keeps the rules the cmdlets rely on: names unique case-insensitively, every address
(primary, further, UPN) unique across mailboxes, the first accepted domain is the
default, the default cannot be removed while others exist, changing a password or NT
hash bumps credential_version. tests/integration/test_admin_store.py runs the same
cmdlets against the real store.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.errors import AlreadyExists, NotFound, ValidationError


@dataclass(frozen=True)
class FakeDomain:
    id: int
    name: str
    domain_name: str
    domain_type: str
    is_default: bool


@dataclass(frozen=True)
class FakeMailbox:
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
    owa_enabled: bool = True
    activesync_enabled: bool = True
    imap_enabled: bool = True
    pop_enabled: bool = True
    smtp_submission_enabled: bool = True
    credential_version: int = 1
    source: str = "local"
    created_at: datetime = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class FakeOrg:
    def __init__(self) -> None:
        self.domains: dict[int, FakeDomain] = {}
        self.mailboxes: dict[int, FakeMailbox] = {}
        self.next_id = 1
        self.writes = 0
        self.settings: dict[str, dict[str, object]] = {}

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    # -- accepted domains
    async def list_accepted_domains(self) -> list[FakeDomain]:
        return sorted(self.domains.values(), key=lambda d: d.name.casefold())

    async def get_accepted_domain(self, identity: str) -> FakeDomain:
        for d in self.domains.values():
            if identity.casefold() in (d.name.casefold(), d.domain_name):
                return d
        raise NotFound(f"accepted domain {identity!r} not found")

    async def create_accepted_domain(self, name: str, domain_name: str,
                                     domain_type: str = "Authoritative") -> FakeDomain:
        for d in self.domains.values():
            if d.name.casefold() == name.casefold() or d.domain_name == domain_name.lower():
                raise AlreadyExists(f"accepted domain {d.name} already has that name or domain")
        new = FakeDomain(self._id(), name, domain_name.lower(), domain_type,
                         not self.domains)
        self.domains[new.id] = new
        self.writes += 1
        return new

    async def update_accepted_domain(self, id: int, **changes: Any) -> FakeDomain:
        if id not in self.domains:
            raise NotFound(f"accepted domain {id} not found")
        make_default = changes.pop("make_default", None)
        current = dataclasses.replace(self.domains[id], **changes)
        if make_default:
            for other in list(self.domains.values()):
                self.domains[other.id] = dataclasses.replace(other, is_default=False)
            current = dataclasses.replace(current, is_default=True)
        self.domains[id] = current
        self.writes += 1
        return current

    async def delete_accepted_domain(self, id: int) -> None:
        d = self.domains.get(id)
        if d is None:
            raise NotFound(f"accepted domain {id} not found")
        if d.is_default and len(self.domains) > 1:
            raise ValidationError("the default accepted domain cannot be removed while "
                                  "other domains exist; make another one the default")
        del self.domains[id]
        self.writes += 1

    # -- mailboxes
    async def list_mailboxes(self) -> list[FakeMailbox]:
        return sorted(self.mailboxes.values(), key=lambda m: m.name.casefold())

    async def get_mailbox(self, identity: str) -> FakeMailbox:
        key = identity.casefold()
        for m in self.mailboxes.values():
            if key == m.name.casefold() or key in self._addresses(m) or key == str(m.id):
                return m
        raise NotFound(f"mailbox {identity!r} not found")

    async def find_mailbox_by_address(self, address: str) -> FakeMailbox | None:
        key = address.casefold()
        for m in self.mailboxes.values():
            if key in {a.casefold() for a in (m.primary_smtp_address, *m.email_addresses)}:
                return m
        return None

    @staticmethod
    def _addresses(m: FakeMailbox) -> set[str]:
        return {a.casefold() for a in (m.primary_smtp_address, *m.email_addresses,
                                       m.user_principal_name)}

    def _check_unique(self, m: FakeMailbox) -> None:
        for other in self.mailboxes.values():
            if other.id == m.id:
                continue
            if other.name.casefold() == m.name.casefold():
                raise AlreadyExists(f"a mailbox named {other.name} already exists")
            clash = self._addresses(m) & self._addresses(other)
            if clash:
                raise AlreadyExists(f"address {sorted(clash)[0]} is already used by mailbox "
                                    f"{other.name}")
        if m.nt_hash is not None and not m.ntlm_enabled:
            raise ValidationError("an nt hash is kept only for mailboxes with NTLM enabled")

    async def create_mailbox(self, *, name: str, primary_smtp_address: str,
                             display_name: str | None = None,
                             user_principal_name: str | None = None,
                             sam_account_name: str | None = None,
                             email_addresses: tuple[str, ...] = (),
                             password_hash: str | None = None, nt_hash: bytes | None = None,
                             ntlm_enabled: bool = False, source: str = "local") -> FakeMailbox:
        new = FakeMailbox(
            id=self._id(), name=name, display_name=display_name or name,
            primary_smtp_address=primary_smtp_address,
            email_addresses=tuple(email_addresses),
            user_principal_name=user_principal_name or primary_smtp_address,
            sam_account_name=sam_account_name or name, password_hash=password_hash,
            nt_hash=nt_hash, ntlm_enabled=ntlm_enabled, source=source,
        )
        self._check_unique(new)
        self.mailboxes[new.id] = new
        self.writes += 1
        return new

    async def update_mailbox(self, id: int, **changes: Any) -> FakeMailbox:
        cur = self.mailboxes.get(id)
        if cur is None:
            raise NotFound(f"mailbox {id} not found")
        new = dataclasses.replace(cur, **changes)
        if not new.ntlm_enabled and "nt_hash" not in changes:
            new = dataclasses.replace(new, nt_hash=None)
        if (new.password_hash, new.nt_hash) != (cur.password_hash, cur.nt_hash):
            new = dataclasses.replace(new, credential_version=cur.credential_version + 1)
        self._check_unique(new)
        self.mailboxes[id] = new
        self.writes += 1
        return new

    async def delete_mailbox(self, id: int) -> None:
        if id not in self.mailboxes:
            raise NotFound(f"mailbox {id} not found")
        del self.mailboxes[id]
        self.writes += 1

    # -- settings
    async def get_settings(self, section: str) -> dict[str, object]:
        return dict(self.settings.get(section, {}))

    async def set_settings(self, section: str, values: dict[str, object]) -> None:
        self.settings.setdefault(section, {}).update(values)  # merges, like the store
        self.writes += 1


class FakeStore:
    def __init__(self) -> None:
        self.org = FakeOrg()
