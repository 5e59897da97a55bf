"""Periodic housekeeping of the store: state that would otherwise only grow.

Role: a node service that every ``interval`` seconds deletes lockout counters past
their retention (``ThrottlePolicy.retention``) and web sessions past their idle or
absolute expiry. Invariants: it deletes only what the owning component already treats
as expired, so running it on several nodes at once is harmless; a failing run is
logged and retried at the next interval, never fatal to the node.

Not pruned here: the change feed (IMAP QRESYNC reads it; pruning needs a resync path,
RFC 7162 §3.2.5.2) and the audit trail (a record kept for the operator).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from auth.throttle import ThrottlePolicy
from gateway.store import Store

log = logging.getLogger("gateway.maintenance")

DEFAULT_INTERVAL = 3600.0
FIRST_RUN_DELAY = 60.0


class MaintenanceService:
    name = "maintenance"

    def __init__(self, store: Store, *, interval: float = DEFAULT_INTERVAL,
                 first_run_delay: float = FIRST_RUN_DELAY,
                 policy: ThrottlePolicy | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.interval = interval
        self.first_run_delay = first_run_delay
        self.policy = policy or ThrottlePolicy()
        self.clock = clock
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> dict[str, int]:
        """One pass; returns how many rows each step deleted."""
        now = self.clock()
        counters = await self.store.auth_state.prune(
            older_than=now - self.policy.retention, now=now)
        sessions = await self.store.sessions.purge_expired(now)
        if counters or sessions:
            log.info("housekeeping: removed %d expired lockout counters and %d expired "
                     "web sessions", counters, sessions)
        return {"lockout_counters": counters, "web_sessions": sessions}

    async def _loop(self) -> None:
        await asyncio.sleep(self.first_run_delay)
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # the next interval tries again
                log.warning("housekeeping failed: %s", exc)
            await asyncio.sleep(self.interval)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="maintenance")

    async def stop(self, grace: float) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def on_org_change(self, version: int) -> None:
        return None

    def describe(self) -> list[str]:
        return []
