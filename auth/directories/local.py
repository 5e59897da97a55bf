"""The local directory: accounts are the store's mailboxes.

Role: resolve login names against ``store.org`` and verify passwords against the
mailbox's passlib hash (argon2id), off the event loop.

Name resolution (docs/authentication.md, "Login names"):
- ``user@domain``: a mailbox whose UPN, primary or further SMTP address it is.
- ``DOMAIN\\user``: DOMAIN must be the organisation's NetBIOS domain (setting
  ``organization.netbios_domain``; else the first label of the default accepted
  domain) or one of the accepted domain names; ``user`` is the sAMAccountName.
- bare ``user``: the sAMAccountName first, then ``user@<default domain>`` (the domain
  parse_login applied, else the default accepted domain).

Invariants: unknown names answer ``None`` (never an exception); organisation settings
are re-read at most every ``settings_ttl`` seconds, so an admin change takes effect on
every node within that time without a restart; a password hash is never logged.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from auth.directory import Account, PasswordCheck
from auth.hashing import HashRunner
from auth.names import LoginName
from gateway.errors import GatewayError, ValidationError
from gateway.store.models import AcceptedDomain, Mailbox

if TYPE_CHECKING:  # the store imports the connector policy, which imports auth
    from gateway.store.org import OrgStore

log = logging.getLogger("auth.directory.local")




class LocalDirectory:
    """``Directory`` over the store's mailboxes."""

    name = "local"

    def __init__(self, org: OrgStore, hasher: HashRunner, *,
                 settings_ttl: float = 10.0) -> None:
        self._org = org
        self._hasher = hasher
        self._settings_ttl = settings_ttl
        self._settings_at = float("-inf")
        self._netbios: str | None = None
        self._domains: frozenset[str] = frozenset()
        self._default_domain: str | None = None

    async def _refresh_settings(self) -> None:
        now = time.monotonic()
        if now - self._settings_at < self._settings_ttl:
            return
        settings = await self._org.get_settings("organization")
        domains: list[AcceptedDomain] = list(await self._org.list_accepted_domains())
        default = next((d.domain_name for d in domains if d.is_default), None)
        netbios = settings.get("netbios_domain")
        if not isinstance(netbios, str) or not netbios:
            netbios = default.split(".")[0].upper()[:15] if default else None
        self._netbios = netbios
        self._domains = frozenset(d.domain_name.casefold() for d in domains
                                  if not d.domain_name.startswith("*"))
        self._default_domain = default
        self._settings_at = now

    def _to_account(self, mb: Mailbox) -> Account:
        name = f"{self._netbios}\\{mb.sam_account_name}" if self._netbios \
            else mb.user_principal_name
        return Account(
            mailbox_id=mb.id, name=name, user_principal_name=mb.user_principal_name,
            primary_smtp_address=mb.primary_smtp_address, display_name=mb.display_name,
            credential_version=mb.credential_version,
            has_password=mb.password_hash is not None,
            # The store's Mailbox has no account-disabled flag yet: every mailbox is
            # enabled. Map it here when the store grows one.
            enabled=True,
            owa_enabled=mb.owa_enabled, activesync_enabled=mb.activesync_enabled,
            imap_enabled=mb.imap_enabled, pop_enabled=mb.pop_enabled,
            smtp_submission_enabled=mb.smtp_submission_enabled,
            password_hash=mb.password_hash,
        )

    async def lookup(self, login: LoginName) -> Account | None:
        await self._refresh_settings()
        try:
            mailbox = await self._find(login)
        except ValidationError:
            return None  # the store refuses the name's shape: no such account
        return None if mailbox is None else self._to_account(mailbox)

    async def _find(self, login: LoginName) -> Mailbox | None:
        mailbox: Mailbox | None = None
        if login.form == "upn":
            mailbox = await self._org.find_mailbox_for_login(address=login.raw)
        elif login.form == "downlevel":
            domain = (login.domain or "").casefold()
            ours = (self._netbios is not None and domain == self._netbios.casefold()) \
                or domain in self._domains
            if ours:
                mailbox = await self._org.find_mailbox_for_login(account=login.user)
        else:
            mailbox = await self._org.find_mailbox_for_login(account=login.user)
            domain_for_bare = login.domain or self._default_domain
            if mailbox is None and domain_for_bare:
                mailbox = await self._org.find_mailbox_for_login(
                    address=f"{login.user}@{domain_for_bare}")
        return mailbox

    async def verify_password(self, account: Account, password: str) -> PasswordCheck:
        if account.password_hash is None:
            await self._hasher.dummy_verify(password)  # same work as a real check
            return PasswordCheck(ok=False)
        ok, new_hash = await self._hasher.verify(password, account.password_hash)
        if ok and new_hash:
            return PasswordCheck(ok=True, credential_version=await self._rehash(account,
                                                                                new_hash))
        return PasswordCheck(ok=ok)

    async def dummy_verify(self, password: str) -> None:
        await self._hasher.dummy_verify(password)

    async def lookup_nt_hash(self, account: Account) -> bytes | None:
        """The mailbox's NT hash (MS-NLMP NTOWFv1) when NTLM is enabled for it, else
        None. Read fresh from the store: Set-Mailbox -NtlmEnabled $false takes effect
        at once on every node."""
        mailbox: Any = await self._org.get_mailbox_by_id(account.mailbox_id)
        if not getattr(mailbox, "ntlm_enabled", False):
            return None
        value = getattr(mailbox, "nt_hash", None)
        return bytes(value) if isinstance(value, (bytes, bytearray, memoryview)) else None

    async def _rehash(self, account: Account, new_hash: str) -> int | None:
        """Store an upgraded hash, unless the password changed meanwhile; the new
        credential version, or None when nothing was stored.

        The read-compare-update leaves a window of one store round trip in which an
        administrator's password change could be overwritten by the old password's
        upgraded hash; it only opens when the hash parameters change.
        """
        try:
            current: Mailbox = await self._org.get_mailbox_by_id(account.mailbox_id)
            if current.credential_version != account.credential_version:
                return None  # changed since we looked: never overwrite a new password
            updated: Mailbox = await self._org.update_mailbox(account.mailbox_id,
                                                                   password_hash=new_hash)
            log.info("upgraded the password hash parameters of mailbox %d",
                     account.mailbox_id)
            return updated.credential_version
        except GatewayError as exc:  # the login itself still succeeds
            log.warning("could not store the upgraded hash of mailbox %d: %s",
                        account.mailbox_id, type(exc).__name__)
            return None
