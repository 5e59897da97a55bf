"""Several SMTP worker processes per node, sharing the listening ports (SO_REUSEPORT).

Role: one asyncio process uses one core (architecture: process model). With
``GATEWAY_SMTP_WORKERS=N`` (N > 1) the node's SMTP service starts N-1 worker
processes (``python -m protocols.smtp.worker <settings file>``); every process binds
the connectors' endpoints with SO_REUSEPORT and the kernel spreads new connections
across them. Each worker opens the same store, runs its own auth service (lockout
counters are in the store, so they are shared), follows organisation changes by
polling the organisation version, and exits when the node stops it or dies.

Invariants: SO_REUSEPORT is set only when several workers are asked for (otherwise a
second gateway on the same port must fail loudly, not share it); per-connector
connection limits apply per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys

log = logging.getLogger("protocols.smtp")

ENV_WORKERS = "GATEWAY_SMTP_WORKERS"
MAX_WORKERS = 64


def configured_workers() -> int:
    """``GATEWAY_SMTP_WORKERS`` (default 1; "auto": one per CPU), clamped to 1..64."""
    raw = os.environ.get(ENV_WORKERS, "1").strip().lower()
    if raw == "auto":
        return max(1, min(MAX_WORKERS, os.cpu_count() or 1))
    try:
        return max(1, min(MAX_WORKERS, int(raw)))
    except ValueError:
        log.warning("%s=%r is not a number; using one SMTP process", ENV_WORKERS, raw)
        return 1


class WorkerPool:
    """The extra worker processes of one node."""

    def __init__(self, count: int, settings_source: str | None) -> None:
        self.count = count
        self.settings_source = settings_source
        self._procs: list[asyncio.subprocess.Process] = []

    async def start(self) -> None:
        args = [sys.executable, "-m", "protocols.smtp.worker"]
        if self.settings_source:
            args.append(self.settings_source)
        for _ in range(self.count):
            proc = await asyncio.create_subprocess_exec(*args, stdin=asyncio.subprocess.DEVNULL)
            self._procs.append(proc)
        log.info("smtp: started %d worker process(es)", self.count)

    async def stop(self, grace: float) -> None:
        for proc in self._procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
        for proc in self._procs:
            try:
                await asyncio.wait_for(proc.wait(), grace + 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        self._procs.clear()
