"""The organisation snapshot the SMTP policy decides from.

Role: one immutable view of the accepted domains and this server's receive connectors
(with their permissions), read from the store once and shared by every connection,
and a cache that re-reads it when the organisation version changes.

Invariants: a snapshot never changes; a session keeps the snapshot it started with;
``SnapshotCache.get`` asks the store for ``org.version()`` at most once per
``refresh_interval`` seconds, so a change made on any node takes effect everywhere
within that interval without a restart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.connectors.model import ReceiveConnector
from gateway.store.models import AcceptedDomain

if TYPE_CHECKING:
    from gateway.store import Store

T = TypeVar("T")
MAX_MEMO = 8192           # memoised decisions per snapshot (cleared when full)
_MISSING = object()


@dataclass(frozen=True)
class OrgSnapshot:
    """Accepted domains and this server's connectors at one org version."""

    version: int
    server_name: str
    accepted_domains: tuple[AcceptedDomain, ...]
    connectors: tuple[ReceiveConnector, ...]
    # Pure decisions of this snapshot (connector selection, rights) memoised by their
    # inputs; the snapshot never changes, so a memoised answer never goes stale.
    _memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False,
                                  hash=False)

    def memo(self, key: Any, compute: Callable[[], T]) -> T:
        """``compute()`` once per ``key`` for this snapshot (bounded)."""
        value = self._memo.get(key, _MISSING)
        if value is _MISSING:
            if len(self._memo) >= MAX_MEMO:
                self._memo.clear()
            value = compute()
            self._memo[key] = value
        return value

    def match_domain(self, domain: str) -> AcceptedDomain | None:
        """The accepted domain covering ``domain`` (lower-case A-label form): an exact
        entry beats ``*.parent`` entries, and a longer wildcard beats a shorter one.
        ``*.example.test`` covers subdomains only, never ``example.test`` itself, and
        never ``evilexample.test`` (labels, not string suffixes)."""
        domain = domain.lower()
        if not domain or domain.startswith("["):
            return None
        best: AcceptedDomain | None = None
        best_len = -1
        for entry in self.accepted_domains:
            name = entry.domain_name.lower()
            if name == domain:
                return entry
            if name.startswith("*.") and domain.endswith(name[1:]) \
                    and len(domain) > len(name) - 1 and len(name) > best_len:
                best, best_len = entry, len(name)
        return best

    def connector(self, name: str) -> ReceiveConnector | None:
        key = name.casefold()
        for c in self.connectors:
            if c.name.casefold() == key or c.identity.casefold() == key:
                return c
        return None


async def load_snapshot(store: Store, server_name: str) -> OrgSnapshot:
    """Read a snapshot. The version is read first, so a change racing with the read
    leaves a snapshot whose version is older than the store's: the next check reloads."""
    version = await store.org.version()
    domains = await store.org.list_accepted_domains()
    connectors = await store.connectors.list_receive_connectors(server=server_name)
    return OrgSnapshot(version=version, server_name=server_name,
                       accepted_domains=tuple(domains), connectors=tuple(connectors))


class SnapshotCache:
    """The per-process snapshot, refreshed when ``store.org.version()`` moves."""

    def __init__(self, store: Store, server_name: str, *, refresh_interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._server = server_name
        self._interval = refresh_interval
        self._clock = clock
        self._snapshot: OrgSnapshot | None = None
        self._checked = 0.0
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._snapshot = None

    async def get(self) -> OrgSnapshot:
        snap = self._snapshot
        now = self._clock()
        if snap is not None and now - self._checked < self._interval:
            return snap
        async with self._lock:
            snap = self._snapshot
            now = self._clock()
            if snap is not None and now - self._checked < self._interval:
                return snap
            version = await self._store.org.version()
            if snap is None or version != snap.version:
                snap = await load_snapshot(self._store, self._server)
                self._snapshot = snap
            self._checked = self._clock()
            return snap
