"""The SQLite checkpointer thread copies committed WAL frames into the database file
soon after they are committed, off the writer's path (gateway.store.sqlite_engine)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from gateway.store import open_store
from gateway.store.sqlite_engine import BACKSTOP_AUTOCHECKPOINT_PAGES, CHECKPOINT_INTERVAL


def in_database_file(db: Path, name: str) -> bool:
    """Whether the accepted domain ``name`` is in the main database file itself (the
    WAL ignored: ``immutable`` reads only the file)."""
    conn = sqlite3.connect(f"file:{db}?immutable=1", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM accepted_domains WHERE domain_name = ?",
                            (name,)).fetchone()[0] == 1
    except sqlite3.OperationalError:  # not even the schema is in the file yet
        return False
    finally:
        conn.close()


async def test_commits_reach_the_database_file_without_a_backstop_checkpoint(
        tmp_path: Path) -> None:
    assert BACKSTOP_AUTOCHECKPOINT_PAGES >= 10_000  # far from what this test writes
    db = tmp_path / "store.db"
    store = await open_store(f"sqlite:///{db}")
    try:
        await store.org.create_accepted_domain("Checkpointed", "checkpointed.test")
        assert CHECKPOINT_INTERVAL <= 1.0
        deadline = time.monotonic() + 3.0
        while not in_database_file(db, "checkpointed.test"):
            assert time.monotonic() < deadline, "the WAL was not checkpointed"
            await asyncio.sleep(0.05)
    finally:
        await store.close()
