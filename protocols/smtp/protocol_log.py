"""The SMTP receive protocol log (Exchange's ``ProtocolLog\\SmtpReceive``).

Role: one CSV file per day under ``<data_dir>/logs/ProtocolLog/SmtpReceive/`` named
``RECV<yyyymmdd>-<pid>.log`` with a ``#Fields:`` header and Exchange's fields
(reference exchange-semantics.md §8): date-time, connector-id, session-id,
sequence-number, local-endpoint, remote-endpoint, event (``+`` connect, ``-``
disconnect, ``>`` sent, ``<`` received, ``*`` information), data, context. Only
sessions on connectors whose ProtocolLoggingLevel is Verbose write to it.

Invariants: nothing blocks the event loop (lines are buffered and appended by a
background task in a thread); the buffer is bounded (``MAX_PENDING`` lines; beyond it
lines are dropped and counted); AUTH payloads and message bodies are never passed in
(the session redacts them); each process writes its own file.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("protocols.smtp")

FIELDS = ("date-time", "connector-id", "session-id", "sequence-number", "local-endpoint",
          "remote-endpoint", "event", "data", "context")
MAX_PENDING = 100_000
FLUSH_INTERVAL = 0.5
MAX_DATA = 1000  # characters of the data field kept


class ProtocolLog:
    """Buffered protocol log writer; ``start()`` it, ``close()`` it at shutdown."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._pending: list[tuple[Any, ...]] = []
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    def write(self, *, connector_id: str, session_id: str, sequence: int, local: str,
              remote: str, event: str, data: str, context: str = "") -> None:
        """Queue one line; formatting happens in the writer thread, in batches."""
        if len(self._pending) >= MAX_PENDING:
            self.dropped += 1
            return
        self._pending.append((time.time(), connector_id, session_id, sequence, local,
                              remote, event, data[:MAX_DATA], context[:MAX_DATA]))

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            await asyncio.to_thread(self._append, batch)
        except OSError as exc:
            log.warning("protocol log %s not written: %s", self.directory, exc)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            await self.flush()

    def _append(self, batch: list[tuple[Any, ...]]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        by_day: dict[str, io.StringIO] = {}
        writers: dict[str, Any] = {}  # one csv writer per day's buffer
        second = -1
        stamp = day = ""
        for when, *fields in batch:
            whole = int(when)
            if whole != second:  # one strftime per second of log, not per line
                second = whole
                moment = datetime.fromtimestamp(whole, UTC)
                stamp = moment.strftime("%Y-%m-%dT%H:%M:%S")
                day = moment.strftime("%Y%m%d")
            writer = writers.get(day)
            if writer is None:
                out = by_day[day] = io.StringIO()
                writer = writers[day] = csv.writer(out, lineterminator="\r\n")
            millis = int((when - whole) * 1000)
            writer.writerow([f"{stamp}.{millis:03d}Z", *fields])
        for day, out in by_day.items():
            path = self.directory / f"RECV{day}-{os.getpid()}.log"
            new = not path.exists()
            with open(path, "a", encoding="utf-8", newline="") as fh:
                if new:
                    fh.write("#Software: mail gateway\r\n#Log-type: SMTP Receive Protocol "
                             "Log\r\n#Fields: " + ",".join(FIELDS) + "\r\n")
                fh.write(out.getvalue())
