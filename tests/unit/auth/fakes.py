"""Test doubles for the auth unit tests: a directory and a store.org stand-in."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from auth.directory import Account, PasswordCheck
from auth.names import LoginName


class FakeDirectory:
    """Accounts in a dict; passwords compared in clear; counts every verification."""

    name = "fake"

    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.passwords: dict[int, str] = {}
        self.verifications = 0
        self.dummy_verifications = 0
        self.lookups: list[str] = []
        self._ids = itertools.count(1)

    def add(self, login: str, password: str, **flags: Any) -> Account:
        mailbox_id = next(self._ids)
        account = Account(mailbox_id=mailbox_id, name=f"EXAMPLE\\{login.split('@')[0]}",
                          user_principal_name=login, primary_smtp_address=login,
                          display_name=login.split("@")[0].title(), credential_version=1,
                          has_password=True, **flags)
        self.accounts[login.casefold()] = account
        self.passwords[mailbox_id] = password
        return account

    def change_password(self, login: str, password: str) -> None:
        account = self.accounts[login.casefold()]
        self.accounts[login.casefold()] = replace(
            account, credential_version=account.credential_version + 1)
        self.passwords[account.mailbox_id] = password

    def set_flags(self, login: str, **flags: Any) -> None:
        self.accounts[login.casefold()] = replace(self.accounts[login.casefold()], **flags)

    async def lookup(self, login: LoginName) -> Account | None:
        self.lookups.append(login.raw)
        key = login.address or login.user
        return self.accounts.get(key.casefold())

    async def verify_password(self, account: Account, password: str) -> PasswordCheck:
        self.verifications += 1
        await asyncio.sleep(0.001)  # hashing runs in a thread: other tasks interleave
        return PasswordCheck(ok=self.passwords.get(account.mailbox_id) == password)

    async def dummy_verify(self, password: str) -> None:
        self.dummy_verifications += 1
        await asyncio.sleep(0.001)


class Clock:
    """A settable wall clock and a sleep that only records."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


@dataclass(frozen=True)
class FakeMailbox:
    id: int
    name: str
    primary_smtp_address: str
    user_principal_name: str
    sam_account_name: str
    password_hash: str | None
    display_name: str = ""
    email_addresses: tuple[str, ...] = ()
    credential_version: int = 1
    owa_enabled: bool = True
    activesync_enabled: bool = True
    imap_enabled: bool = True
    pop_enabled: bool = True
    smtp_submission_enabled: bool = True
    nt_hash: bytes | None = None
    ntlm_enabled: bool = False
    source: str = "local"
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class FakeDomain:
    name: str
    domain_name: str
    is_default: bool


class FakeOrg:
    """The subset of store.org the local directory uses, in memory."""

    def __init__(self) -> None:
        self.mailboxes: dict[int, FakeMailbox] = {}
        self.settings: dict[str, dict[str, object]] = {"organization": {}}
        self.domains: list[FakeDomain] = []
        self.updates: list[tuple[int, dict[str, Any]]] = []

    def add(self, mb: FakeMailbox) -> None:
        self.mailboxes[mb.id] = mb

    async def find_mailbox_for_login(self, *, address: str | None = None,
                                     account: str | None = None) -> FakeMailbox | None:
        for mb in self.mailboxes.values():
            if address is not None and address.casefold() in {
                    a.casefold() for a in (mb.user_principal_name, mb.primary_smtp_address,
                                           *mb.email_addresses)}:
                return mb
            if account is not None and account.casefold() == mb.sam_account_name.casefold():
                return mb
        return None

    async def get_mailbox_by_id(self, id: int) -> FakeMailbox:
        return self.mailboxes[id]

    async def update_mailbox(self, id: int, **changes: Any) -> FakeMailbox:
        self.updates.append((id, changes))
        mb = self.mailboxes[id]
        if "password_hash" in changes:
            changes["credential_version"] = mb.credential_version + 1
        self.mailboxes[id] = replace(mb, **changes)
        return self.mailboxes[id]

    async def get_settings(self, section: str) -> dict[str, object]:
        return dict(self.settings.get(section, {}))

    async def list_accepted_domains(self) -> list[FakeDomain]:
        return list(self.domains)
