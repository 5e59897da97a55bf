"""SQLite writers of one store in several processes queue on a kernel lock
(gateway.store.sqlite_engine.ProcessWriteLock) instead of polling SQLite's."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

from gateway.store import open_store


async def test_write_waits_for_the_lock_and_proceeds_at_release(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    store = await open_store(f"sqlite:///{db}")
    try:
        lock_path = Path(f"{db}.writelock")
        assert lock_path.exists()
        # Another "process" (another open file description) holds the lock.
        fd = os.open(lock_path, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        released_at: list[float] = []

        def release() -> None:
            time.sleep(0.3)
            released_at.append(time.monotonic())
            fcntl.flock(fd, fcntl.LOCK_UN)

        threading.Thread(target=release).start()
        await store.engine.write(lambda tx: tx.execute(
            "UPDATE schema_migrations SET version = version WHERE 0"))
        done = time.monotonic()
        os.close(fd)
        assert released_at and done >= released_at[0]
        assert done - released_at[0] < 0.25  # woken by the release, not a poll backoff
    finally:
        await store.close()
