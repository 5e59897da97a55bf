"""Contract: migrations and store URLs."""

from __future__ import annotations

import asyncio

import pytest

from gateway.errors import ConfigError
from gateway.store import open_store, parse_store_url
from gateway.store.migrations import MIGRATIONS


async def test_migrations_idempotent_and_data_kept(store_url):
    first = await open_store(store_url)
    mb = await first.org.create_mailbox(name="alice", primary_smtp_address="a@example.test")
    await first.close()
    again = await open_store(store_url)
    try:
        assert (await again.org.get_mailbox("alice")).id == mb.id
        versions = await again.engine.read(lambda tx: tx.all(
            "SELECT version FROM schema_migrations ORDER BY version"))
        assert [v for (v,) in versions] == [v for v, _n, _s in MIGRATIONS]
    finally:
        await again.close()


async def test_concurrent_opens_migrate_once(store_url):
    stores = await asyncio.gather(*(open_store(store_url) for _ in range(4)))
    try:
        count = await stores[0].engine.read(lambda tx: tx.scalar(
            "SELECT count(*) FROM schema_migrations"))
        assert count == len(MIGRATIONS)
    finally:
        for s in stores:
            await s.close()


def test_url_parsing():
    assert str(parse_store_url("sqlite:///var/gateway.db").path) == "var/gateway.db"
    assert str(parse_store_url("sqlite:////abs/path.db").path) == "/abs/path.db"
    pg = parse_store_url("postgresql://u:secret@db.example:5432/mail?sslmode=require")
    assert pg.engine == "postgresql" and "secret" not in pg.redacted()
    for bad in ("", "mysql://x/y", "sqlite://", "sqlite:///", "postgresql://host",
                "gateway.db"):
        with pytest.raises(ConfigError):
            parse_store_url(bad)


async def test_unreachable_stores_fail_cleanly(tmp_path):
    from gateway.errors import StoreUnavailable

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreUnavailable):
        await open_store(f"sqlite:///{blocker}/sub/store.db")
    with pytest.raises(StoreUnavailable):
        await open_store("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2")
