"""The LDAP directory: accounts in Active Directory or OpenLDAP, mailboxes in the store.

Role: ``Directory`` over an LDAP server. ``lookup`` searches the user, as the service
account, by mail, userPrincipalName, sAMAccountName or proxyAddresses (whichever of
``login_attributes`` apply to the login form), with every value escaped (RFC 4515 §3);
``verify_password`` binds as the user's DN with the password (RFC 4513 §5.1.3). The
entry's mail, proxyAddresses, memberOf, displayName map to a store mailbox
(``source="ldap"``, no password hash), created the first time a login names a
directory user and kept in step with the directory on later logins.

Names the directory does not know go to the ``fallback`` directory (the local one),
which then only answers for mailboxes whose ``source`` is ``"local"``: a mailbox
whose directory user was removed cannot log in.

Invariants:
- An empty password is refused before any bind: it would be an unauthenticated bind
  that servers report as success (RFC 4513 §5.1.2).
- Fail closed: when no LDAP server can be reached, every lookup raises
  ``AuthUnavailable`` (local accounts too, since LDAP is asked first) and the log
  says which servers failed and why.
- A search that matches more than one entry is ambiguous and resolves to nobody.
- LDAP calls run in the pool's threads (``auth.directories.ldap_pool``), never on the
  event loop. Passwords never reach a log.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import ldap
import ldap.dn
import ldap.filter

from auth.directories.ldap_pool import LdapPool
from auth.directory import Account, Directory, PasswordCheck
from auth.names import LoginName
from gateway.errors import AlreadyExists, ConfigError, ValidationError

if TYPE_CHECKING:  # the store imports the connector policy, which imports auth
    from gateway.store.org import OrgStore

log = logging.getLogger("auth.directory.ldap")

TlsMode = Literal["starttls", "ldaps", "none"]
LOGIN_ATTRIBUTES = ("mail", "userPrincipalName", "sAMAccountName", "proxyAddresses")

#: AD userAccountControl ACCOUNTDISABLE bit (MS-ADTS §2.2.16).
_UAC_ACCOUNTDISABLE = 0x2
_ATTRIBUTE = re.compile(r"\A[A-Za-z][A-Za-z0-9-]{0,63}\Z")
_MAX_TIMEOUT = 300.0
_MAX_POOL = 64


@dataclass(frozen=True)
class LdapSettings:
    """Node settings of the LDAP directory (table ``[ldap]`` of the node TOML).

    ``bind_password_file`` holds the service account's password (first line); without
    ``bind_dn`` searches are anonymous. ``tls``: ``starttls`` (ldap:// URIs, RFC 4513
    §3), ``ldaps`` (ldaps:// URIs) or ``none`` (clear text; only for a loopback or
    ldapi server). ``ca_file`` is the PEM bundle that signs the servers' certificates
    (default: the system's). ``user_filter`` restricts which entries are users.
    """

    uris: tuple[str, ...]
    base_dn: str
    bind_dn: str | None = None
    bind_password_file: str | None = None
    tls: TlsMode = "starttls"
    ca_file: str | None = None
    user_filter: str = "(objectClass=person)"
    login_attributes: tuple[str, ...] = LOGIN_ATTRIBUTES
    mail_attribute: str = "mail"
    display_name_attribute: str = "displayName"
    group_attribute: str = "memberOf"
    netbios_domain: str | None = None
    connect_timeout: float = 5.0
    operation_timeout: float = 10.0
    pool_size: int = 4
    max_pending: int = 256
    retry_after: float = 30.0

    def errors(self) -> list[str]:
        """Every problem with these settings (empty when valid)."""
        problems: list[str] = []
        if not self.uris:
            problems.append("ldap.uris: at least one URI is required")
        for uri in self.uris:
            scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
            if scheme not in ("ldap", "ldaps", "ldapi"):
                problems.append(f"ldap.uris: {uri!r} is not an ldap://, ldaps:// or "
                                "ldapi:// URI")
            elif self.tls == "ldaps" and scheme != "ldaps":
                problems.append(f"ldap.uris: tls = 'ldaps' needs ldaps:// URIs, not {uri!r}")
            elif self.tls == "starttls" and scheme != "ldap":
                problems.append(f"ldap.uris: tls = 'starttls' needs ldap:// URIs, not "
                                f"{uri!r}")
        if self.tls not in ("starttls", "ldaps", "none"):
            problems.append("ldap.tls: must be 'starttls', 'ldaps' or 'none'")
        if not self.base_dn or not ldap.dn.is_dn(self.base_dn):
            problems.append("ldap.base_dn: not a distinguished name")
        if self.bind_dn is not None and not ldap.dn.is_dn(self.bind_dn):
            problems.append("ldap.bind_dn: not a distinguished name")
        if self.bind_dn and not self.bind_password_file:
            problems.append("ldap.bind_password_file: required with bind_dn")
        if not (self.user_filter.startswith("(") and self.user_filter.endswith(")")):
            problems.append("ldap.user_filter: must be a parenthesised LDAP filter")
        unknown = set(self.login_attributes) - set(LOGIN_ATTRIBUTES)
        if unknown or not self.login_attributes:
            problems.append(f"ldap.login_attributes: a non-empty subset of "
                            f"{', '.join(LOGIN_ATTRIBUTES)}")
        for key in ("mail_attribute", "display_name_attribute", "group_attribute"):
            if not _ATTRIBUTE.match(getattr(self, key)):
                problems.append(f"ldap.{key}: not an attribute name")
        for key in ("connect_timeout", "operation_timeout", "retry_after"):
            value = getattr(self, key)
            if not 0 < value <= _MAX_TIMEOUT:
                problems.append(f"ldap.{key}: must be in (0, {_MAX_TIMEOUT:g}] seconds")
        if not 1 <= self.pool_size <= _MAX_POOL:
            problems.append(f"ldap.pool_size: must be 1..{_MAX_POOL}")
        if not 1 <= self.max_pending <= 10_000:
            problems.append("ldap.max_pending: must be 1..10000")
        return problems




@dataclass(frozen=True)
class DirectoryUser:
    """What an LDAP entry says about a user (values decoded, nothing trusted yet)."""

    dn: str
    mail: str | None
    proxy_addresses: tuple[str, ...]
    user_principal_name: str | None
    sam_account_name: str | None
    display_name: str | None
    groups: tuple[str, ...]
    disabled: bool
    password_stamp: str = field(default="", repr=False)

    def smtp_addresses(self) -> tuple[str | None, list[str]]:
        """(primary, further) SMTP addresses: ``mail``, else the ``SMTP:`` proxy
        address (upper-case prefix = primary, as Exchange marks it); the other
        ``smtp:`` proxy addresses are further addresses."""
        primary = self.mail
        further: list[str] = []
        for proxy in self.proxy_addresses:
            prefix, _, address = proxy.partition(":")
            if prefix.lower() != "smtp" or not address:
                continue
            if prefix == "SMTP" and primary is None:
                primary = address
            else:
                further.append(address)
        if primary is None:
            return None, []
        seen = {primary.casefold()}
        unique = []
        for address in further:
            if address.casefold() not in seen:
                seen.add(address.casefold())
                unique.append(address)
        return primary, unique


def _first(values: list[bytes] | None) -> str | None:
    if not values:
        return None
    try:
        text = values[0].decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    return text or None


def _all(values: list[bytes] | None) -> tuple[str, ...]:
    out = []
    for value in values or []:
        try:
            out.append(value.decode("utf-8").strip())
        except UnicodeDecodeError:
            continue
    return tuple(v for v in out if v)


def group_name(dn: str) -> str | None:
    """The group's name from its DN: the value of the first RDN (``CN=Sales,...``)."""
    try:
        rdns = ldap.dn.str2dn(dn)
    except ldap.DECODING_ERROR:
        return None
    return rdns[0][0][1] if rdns and rdns[0] else None


class LdapDirectory:
    """``Directory`` over LDAP, with a fallback directory for local mailboxes."""

    name = "ldap"

    def __init__(self, settings: LdapSettings, org: OrgStore, pool: LdapPool, *,
                 fallback: Directory | None = None, settings_ttl: float = 10.0) -> None:
        self.settings = settings
        self._org = org
        self._pool = pool
        self._fallback = fallback
        self._settings_ttl = settings_ttl
        self._settings_at = float("-inf")
        self._netbios: str | None = settings.netbios_domain
        self._domains: tuple[str, ...] = ()
        self._default_domain: str | None = None

    @classmethod
    async def open(cls, settings: LdapSettings, org: OrgStore, *,
                   fallback: Directory | None = None) -> LdapDirectory:
        """Validate ``settings``, read the bind password file, build the pool.

        Raises ``ConfigError`` listing every problem. Does not contact the server: a
        directory that is down at start only makes logins fail (closed) until it is up.
        """
        problems = settings.errors()
        password = ""
        if settings.bind_password_file and not problems:
            try:
                text = await asyncio.to_thread(
                    Path(settings.bind_password_file).read_text, encoding="utf-8")
                password = text.splitlines()[0] if text else ""
            except OSError as exc:
                problems.append(f"ldap.bind_password_file: cannot read it ({exc.strerror})")
            if settings.bind_dn and not password:
                problems.append("ldap.bind_password_file: empty (an empty password is "
                                "an unauthenticated bind, RFC 4513 §5.1.2)")
        if problems:
            raise ConfigError(problems)
        if settings.tls == "none":
            log.warning("LDAP directory %s is reached without TLS: passwords cross the "
                        "network in clear", ", ".join(settings.uris))
        pool = LdapPool(uris=settings.uris, tls=settings.tls, ca_file=settings.ca_file,
                        bind_dn=settings.bind_dn, bind_password=password,
                        connect_timeout=settings.connect_timeout,
                        operation_timeout=settings.operation_timeout,
                        pool_size=settings.pool_size, max_pending=settings.max_pending,
                        retry_after=settings.retry_after)
        return cls(settings, org, pool, fallback=fallback)

    async def close(self) -> None:
        await self._pool.close()

    # -- organisation settings --------------------------------------------------------

    async def _refresh_settings(self) -> None:
        now = time.monotonic()
        if now - self._settings_at < self._settings_ttl:
            return
        domains = list(await self._org.list_accepted_domains())
        self._domains = tuple(d.domain_name.casefold() for d in domains)
        self._default_domain = next((d.domain_name for d in domains if d.is_default), None)
        if not self.settings.netbios_domain:
            netbios = (await self._org.get_settings("organization")).get("netbios_domain")
            if not isinstance(netbios, str) or not netbios:
                netbios = self._default_domain.split(".")[0].upper()[:15] \
                    if self._default_domain else None
            self._netbios = netbios
        self._settings_at = now

    def _accepted(self, address: str) -> bool:
        domain = address.rpartition("@")[2].casefold()
        for accepted in self._domains:
            if accepted.startswith("*."):
                if domain.endswith(accepted[1:]):
                    return True
            elif domain == accepted:
                return True
        return False

    # -- lookup -------------------------------------------------------------------------

    def _filter(self, login: LoginName) -> str | None:
        """The search filter for ``login`` (RFC 4515, every value escaped)."""
        attrs = self.settings.login_attributes
        clauses: list[str] = []

        def eq(attr: str, value: str) -> None:
            if attr in attrs:
                clauses.append(f"({attr}={ldap.filter.escape_filter_chars(value)})")

        address: str | None = None
        if login.form == "upn":
            address = login.raw
        elif login.form == "downlevel":
            domain = (login.domain or "").casefold()
            if not (self._netbios and domain == self._netbios.casefold()) \
                    and domain not in self._domains:
                return None  # not our domain
            eq("sAMAccountName", login.user)
        else:
            eq("sAMAccountName", login.user)
            domain_for_bare = login.domain or self._default_domain
            if domain_for_bare:
                address = f"{login.user}@{domain_for_bare}"
        if address is not None:
            eq("mail", address)
            eq("userPrincipalName", address)
            eq("proxyAddresses", f"smtp:{address}")
        if not clauses:
            return None
        return f"(&{self.settings.user_filter}(|{''.join(clauses)}))"

    def _attributes(self) -> list[str]:
        s = self.settings
        return [s.mail_attribute, "proxyAddresses", "userPrincipalName", "sAMAccountName",
                s.display_name_attribute, "cn", s.group_attribute, "userAccountControl",
                "pwdLastSet", "pwdChangedTime"]

    async def search(self, login: LoginName) -> list[DirectoryUser]:
        """Directory users matching ``login`` (at most two: more is ambiguous)."""
        await self._refresh_settings()
        query = self._filter(login)
        if query is None:
            return []
        base, attrs = self.settings.base_dn, self._attributes()

        def run(conn: Any) -> list[tuple[str, dict[str, list[bytes]]]]:
            try:
                return list(conn.search_ext_s(base, ldap.SCOPE_SUBTREE, query, attrs,
                                              sizelimit=2))
            except ldap.SIZELIMIT_EXCEEDED:
                return [("", {}), ("", {})]  # more than one: ambiguous
            except ldap.NO_SUCH_OBJECT:
                log.error("LDAP base_dn %r does not exist", base)
                return []

        entries = await self._pool.run("search", run)
        return [self._user(dn, attributes) for dn, attributes in entries
                if isinstance(dn, str) and isinstance(attributes, dict)]  # no referrals

    def _user(self, dn: str, a: dict[str, list[bytes]]) -> DirectoryUser:
        s = self.settings
        uac = _first(a.get("userAccountControl"))
        disabled = bool(uac and uac.isdigit() and int(uac) & _UAC_ACCOUNTDISABLE)
        stamp = (_first(a.get("pwdLastSet")) or "") + "|" + (_first(a.get("pwdChangedTime"))
                                                            or "")
        return DirectoryUser(
            dn=dn, mail=_first(a.get(s.mail_attribute)),
            proxy_addresses=_all(a.get("proxyAddresses")),
            user_principal_name=_first(a.get("userPrincipalName")),
            sam_account_name=_first(a.get("sAMAccountName")),
            display_name=_first(a.get(s.display_name_attribute)) or _first(a.get("cn")),
            groups=tuple(g for g in map(group_name, _all(a.get(s.group_attribute))) if g),
            disabled=disabled, password_stamp=stamp)

    async def lookup(self, login: LoginName) -> Account | None:
        users = await self.search(login)
        if len(users) > 1:
            log.warning("LDAP login name %r matches several directory entries: refused",
                        login.raw[:80])
            return None
        if not users:
            return await self._fallback_lookup(login)
        user = users[0]
        if not user.dn:
            return None
        mailbox = await self._mailbox_for(user)
        return None if mailbox is None else self._account(user, mailbox)

    async def _fallback_lookup(self, login: LoginName) -> Account | None:
        if self._fallback is None:
            return None
        account = await self._fallback.lookup(login)
        if account is None:
            return None
        mailbox = await self._org.get_mailbox_by_id(account.mailbox_id)
        if getattr(mailbox, "source", "local") != "local":
            log.info("mailbox %d belongs to the directory but no directory user matches "
                     "%r: refused", account.mailbox_id, login.raw[:80])
            return None
        return account

    def _account(self, user: DirectoryUser, mailbox: Any) -> Account:
        sam = user.sam_account_name or mailbox.sam_account_name
        name = f"{self._netbios}\\{sam}" if self._netbios else mailbox.user_principal_name
        prefix = f"{self._netbios}\\" if self._netbios else ""
        # A password change in the directory changes pwdLastSet / pwdChangedTime: fold
        # them into the version so cached verifications of the old password lapse.
        version = zlib.crc32(f"{mailbox.credential_version}|{user.password_stamp}".encode())
        return Account(
            mailbox_id=mailbox.id, name=name, user_principal_name=mailbox.user_principal_name,
            primary_smtp_address=mailbox.primary_smtp_address,
            display_name=mailbox.display_name, credential_version=version,
            has_password=True, enabled=not user.disabled,
            owa_enabled=mailbox.owa_enabled, activesync_enabled=mailbox.activesync_enabled,
            imap_enabled=mailbox.imap_enabled, pop_enabled=mailbox.pop_enabled,
            smtp_submission_enabled=mailbox.smtp_submission_enabled,
            groups=frozenset(prefix + g for g in user.groups), directory_key=user.dn)

    # -- provisioning -------------------------------------------------------------------

    async def _mailbox_for(self, user: DirectoryUser) -> Any | None:
        """The store mailbox of ``user``: found by its primary address, created on the
        first login, updated when the directory changed it."""
        primary, further = user.smtp_addresses()
        if primary is None or "@" not in primary:
            log.warning("directory user %s has no mail address: cannot log in", user.dn)
            return None
        if not self._accepted(primary):
            log.warning("directory user %s: %s is not in an accepted domain", user.dn,
                        primary)
            return None
        further = [a for a in further if self._accepted(a)]
        upn = user.user_principal_name or primary
        sam = user.sam_account_name or primary.split("@", 1)[0]
        display = user.display_name or sam
        wanted: dict[str, Any] = {
            "primary_smtp_address": primary, "email_addresses": tuple(further),
            "user_principal_name": upn, "sam_account_name": sam, "display_name": display}
        mailbox = await self._org.find_mailbox_by_address(primary)
        if mailbox is None:
            try:
                mailbox = await self._org.create_mailbox(name=sam, source="ldap", **wanted)
                log.info("created mailbox %d for directory user %s", mailbox.id, user.dn)
                return mailbox
            except ValidationError as exc:  # directory data the store cannot hold
                log.error("cannot create a mailbox for directory user %s: %s", user.dn, exc)
                return None
            except AlreadyExists as exc:
                mailbox = await self._org.find_mailbox_by_address(primary)
                if mailbox is None:  # a clash with another mailbox's name or address
                    log.error("cannot create a mailbox for directory user %s: %s",
                              user.dn, exc)
                    return None
        if getattr(mailbox, "source", None) != "ldap":
            log.error("directory user %s clashes with local mailbox %d (%s): refused",
                      user.dn, mailbox.id, primary)
            return None
        changes = {k: v for k, v in wanted.items()
                   if (tuple(getattr(mailbox, k)) if k == "email_addresses"
                       else getattr(mailbox, k)) != v}
        if changes:
            try:
                mailbox = await self._org.update_mailbox(mailbox.id, **changes)
            except (AlreadyExists, ValidationError) as exc:
                log.warning("could not update mailbox %d from directory user %s: %s",
                            mailbox.id, user.dn, exc)
        return mailbox

    # -- verification -------------------------------------------------------------------

    async def verify_password(self, account: Account, password: str) -> PasswordCheck:
        if account.directory_key is None:
            if self._fallback is None:
                return PasswordCheck(ok=False)
            return await self._fallback.verify_password(account, password)
        if not password:
            return PasswordCheck(ok=False)  # RFC 4513 §5.1.2: never an unauthenticated bind
        dn = account.directory_key

        def bind(conn: Any) -> bool:
            try:
                conn.simple_bind_s(dn, password)
                return True
            except ldap.INVALID_CREDENTIALS:
                return False
            except (ldap.UNWILLING_TO_PERFORM, ldap.CONSTRAINT_VIOLATION,
                    ldap.INAPPROPRIATE_AUTH, ldap.INVALID_DN_SYNTAX) as exc:
                # locked or expired accounts (password policy), odd DNs: a refusal
                log.info("LDAP bind of %s refused: %s", dn, type(exc).__name__)
                return False

        return PasswordCheck(ok=await self._pool.run("bind", bind))

    async def dummy_verify(self, password: str) -> None:
        if self._fallback is not None:
            await self._fallback.dummy_verify(password)

    async def lookup_nt_hash(self, account: Account) -> bytes | None:
        """NT hashes live in the store (``Set-Mailbox -NtlmEnabled``), never in LDAP."""
        lookup = getattr(self._fallback, "lookup_nt_hash", None)
        if lookup is None:
            return None
        value = await lookup(account)
        return value if isinstance(value, bytes) else None
