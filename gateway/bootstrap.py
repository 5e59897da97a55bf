"""First start of an empty store: an accepted domain and a first mailbox.

Role: give the quick start something to log into. On a store without accepted
domains, create ``bootstrap_domain`` (Authoritative, default), the organisation
settings (name, NetBIOS domain for DOMAIN\\user logins) and ``admin@<domain>`` with a
random password that is returned once for the operator and never stored in clear.
Invariant: idempotent and race-safe: two nodes starting together on one PostgreSQL
store create the objects once (the loser sees AlreadyExists and carries on).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass

from auth.passwords import hash_password
from gateway.errors import AlreadyExists
from gateway.store import Store

log = logging.getLogger("gateway.bootstrap")

ADMIN_NAME = "admin"


@dataclass(frozen=True)
class BootstrapResult:
    domain: str
    admin_address: str
    admin_password: str  # shown once to the operator


def netbios_name(domain: str) -> str:
    """EXAMPLE for example.test: the first label, upper case, at most 15 characters."""
    return domain.split(".")[0].upper()[:15]


async def bootstrap_organisation(store: Store, domain: str) -> BootstrapResult | None:
    """Create the first domain and mailbox if the store has no accepted domain."""
    if await store.org.list_accepted_domains():
        return None
    try:
        await store.org.create_accepted_domain(domain, domain, "Authoritative")
    except AlreadyExists:
        return None  # another node won the race
    settings = await store.org.get_settings("organization")
    if "netbios_domain" not in settings:
        await store.org.set_settings("organization", {"name": domain,
                                                      "netbios_domain": netbios_name(domain)})
    password = secrets.token_urlsafe(15)
    password_hash = await asyncio.to_thread(hash_password, password)
    address = f"{ADMIN_NAME}@{domain}"
    try:
        await store.org.create_mailbox(name=ADMIN_NAME, display_name="Administrator",
                                       primary_smtp_address=address,
                                       password_hash=password_hash)
    except AlreadyExists:
        return None
    log.info("first start: created accepted domain %s and mailbox %s", domain, address)
    return BootstrapResult(domain, address, password)
