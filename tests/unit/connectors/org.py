"""An in-memory organisation for the policy unit tests (no store): accepted domains,
mailboxes, connectors, and a ``session()`` factory wired to a fake recipient lookup."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from auth.principal import Principal
from gateway.connectors import (
    ADPermission,
    OrgSnapshot,
    ReceiveConnector,
    SessionPolicy,
    decide_connection,
)
from gateway.connectors.defaults import default_connectors
from gateway.connectors.ranges import parse_bindings, parse_ip_ranges
from gateway.store.models import AcceptedDomain, Mailbox

SERVER = "mail1"


def mailbox(id: int, primary: str, *further: str) -> Mailbox:
    return Mailbox(id=id, name=primary.split("@")[0], display_name=primary,
                   primary_smtp_address=primary, email_addresses=tuple(further),
                   user_principal_name=primary, sam_account_name=primary.split("@")[0],
                   password_hash=None, nt_hash=None, ntlm_enabled=False, owa_enabled=True,
                   activesync_enabled=True, imap_enabled=True, pop_enabled=True,
                   smtp_submission_enabled=True, credential_version=1, source="local",
                   created_at=datetime(2026, 1, 1, tzinfo=UTC))


MAILBOXES = [mailbox(1, "alice@example.test", "alice.smith@example.test"),
             mailbox(2, "bob@example.test"),
             mailbox(3, "carol@relay.example.test")]

DOMAINS = (AcceptedDomain(1, "example", "example.test", "Authoritative", True),
           AcceptedDomain(2, "relay", "relay.example.test", "InternalRelay", False),
           AcceptedDomain(3, "ext", "external-relay.test", "ExternalRelay", False),
           AcceptedDomain(4, "wild", "*.wild.test", "Authoritative", False))


def connector(name: str, *, id: int = 0, bindings: str = "0.0.0.0:25",
              ranges: str = "0.0.0.0-255.255.255.255", **kw: Any) -> ReceiveConnector:
    kw.setdefault("permission_groups", frozenset({"AnonymousUsers"}))
    return ReceiveConnector(id=id or abs(hash(name)) % 100000, server=SERVER, name=name,
                            bindings=parse_bindings(bindings),
                            remote_ip_ranges=parse_ip_ranges(ranges), **kw)


def defaults() -> list[ReceiveConnector]:
    out = default_connectors(SERVER, {"smtp": ["0.0.0.0:25", "[::]:25"],
                                      "submission": ["0.0.0.0:587"],
                                      "submissions": ["0.0.0.0:465"]})
    return [dataclasses.replace(c, id=i + 1) for i, c in enumerate(out)]


def anonymous_relay(id: int = 50) -> ReceiveConnector:
    """The issue's "Anonymous Relay" connector with the printer's explicit grant."""
    return connector("Anonymous Relay", id=id, bindings="10.0.0.50:25", ranges="10.0.0.80",
                     permissions=(ADPermission("NT AUTHORITY\\ANONYMOUS LOGON",
                                               "ms-Exch-SMTP-Accept-Any-Recipient"),))


def snapshot(connectors: list[ReceiveConnector] | None = None) -> OrgSnapshot:
    return OrgSnapshot(version=1, server_name=SERVER, accepted_domains=DOMAINS,
                       connectors=tuple(defaults() if connectors is None else connectors))


async def _lookup(address: str) -> Mailbox | None:
    key = address.casefold()
    for m in MAILBOXES:
        if key in {a.casefold() for a in (m.primary_smtp_address, *m.email_addresses)}:
            return m
    return None


async def _by_id(mailbox_id: int) -> Mailbox:
    return next(m for m in MAILBOXES if m.id == mailbox_id)


def session(snap: OrgSnapshot | None = None, *, local: str = "10.0.0.1", port: int = 25,
            remote: str = "198.51.100.7", tls: bool = False) -> SessionPolicy:
    snap = snap or snapshot()
    decision = decide_connection(snap, local, port, remote)
    return SessionPolicy(snap, decision, remote_ip=remote, tls_active=tls, lookup=_lookup,
                         mailbox_by_id=_by_id)


def user(mailbox_id: int = 1) -> Principal:
    m = next(m for m in MAILBOXES if m.id == mailbox_id)
    return Principal.for_mailbox(mailbox_id=m.id, name=f"EXAMPLE\\{m.name}",
                                 login_name=m.user_principal_name,
                                 primary_smtp_address=m.primary_smtp_address,
                                 display_name=m.display_name)
