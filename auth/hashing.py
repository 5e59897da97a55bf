"""Running password hashing off the event loop, with bounded concurrency.

Role: the one place CPU-bound hashing (argon2 verification, the dummy verification for
unknown users) leaves the event loop. A dedicated thread pool of ``max_workers``
threads does the work; at most ``max_pending`` calls may wait for it, further calls are
refused at once with ``AuthUnavailable`` so a flood of logins cannot queue unbounded
work or exhaust the default executor that store I/O shares.

Invariants: never blocks the event loop; the dummy hash is made once per process with
the current CryptContext parameters, so verifying against it costs what verifying a
real, current hash costs.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from auth.errors import AuthUnavailable
from auth.passwords import hash_password, verify_password

T = TypeVar("T")

DEFAULT_MAX_WORKERS = max(1, min(4, os.cpu_count() or 1))
DEFAULT_MAX_PENDING = 256


class HashRunner:
    """Runs hashing functions in a small dedicated thread pool."""

    def __init__(self, *, max_workers: int = DEFAULT_MAX_WORKERS,
                 max_pending: int = DEFAULT_MAX_PENDING) -> None:
        if max_workers < 1 or max_pending < 1:
            raise ValueError("max_workers and max_pending must be at least 1")
        self._executor = ThreadPoolExecutor(max_workers=max_workers,
                                            thread_name_prefix="auth-hash")
        self._max_pending = max_pending
        self._pending = 0
        self._dummy_hash: str | None = None
        self._dummy_lock = asyncio.Lock()
        self.dummy_verifications = 0  # observable for tests and metrics

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` in the pool; ``AuthUnavailable`` when too many wait."""
        if self._pending >= self._max_pending:
            raise AuthUnavailable("too many authentications in progress")
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, fn, *args)
        finally:
            self._pending -= 1

    async def verify(self, password: str, stored_hash: str) -> tuple[bool, str | None]:
        """``auth.passwords.verify_password`` off the loop."""
        return await self.run(verify_password, password, stored_hash)

    async def dummy_hash(self) -> str:
        """A hash of a random secret with the current parameters (made once)."""
        async with self._dummy_lock:
            if self._dummy_hash is None:
                self._dummy_hash = await self.run(hash_password, secrets.token_urlsafe(24))
            return self._dummy_hash

    async def warm_up(self) -> None:
        """Make the dummy hash now (call at start-up), so the first unknown-user login
        does not pay for creating it and stand out by its timing."""
        await self.dummy_hash()

    async def dummy_verify(self, password: str) -> None:
        """Verify ``password`` against the dummy hash (the unknown-user path)."""
        stored = await self.dummy_hash()
        self.dummy_verifications += 1
        await self.verify(password or "x", stored)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
