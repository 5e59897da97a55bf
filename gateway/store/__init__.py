"""The mailbox store: organisation configuration, auth state and mail, on SQLite or
PostgreSQL through one code path (docs/store.md, docs/dev/interfaces.md).

    store = await open_store("sqlite:///var/gateway.db")
    store.org, store.auth_state, store.mail, store.changes, store.sync_state
    d = store.begin_delivery(); d.add_recipient(mailbox_id); await d.write(raw)
    result = await d.commit()
    await store.close()

Only the composition root calls ``open_store``; protocols receive a ``Store``.
"""

from __future__ import annotations

from pathlib import Path

from gateway.store.auth_state import AuthStateStore
from gateway.store.changes import ChangeFeed, ChangeHub
from gateway.store.connectors import ConnectorStore
from gateway.store.delivery import DEFAULT_MAX_MESSAGE_SIZE, Delivery, MessageTooLarge
from gateway.store.engine import Engine, EngineStats
from gateway.store.mail import MailStore, pop3_unique_id
from gateway.store.org import OrgStore
from gateway.store.queue import QueueStore
from gateway.store.relay_queue import RelayQueue
from gateway.store.search import ImapSearchStore
from gateway.store.send_connectors import SendConnectorStore
from gateway.store.sessions import SessionStore
from gateway.store.sync_state import SyncStateStore
from gateway.store.tracking import TrackingLog
from gateway.store.url import StoreURL, parse_store_url

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "Delivery",
    "MessageTooLarge",
    "Store",
    "StoreURL",
    "open_store",
    "parse_store_url",
    "pop3_unique_id",
]


class Store:
    """One open store. Every method is async and safe to call concurrently."""

    def __init__(self, engine: Engine, url: StoreURL, *,
                 max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
                 spool_dir: Path | None = None) -> None:
        self.engine = engine
        self.url = url
        self.max_message_size = max_message_size
        self.spool_dir = spool_dir
        self._hub = ChangeHub(engine)
        engine.set_notifier(self._hub.wake)
        self.org = OrgStore(engine)
        self.connectors = ConnectorStore(engine)
        self.auth_state = AuthStateStore(engine)
        self.mail = MailStore(engine)
        self.changes = ChangeFeed(engine, self._hub)
        self.sync_state = SyncStateStore(engine)
        self.imap_search = ImapSearchStore(engine)
        self.tracking = TrackingLog(engine)
        self.relay_queue = RelayQueue(engine)
        self.queue = QueueStore(engine)
        self.send_connectors = SendConnectorStore(engine)
        self.sessions = SessionStore(engine)

    @property
    def stats(self) -> EngineStats:
        """Engine counters: ``commits`` and ``write_jobs`` show group commit at work."""
        return self.engine.stats

    def begin_delivery(self, *, max_size: int | None = None,
                       stored_form: bool = False) -> Delivery:
        """Start a delivery (see ``gateway.store.delivery``; ``stored_form``: the caller
        guarantees CRLF-only line ends, as the SMTP DATA decoder does)."""
        return Delivery(self.engine, max_size=max_size or self.max_message_size,
                        spool_dir=self.spool_dir, stored_form=stored_form)

    async def close(self) -> None:
        await self._hub.close()
        await self.engine.close()


async def open_store(url: str, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
                     spool_dir: Path | None = None) -> Store:
    """Open the store at ``url`` and run pending migrations (safe from several processes
    at once). ``ConfigError`` for a bad URL, ``StoreUnavailable`` when unreachable."""
    parsed = parse_store_url(url)
    engine: Engine
    if parsed.engine == "sqlite":
        from gateway.store.sqlite_engine import SqliteEngine

        assert parsed.path is not None
        engine = SqliteEngine(parsed.path)
    else:
        from gateway.store.pg_engine import PgEngine

        assert parsed.dsn is not None
        engine = PgEngine(parsed.dsn)
    try:
        await engine.start()
    except BaseException:
        await engine.close()
        raise
    store = Store(engine, parsed, max_message_size=max_message_size, spool_dir=spool_dir)
    if parsed.engine == "postgresql":
        from gateway.store.pg_engine import PgEngine

        assert isinstance(engine, PgEngine)
        engine.listen(store._hub.wake)
    return store
