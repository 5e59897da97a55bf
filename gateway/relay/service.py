"""The relay service: queue workers inside a node (``gateway serve``).

Role: runs ``Relay.run`` (claim, deliver, retry, report) for the node's lifetime,
adopts messages from the SMTP front end's interim ``relay_queue`` every
``ADOPT_INTERVAL`` seconds, and passes organisation changes on (accepted domains,
send connectors, transport settings are re-read).

Invariants: ``stop`` cancels the workers; a delivery interrupted by it keeps its lease
until the lease expires, then any worker takes it again (local delivery stays exactly
once, remote at least once). Several nodes on PostgreSQL each run this service; the
queue's leases keep their work apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.errors import GatewayError
from gateway.relay.engine import Relay
from gateway.relay.routing import Resolver
from gateway.store import Store

log = logging.getLogger("gateway.relay")

ADOPT_INTERVAL = 1.0
ADOPT_BATCH = 100


class RelayService:
    """A node service (``gateway.services.Service``) running the relay engine."""

    name = "relay"

    def __init__(self, store: Store, *, server_name: str,
                 resolver: Resolver | None = None) -> None:
        self.relay = Relay(store, server_name=server_name, resolver=resolver)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.relay.reload_settings(force=True)
        self._tasks = [asyncio.create_task(self.relay.run(), name="relay-worker"),
                       asyncio.create_task(self._adopt_loop(), name="relay-adopt")]

    async def _adopt_loop(self) -> None:
        while True:
            adopted = 0
            try:
                adopted = await self.relay.adopt_legacy(limit=ADOPT_BATCH)
            except GatewayError as exc:
                log.warning("relay: cannot adopt interim queue rows: %s", exc)
            if adopted < ADOPT_BATCH:  # a full batch: more may wait, go on at once
                await asyncio.sleep(ADOPT_INTERVAL)

    async def stop(self, grace: float) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, max(grace, 0.1))
        self._tasks = []

    async def on_org_change(self, version: int) -> None:
        self.relay.on_org_change()
        self.relay.wake()

    def describe(self) -> list[str]:
        return [f"relay queue workers ({self.relay.owner})"]
