"""``AdminContext``: what every cmdlet runs against.

It carries the store (only ``store.org`` is used by the cmdlets of this issue), the
node's server name, the registry to resolve cmdlets in, and an optional confirmation
prompt. ``confirm`` is set by the interactive shell only; without it the context is
non-interactive (``gateway exec``) and High-impact cmdlets proceed without asking,
as Exchange does in a non-interactive execution context.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from gateway.admin.registry import Registry
    from gateway.admin.storeapi import OrgApi


@dataclass
class AdminContext:
    store: Any  # gateway.store.Store; typed loosely so the admin shell depends on
    #            the org API it uses (gateway.admin.storeapi.OrgApi), not on an engine.
    server_name: str = "localhost"
    registry: Registry | None = None  # None: the shell's default registry
    confirm: Callable[[str], Awaitable[bool]] | None = None

    @property
    def org(self) -> OrgApi:
        """The organisation configuration API of the store (``store.org``)."""
        return cast("OrgApi", self.store.org)
