"""The categoriser: where each envelope recipient goes.

Exchange's categoriser semantics for accepted domains (reference exchange-semantics.md
§5, "Accepted domains in Exchange Server"):

* a recipient whose address (primary or any further SMTP address; domain and local
  part case-insensitive) belongs to a mailbox is delivered locally;
* Authoritative domain, no such mailbox: permanent failure
  ``550 5.1.1 RESOLVER.ADR.ExRecipNotFound; not found``;
* InternalRelay domain, no such mailbox: relayed through a send connector;
* ExternalRelay domain, and every domain that is not accepted: relayed.

Invariant: pure decisions from (address, accepted domains, mailbox lookup); the
accepted-domain list is cached for at most ``DOMAIN_CACHE_SECONDS`` (and dropped when
the node reports an organisation change).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

DOMAIN_CACHE_SECONDS = 5.0
MAX_ADDRESS = 320  # RFC 5321 §4.5.3.1: 64 local part + @ + 255 domain

NOT_FOUND = "550 5.1.1 RESOLVER.ADR.ExRecipNotFound; not found"
BAD_ADDRESS = "550 5.1.3 STOREDRV.Submit; invalid recipient address"


@dataclass(frozen=True)
class Category:
    """``route`` "local" (``mailbox_id``), "remote" (``domain``) or "failed" (``error``)."""

    route: str
    domain: str = ""
    mailbox_id: int | None = None
    error: str = ""


class _Domain(Protocol):
    domain_name: str
    domain_type: str


def split_address(address: str) -> tuple[str, str] | None:
    """(local part, lower-case domain) of a mailbox address, or None when malformed."""
    if not isinstance(address, str) or not 3 <= len(address) <= MAX_ADDRESS:
        return None
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or any(c in address for c in " \t\r\n<>"):
        return None
    domain = domain.lower().rstrip(".")
    if not domain or domain.startswith(".") or ".." in domain:
        return None
    return local, domain


def domain_type(domain: str, domains: Sequence[_Domain]) -> str | None:
    """The type of the accepted domain covering ``domain`` (most specific wins), or None.
    ``*.example.test`` covers every subdomain of example.test, not example.test itself."""
    best: tuple[int, str] | None = None
    for d in domains:
        name = d.domain_name.lower()
        if name.startswith("*."):
            if domain.endswith(name[1:]) and (best is None or len(name) - 1 > best[0]):
                best = (len(name) - 1, d.domain_type)
        elif name == domain:
            return d.domain_type
    return None if best is None else best[1]


class Categoriser:
    """Resolves recipients with the organisation store (``store.org``)."""

    def __init__(self, org: Any, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._org = org
        self._clock = clock
        self._domains: list[_Domain] | None = None
        self._loaded_at = 0.0

    def invalidate(self) -> None:
        self._domains = None

    async def _accepted(self) -> list[_Domain]:
        if self._domains is None or self._clock() - self._loaded_at > DOMAIN_CACHE_SECONDS:
            self._domains = list(await self._org.list_accepted_domains())
            self._loaded_at = self._clock()
        return self._domains

    async def categorise(self, address: str) -> Category:
        parts = split_address(address)
        if parts is None:
            return Category("failed", error=BAD_ADDRESS)
        _, domain = parts
        kind = domain_type(domain, await self._accepted())
        if kind in (None, "ExternalRelay"):
            return Category("remote", domain=domain)
        mailbox = await self._org.find_mailbox_by_address(address)
        if mailbox is not None:
            return Category("local", domain=domain, mailbox_id=int(mailbox.id))
        if kind == "InternalRelay":
            return Category("remote", domain=domain)
        return Category("failed", domain=domain, error=NOT_FOUND)

    async def categorise_all(self, addresses: Sequence[str]) -> list[Category]:
        return [await self.categorise(a) for a in addresses]


