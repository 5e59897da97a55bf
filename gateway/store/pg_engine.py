"""PostgreSQL engine: psycopg 3 (sync API) connections used from a thread pool.

Each worker thread of a private executor owns one connection (``POOL_SIZE`` at most),
opened on first use and reopened after it breaks. Each write job is its own
transaction; PostgreSQL's WAL already groups concurrent commits into shared flushes
(tune ``commit_delay``/``commit_siblings`` on busy servers, see docs/store.md).
``synchronous_commit`` is forced ``on`` for the store's sessions: COMMIT returns only
once the WAL record is flushed, which is the durability the delivery API promises.

Jobs that hit a deadlock or serialization failure are retried (``RETRIES`` times) -
transaction functions are pure functions of the database, so re-running one is safe.

Change notifications: a write job that called ``tx.notify(id)`` issues
``pg_notify('gateway_mail', id)`` before COMMIT (NOTIFY is transactional: delivered
only if the transaction commits); ``listen()`` runs one async LISTEN connection that
relays other nodes' notifications to the local change hub.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from gateway.errors import AlreadyExists, GatewayError, NotFound, StoreUnavailable
from gateway.store.engine import (
    POSTGRESQL,
    Engine,
    Params,
    Row,
    T,
    Tx,
    TxFn,
    qmark_to_format,
)
from gateway.store.migrations import PG_MIGRATION_LOCK, apply_migrations

log = logging.getLogger(__name__)

POOL_SIZE = 8
RETRIES = 5
CONNECT_TIMEOUT = 10  # seconds
CHANNEL = "gateway_mail"


def translate_error(exc: BaseException) -> BaseException:
    """Map psycopg errors to the gateway's protocol-neutral errors."""
    if isinstance(exc, GatewayError) or not isinstance(exc, psycopg.Error):
        return exc
    if isinstance(exc, pg_errors.UniqueViolation):
        return AlreadyExists("an object with that name or address already exists")
    if isinstance(exc, pg_errors.ForeignKeyViolation):
        return NotFound("a referenced object does not exist")
    log.error("postgresql error: %s", exc)
    return StoreUnavailable("the store failed to run the operation")


def _consume(fut: asyncio.Future[Any]) -> None:
    """Retrieve a job's outcome so an abandoned (cancelled) caller leaves no
    "exception was never retrieved" warning."""
    if not fut.cancelled():
        fut.exception()


class PgTx(Tx):
    dialect = POSTGRESQL

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        super().__init__()
        self._conn = conn

    def execute(self, sql: str, params: Params = ()) -> Any:
        return self._conn.execute(qmark_to_format(sql), tuple(params))

    def all_binary(self, sql: str, params: Params = ()) -> list[Row]:
        cur = self._conn.execute(qmark_to_format(sql), tuple(params), binary=True)
        return [tuple(r) for r in cur.fetchall()]


class PgEngine(Engine):
    """See the module docstring."""

    dialect = POSTGRESQL

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self.dsn = dsn
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=POOL_SIZE, thread_name_prefix="store-pg")
        self._local = threading.local()
        self._conns: list[psycopg.Connection[Any]] = []
        self._conns_lock = threading.Lock()
        self._closed = False
        self._listener: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def cross_process_poll_interval(self) -> float | None:
        return 10.0  # a safety net only: LISTEN/NOTIFY pushes changes

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
        except psycopg.Error as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
        conn.execute("SET synchronous_commit = on")
        return conn

    def _conn(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = self._connect()
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._migrate)

    def _migrate(self) -> None:
        conn = self._conn()
        try:
            with conn.transaction():
                tx = PgTx(conn)
                tx.execute("SELECT pg_advisory_xact_lock(?)", (PG_MIGRATION_LOCK,))
                apply_migrations(tx)
        except BaseException as exc:
            raise translate_error(exc) from exc

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await asyncio.to_thread(self._pool.shutdown, True)
        with self._conns_lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()

    def _run(self, fn: TxFn[T], readonly: bool) -> T:
        attempt = 0
        while True:
            attempt += 1
            notified: set[int] = set()
            try:
                conn = self._conn()
                with conn.transaction():
                    tx = PgTx(conn)
                    if readonly:
                        tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    result = fn(tx)
                    for mailbox_id in sorted(tx.notified):
                        tx.execute("SELECT pg_notify(?, ?)", (CHANNEL, str(mailbox_id)))
                    notified = tx.notified
            except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure) as exc:
                if attempt <= RETRIES:
                    log.info("postgresql transaction retried after: %s", exc)
                    continue
                raise StoreUnavailable("the store is too busy, try again") from exc
            except psycopg.OperationalError as exc:
                # The connection broke: one retry on a fresh connection is safe only
                # for reads (a write may have committed before the link went down).
                if readonly and attempt <= 1:
                    continue
                raise StoreUnavailable("the store connection failed") from exc
            except BaseException as exc:
                if not readonly:
                    self.stats.failed_jobs += 1
                raise translate_error(exc) from exc
            if readonly:
                self.stats.read_jobs += 1
            else:
                self.stats.commits += 1
                self.stats.write_jobs += 1
            if notified:
                self._wake(notified)
            return result

    def _wake(self, notified: set[int]) -> None:
        loop = self._loop
        if loop is not None and self._notifier is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._notifier, set(notified))

    async def _submit(self, fn: TxFn[T], readonly: bool) -> T:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        loop = asyncio.get_running_loop()
        self._loop = loop
        fut = loop.run_in_executor(self._pool, self._run, fn, readonly)
        fut.add_done_callback(_consume)
        if readonly:
            return await fut
        result: T = await asyncio.shield(fut)
        return result

    async def read(self, fn: TxFn[T]) -> T:
        return await self._submit(fn, True)

    async def write(self, fn: TxFn[T]) -> T:
        return await self._submit(fn, False)

    def listen(self, on_mailbox: Callable[[set[int]], None]) -> None:
        """Relay NOTIFYs from every node to ``on_mailbox`` (runs until ``close``)."""
        self._listener = asyncio.get_running_loop().create_task(self._listen(on_mailbox))

    async def _listen(self, on_mailbox: Callable[[set[int]], None]) -> None:
        while not self._closed:
            try:
                aconn = await psycopg.AsyncConnection.connect(
                    self.dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
                async with aconn:
                    await aconn.execute(f"LISTEN {CHANNEL}")
                    async for note in aconn.notifies():
                        with contextlib.suppress(ValueError):
                            on_mailbox({int(note.payload)})
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("postgresql LISTEN connection lost (%s); retrying", exc)
                await asyncio.sleep(1.0)
