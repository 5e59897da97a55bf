"""The SMTP receive policy: per-connection decisions (docs/dev/smtp-policy.md).

Role: decide, for one connection, which connector serves it, what EHLO offers, whether
AUTH may run, and whether each MAIL FROM, RCPT TO and message is accepted, with the
exact Exchange 2016/2019 reply (exchange-semantics.md §4.2) and the reason. The SMTP
session sends the replies; ``Test-SmtpRelay`` prints the same decisions.

Invariants:
* a decision never depends on anything but the snapshot, the connector, the principal,
  the TLS state and (for RCPT) one recipient lookup in the store;
* the session is anonymous until ``set_principal`` accepts an authenticated principal
  that holds Submit on the connector;
* fail closed: an unparsable address, an unknown right or a missing grant refuses.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from auth.policy import AuthPolicySettings, ConnectionFacts, offered_mechanisms
from auth.principal import ANONYMOUS, Principal
from gateway.connectors import replies as R
from gateway.connectors.address import AddressError, SmtpAddress, parse_address
from gateway.connectors.model import ReceiveConnector
from gateway.connectors.replies import Decision, RecipientDecision, Reply
from gateway.connectors.rights import (
    ACCEPT_ANY_RECIPIENT,
    ACCEPT_ANY_SENDER,
    ACCEPT_AUTHORITATIVE_DOMAIN_SENDER,
    ACCEPT_FOREST_HEADERS,
    ACCEPT_ORGANIZATION_HEADERS,
    BYPASS_MESSAGE_SIZE_LIMIT,
    SUBMIT,
    EffectiveRights,
    effective_rights,
)
from gateway.connectors.selection import select_connector
from gateway.connectors.snapshot import OrgSnapshot, SnapshotCache
from gateway.store.models import Mailbox

if TYPE_CHECKING:
    from gateway.store import Store

Lookup = Callable[[str], Awaitable[Mailbox | None]]
MailboxById = Callable[[int], Awaitable[Mailbox]]

#: SMTP AUTH mechanisms in the order EHLO advertises them (``AUTH LOGIN PLAIN NTLM
#: EXTERNAL``); which of them are offered is ``auth.policy``'s decision.
SMTP_MECHANISMS: tuple[str, ...] = ("LOGIN", "PLAIN", "NTLM", "EXTERNAL")


@dataclass(frozen=True)
class ConnectionDecision:
    accepted: bool
    connector: ReceiveConnector | None
    reply: Reply
    reason: str
    candidates: tuple[str, ...]


@dataclass(frozen=True)
class ListenEndpoint:
    host: str
    port: int
    implicit_tls: bool
    connectors: tuple[str, ...]


def banner_line(connector: ReceiveConnector, server_name: str,
                now: datetime | None = None) -> str:
    """The 220 greeting: the connector's Banner, else Exchange's default (§4.1)."""
    if connector.banner:
        return connector.banner
    fqdn = connector.fqdn or server_name
    stamp = email.utils.format_datetime(now) if now is not None else _now_rfc5322()
    return f"220 {fqdn} Microsoft ESMTP MAIL Service ready at {stamp}"


_clock_cache: list[Any] = [0, ""]


def _now_rfc5322() -> str:
    """The local time in RFC 5322 form, formatted at most once per second."""
    second = int(time.time())
    if _clock_cache[0] != second:
        _clock_cache[0] = second
        _clock_cache[1] = email.utils.format_datetime(datetime.now().astimezone())
    return str(_clock_cache[1])


def decide_connection(snapshot: OrgSnapshot, local_ip: str, local_port: int,
                      remote_ip: str) -> ConnectionDecision:
    """Select the connector (§2) or refuse with ``421 4.3.2 Service not available``."""
    try:
        sel = snapshot.memo(("select", local_ip, local_port, remote_ip),
                            lambda: select_connector(snapshot.connectors, local_ip,
                                                     local_port, remote_ip))
    except ValueError:
        return ConnectionDecision(False, None, R.SERVICE_NOT_AVAILABLE,
                                  f"unparsable address {local_ip!r} / {remote_ip!r}", ())
    if sel.connector is None:
        return ConnectionDecision(False, None, R.SERVICE_NOT_AVAILABLE, sel.reason,
                                  sel.candidates)
    greeting = banner_line(sel.connector, snapshot.server_name)
    code, _, text = greeting.partition(" ")
    return ConnectionDecision(True, sel.connector, Reply(int(code), None, text), sel.reason,
                              sel.candidates)


def listen_endpoints(snapshot: OrgSnapshot) -> list[ListenEndpoint]:
    """What the SMTP listener set binds: one entry per distinct binding of the enabled
    connectors, minus specific addresses covered by a wildcard of the same family and
    port (the wildcard socket receives those connections)."""
    by_binding: dict[tuple[str, int, int], tuple[bool, list[str]]] = {}
    for c in snapshot.connectors:
        if not c.enabled:
            continue
        for b in c.bindings:
            key = (str(b.ip), b.port, b.ip.version)
            tls, names = by_binding.get(key, (False, []))
            by_binding[key] = (tls or c.implicit_tls, [*names, c.name])
    wildcards = ("0.0.0.0", "::")  # noqa: S104 - names of wildcard bindings, not a bind
    wild = {(port, ver) for (host, port, ver) in by_binding if host in wildcards}
    merged: dict[tuple[str, int, int], tuple[bool, list[str]]] = {}
    for (host, port, ver), (tls, names) in sorted(by_binding.items()):
        target = (host, port, ver)
        if host not in wildcards and (port, ver) in wild:
            target = (wildcards[0] if ver == 4 else wildcards[1], port, ver)
        mtls, mnames = merged.get(target, (False, []))
        merged[target] = (mtls or tls, [*mnames, *names])
    out = [ListenEndpoint(host, port, tls, tuple(dict.fromkeys(names)))
           for (host, port, _ver), (tls, names) in sorted(merged.items())]
    return out


class SessionPolicy:
    """The policy state of one SMTP connection (see docs/dev/smtp-policy.md)."""

    def __init__(self, snapshot: OrgSnapshot, connection: ConnectionDecision, *,
                 remote_ip: str, tls_active: bool, lookup: Lookup,
                 mailbox_by_id: MailboxById) -> None:
        self.snapshot = snapshot
        self.connection = connection
        self.remote_ip = remote_ip
        self.tls_active = tls_active
        self.principal: Principal = ANONYMOUS
        self._lookup = lookup
        self._mailbox_by_id = mailbox_by_id
        self._own_addresses: frozenset[str] = frozenset()
        self.rights: EffectiveRights = self._rights_for(ANONYMOUS) \
            if connection.connector is not None else EffectiveRights("", "", {}, {})

    def _rights_for(self, principal: Principal) -> EffectiveRights:
        connector = self.connector
        return self.snapshot.memo(("rights", connector.id, principal),
                                  lambda: effective_rights(connector, principal))

    # -- connection -----------------------------------------------------------------
    @property
    def accepted(self) -> bool:
        return self.connection.accepted

    @property
    def connector(self) -> ReceiveConnector:
        if self.connection.connector is None:
            raise RuntimeError("the connection was refused: no connector")
        return self.connection.connector

    @property
    def fqdn(self) -> str:
        return self.connector.fqdn or self.snapshot.server_name

    def banner(self) -> str:
        return banner_line(self.connector, self.snapshot.server_name)

    def tls_started(self) -> None:
        self.tls_active = True

    # -- EHLO, STARTTLS, AUTH ---------------------------------------------------------
    def auth_mechanisms(self, *, client_certificate: bool = False) -> tuple[str, ...]:
        """SASL mechanisms offered now (RFC 4954 §3), as ``auth.policy`` decides them
        from the connector's AuthMechanism and RequireTLS: LOGIN and PLAIN need
        BasicAuth (and TLS first with BasicAuthRequireTLS or RequireTLS), NTLM needs
        Integrated, EXTERNAL needs Tls and a verified client certificate. The SMTP
        session and Test-SmtpRelay both ask here."""
        c = self.connector
        settings = AuthPolicySettings(smtp_auth_mechanism=frozenset(c.auth_mechanism),
                                      smtp_require_tls=c.require_tls)
        facts = ConnectionFacts(tls=self.tls_active, client_certificate=client_certificate)
        return offered_mechanisms("smtp", SMTP_MECHANISMS, connection=facts,
                                  settings=settings)

    def ehlo_keywords(self) -> list[str]:
        c = self.connector
        words = [f"SIZE {c.max_message_size}", "PIPELINING", "ENHANCEDSTATUSCODES"]
        if "Tls" in c.auth_mechanism and not self.tls_active:
            words.append("STARTTLS")
        mechs = self.auth_mechanisms()
        if mechs and self.principal.is_anonymous:
            words.append("AUTH " + " ".join(mechs))
        words += ["8BITMIME", "SMTPUTF8"]
        return words

    def check_starttls(self) -> Decision:
        if "Tls" not in self.connector.auth_mechanism:
            return Decision(False, R.UNRECOGNIZED_COMMAND,
                            "STARTTLS is not offered: Tls is not in the connector's "
                            "AuthMechanism")
        if self.tls_active:
            return Decision(False, R.STARTTLS_TWICE, "TLS is already active")
        return Decision(True, R.STARTTLS_READY, "STARTTLS offered (Tls)")

    def check_auth(self, mechanism: str, *, client_certificate: bool = False) -> Decision:
        if not self.principal.is_anonymous:
            return Decision(False, R.AUTH_ALREADY, "the session is already authenticated")
        offered = self.auth_mechanisms(client_certificate=client_certificate)
        if mechanism.upper() not in offered:
            why = ("BasicAuth is not enabled on the connector"
                   if "BasicAuth" not in self.connector.auth_mechanism else
                   "basic authentication requires TLS first (BasicAuthRequireTLS/RequireTLS)"
                   if not offered else f"{mechanism.upper()} is not one of "
                   f"{' '.join(offered)}")
            return Decision(False, R.AUTH_UNRECOGNIZED, why)
        return Decision(True, Reply(334, None, ""), f"{mechanism.upper()} is offered")

    async def set_principal(self, principal: Principal) -> Decision:
        """Adopt an authenticated principal if it holds Submit on the connector (§3.2:
        without Submit AUTH fails); otherwise stay anonymous and answer 535 5.7.3."""
        rights = self._rights_for(principal)
        check = rights.check(SUBMIT)
        if not check.granted:
            return Decision(False, R.AUTH_FAILED, f"{principal.name} authenticated but "
                            f"has no Submit right on {self.connector.name!r}", (check,))
        own: set[str] = set()
        if principal.primary_smtp_address:
            own.add(principal.primary_smtp_address.casefold())
        if principal.mailbox_id is not None:
            mailbox = await self._mailbox_by_id(principal.mailbox_id)
            own.add(mailbox.primary_smtp_address.casefold())
            own.update(a.casefold() for a in mailbox.email_addresses)
        self.principal = principal
        self.rights = rights
        self._own_addresses = frozenset(own)
        return Decision(True, R.AUTH_OK, f"authenticated as {principal.name}", (check,))

    # -- MAIL FROM ----------------------------------------------------------------------
    async def check_mail_from(self, sender: str, *, size: int | None = None,
                              smtputf8: bool = False) -> Decision:
        c = self.connector
        if c.require_tls and not self.tls_active:
            return Decision(False, R.STARTTLS_REQUIRED, "the connector requires TLS")
        submit = self.rights.check(SUBMIT)
        checks = [submit]
        if not submit.granted:
            return Decision(False, R.NOT_AUTHENTICATED, f"{self.principal.name} may not "
                            f"submit on {c.name!r}", tuple(checks))
        try:
            addr = parse_address(sender, smtputf8=smtputf8, allow_null=True)
        except AddressError as exc:
            return Decision(False, R.SENDER_INVALID, f"sender {sender!r}: {exc}",
                            tuple(checks))
        verdict = self._sender_rights(addr, checks)
        if verdict is not None:
            return verdict
        if size is not None and size > c.max_message_size:
            bypass = self.rights.check(BYPASS_MESSAGE_SIZE_LIMIT)
            checks.append(bypass)
            if not bypass.granted:
                return Decision(False, R.SIZE_EXCEEDED, f"SIZE={size} exceeds the "
                                f"connector's MaxMessageSize {c.max_message_size}",
                                tuple(checks))
        who = "<>" if not addr.local else str(addr)
        return Decision(True, R.SENDER_OK, f"sender {who} accepted", tuple(checks))

    def _sender_rights(self, addr: SmtpAddress, checks: list) -> Decision | None:
        if not addr.local:                          # null reverse-path (RFC 5321 §4.5.5)
            return None
        if not self.principal.is_anonymous:
            if addr.key in self._own_addresses:
                return None
            any_sender = self.rights.check(ACCEPT_ANY_SENDER)
            checks.append(any_sender)
            if any_sender.granted:
                return None
            return Decision(False, R.SEND_AS_DENIED, f"{self.principal.name} may not send "
                            f"as {addr} (not one of its addresses)", tuple(checks))
        domain = self.snapshot.match_domain(addr.domain)
        if domain is not None and domain.domain_type == "Authoritative":
            authd = self.rights.check(ACCEPT_AUTHORITATIVE_DOMAIN_SENDER)
            checks.append(authd)
            if not authd.granted:
                return Decision(False, R.SEND_AS_DENIED, f"anonymous sender claims {addr} "
                                f"in authoritative domain {domain.domain_name}",
                                tuple(checks))
        return None

    # -- RCPT TO ------------------------------------------------------------------------
    async def check_rcpt_to(self, recipient: str, *, accepted_so_far: int,
                            smtputf8: bool = False) -> RecipientDecision:
        c = self.connector
        try:
            addr = parse_address(recipient, smtputf8=smtputf8)
        except AddressError as exc:
            return RecipientDecision(False, R.RECIPIENT_INVALID,
                                     f"recipient {recipient!r}: {exc}")
        if accepted_so_far >= c.max_recipients_per_message:
            return RecipientDecision(False, R.TOO_MANY_RECIPIENTS,
                                     f"MaxRecipientsPerMessage {c.max_recipients_per_message}"
                                     " reached", address=addr)
        domain = None if addr.is_literal else self.snapshot.match_domain(addr.domain)
        if domain is None:
            relay = self.rights.check(ACCEPT_ANY_RECIPIENT)
            where = "an address literal" if addr.is_literal else \
                f"domain {addr.domain} is not an accepted domain"
            if relay.granted:
                return RecipientDecision(True, R.RECIPIENT_OK, f"{where}; relay allowed",
                                         (relay,), route="relay", address=addr)
            return RecipientDecision(False, R.RELAY_DENIED, f"{where}; relay needs "
                                     f"{ACCEPT_ANY_RECIPIENT}", (relay,), address=addr)
        kind = domain.domain_type
        if kind == "ExternalRelay":
            return RecipientDecision(True, R.RECIPIENT_OK, f"{addr.domain} is an "
                                     "ExternalRelay accepted domain: routed out",
                                     route="relay", address=addr)
        mailbox = await self._lookup(str(addr))
        if mailbox is not None:
            return RecipientDecision(True, R.RECIPIENT_OK, f"local mailbox {mailbox.name!r} "
                                     f"in {kind} domain {domain.domain_name}",
                                     route="local", mailbox_id=mailbox.id, address=addr)
        if kind == "InternalRelay":
            return RecipientDecision(True, R.RECIPIENT_OK, f"no local mailbox for {addr} in "
                                     "InternalRelay domain: routed out", route="relay",
                                     address=addr)
        return RecipientDecision(False, R.RECIPIENT_NOT_FOUND, f"no mailbox has {addr} in "
                                 f"authoritative domain {domain.domain_name}", address=addr)

    # -- end of data -----------------------------------------------------------------
    def check_message_size(self, size: int) -> Decision:
        c = self.connector
        if size <= c.max_message_size:
            return Decision(True, R.DATA_OK, f"{size} octets within MaxMessageSize")
        bypass = self.rights.check(BYPASS_MESSAGE_SIZE_LIMIT)
        if bypass.granted:
            return Decision(True, R.DATA_OK, f"{size} octets over MaxMessageSize, bypassed",
                            (bypass,))
        return Decision(False, R.SIZE_EXCEEDED, f"{size} octets exceed MaxMessageSize "
                        f"{c.max_message_size}", (bypass,))

    def check_hop_count(self, received_headers: int) -> Decision:
        limit = self.connector.max_hop_count
        if received_headers > limit:
            return Decision(False, R.HOP_COUNT_EXCEEDED, f"{received_headers} Received "
                            f"fields exceed MaxHopCount {limit}")
        return Decision(True, R.DATA_OK, f"{received_headers} Received fields")

    def headers_to_strip(self) -> frozenset[str]:
        """Header-name prefixes the header firewall removes (§3.2 H-O, H-F)."""
        out = set()
        if not self.rights.has(ACCEPT_ORGANIZATION_HEADERS):
            out.add("x-ms-exchange-organization-")
        if not self.rights.has(ACCEPT_FOREST_HEADERS):
            out.add("x-ms-exchange-forest-")
        return frozenset(out)


class RecipientCache:
    """Recipient lookups of one organisation version, shared by every session of the
    process. Every mailbox change bumps the org version, and a new version empties the
    cache, so an answer is never older than the snapshot the session decides from.
    At most ``max_entries`` addresses are kept (oldest dropped first)."""

    def __init__(self, lookup: Lookup, *, max_entries: int = 10_000) -> None:
        self._lookup = lookup
        self._max = max_entries
        self._version = -1
        self._entries: dict[str, Mailbox | None] = {}

    def bound(self, version: int) -> Lookup:
        async def lookup(address: str) -> Mailbox | None:
            key = address.casefold()
            if version == self._version and key in self._entries:
                return self._entries[key]
            found = await self._lookup(address)
            if version > self._version:
                self._version, self._entries = version, {}
            if version == self._version:
                if len(self._entries) >= self._max:
                    self._entries.pop(next(iter(self._entries)))
                self._entries[key] = found
            return found
        return lookup


class SmtpPolicy:
    """One per process: the snapshot cache, the recipient cache and the session
    factory."""

    def __init__(self, store: Store, *, server_name: str,
                 refresh_interval: float = 1.0) -> None:
        self.store = store
        self.server_name = server_name
        self._cache = SnapshotCache(store, server_name, refresh_interval=refresh_interval)
        self._recipients = RecipientCache(store.org.find_mailbox_by_address)

    async def snapshot(self) -> OrgSnapshot:
        return await self._cache.get()

    def invalidate(self) -> None:
        self._cache.invalidate()

    async def listen_endpoints(self) -> list[ListenEndpoint]:
        return listen_endpoints(await self.snapshot())

    async def open_session(self, *, local_ip: str, local_port: int, remote_ip: str,
                           tls_active: bool = False) -> SessionPolicy:
        snapshot = await self.snapshot()
        decision = decide_connection(snapshot, local_ip, local_port, remote_ip)
        return SessionPolicy(snapshot, decision, remote_ip=remote_ip, tls_active=tls_active,
                             lookup=self._recipients.bound(snapshot.version),
                             mailbox_by_id=self.store.org.get_mailbox_by_id)
