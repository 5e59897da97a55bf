"""Writes RECEIVE events to the message tracking log off the reply path.

Role: the tracking log is a log, not the message: Exchange writes it asynchronously,
and so do we. Sessions hand events to ``TrackingWriter.add`` (never blocks); one
background task writes everything pending (gathered for up to ``FLUSH_DELAY``) in a
single transaction, so the log costs one commit per batch instead of one fsync per
message competing with deliveries.

Invariants: the buffer is bounded (``MAX_PENDING``; beyond it events are dropped and
counted, with a warning); ``close`` writes what is pending; a store failure is logged
and never reaches a session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from gateway.errors import GatewayError

if TYPE_CHECKING:
    from gateway.store.tracking import TrackingEvent, TrackingLog

log = logging.getLogger("protocols.smtp")

MAX_PENDING = 10_000
MAX_BATCH = 1000
# Events wait this long to share a commit: one fsync per batch instead of one per
# message competing with the deliveries for the store's writer.
FLUSH_DELAY = 0.25


class TrackingWriter:
    def __init__(self, tracking: TrackingLog) -> None:
        self._tracking = tracking
        self._pending: list[TrackingEvent] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    def add(self, event: TrackingEvent) -> None:
        if len(self._pending) >= MAX_PENDING:
            self.dropped += 1
            if self.dropped in (1, 100, 10_000):
                log.warning("message tracking log behind: %d events dropped", self.dropped)
            return
        self._pending.append(event)
        self._wake.set()

    async def flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                await self._tracking.append_many(batch)
            except GatewayError as exc:
                log.warning("message tracking: %d events not written: %s", len(batch), exc)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if len(self._pending) < MAX_BATCH:
                await asyncio.sleep(FLUSH_DELAY)
            self._wake.clear()
            await self.flush()
