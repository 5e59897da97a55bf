"""SQLite engine: WAL, one writer thread with group commit, a pool of readers.

Durability (issue 2 item 4): ``journal_mode=WAL`` with ``synchronous=FULL`` fsyncs the
WAL at every COMMIT, so a committed transaction survives ``kill -9`` *and* power loss.
(``NORMAL`` would survive ``kill -9`` but not power loss; we take FULL and recover the
throughput through group commit.)

Group commit: every write job goes to one queue served by one thread that owns the only
write connection. The thread takes the first job, drains whatever else is queued (up to
``MAX_BATCH``), runs each job inside its own SAVEPOINT - a job that raises is rolled back
alone - and COMMITs once for the whole batch. Only then are the jobs' futures resolved,
so no caller sees success before its data is on disk. While one batch fsyncs, new jobs
queue and form the next batch: the batch size adapts to load with no added latency.

Readers: ``READERS`` connections, one per thread of a private executor; WAL lets them
read concurrently with the writer, each read job inside ``BEGIN`` for one snapshot.

Checkpoints: a ``Checkpointer`` thread copies the WAL into the database file
(``PASSIVE``, every ``CHECKPOINT_EVERY_COMMITS`` commits or ``CHECKPOINT_INTERVAL``),
so no COMMIT waits for a checkpoint; the writer's automatic checkpoint remains only as
a backstop at ``BACKSTOP_AUTOCHECKPOINT_PAGES``.

Several processes (SMTP workers) writing one store take ``ProcessWriteLock``, a
``flock`` around each batch, instead of polling SQLite's lock.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fcntl
import logging
import os
import queue
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import AlreadyExists, GatewayError, NotFound, StoreUnavailable
from gateway.store.engine import SQLITE, Engine, Params, T, Tx, TxFn
from gateway.store.migrations import apply_migrations

log = logging.getLogger(__name__)

MAX_BATCH = 256  # jobs sharing one COMMIT
READERS = 4  # read connections / threads
BUSY_TIMEOUT_MS = 30_000  # wait for another process's write lock this long
CHECKPOINT_EVERY_COMMITS = 32  # wake the checkpointer after this many commits
CHECKPOINT_INTERVAL = 0.5  # seconds; and at least this often while the store is open
# The writer's own automatic checkpoint, only a backstop should the checkpointer fall
# behind: 20,000 pages (80 MB of WAL at 4 KiB pages; SQLite's default is 1,000).
BACKSTOP_AUTOCHECKPOINT_PAGES = 20_000


def translate_error(exc: BaseException) -> BaseException:
    """Map sqlite3 errors to the gateway's protocol-neutral errors."""
    if isinstance(exc, GatewayError) or not isinstance(exc, sqlite3.Error):
        return exc
    if isinstance(exc, sqlite3.IntegrityError):
        text = str(exc)
        if "UNIQUE" in text or "PRIMARY KEY" in text:
            return AlreadyExists("an object with that name or address already exists")
        if "FOREIGN KEY" in text:
            return NotFound("a referenced object does not exist")
    log.error("sqlite error: %s", exc)
    return StoreUnavailable("the store failed to run the operation")


class SqliteTx(Tx):
    dialect = SQLITE

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__()
        self._conn = conn

    def execute(self, sql: str, params: Params = ()) -> Any:
        return self._conn.execute(sql, tuple(params))


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                           timeout=BUSY_TIMEOUT_MS / 1000)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = FULL")
    if readonly:
        conn.execute("PRAGMA query_only = ON")
    return conn


def _consume(fut: asyncio.Future[Any]) -> None:
    """Retrieve a job's outcome so an abandoned (cancelled) caller leaves no
    "exception was never retrieved" warning."""
    if not fut.cancelled():
        fut.exception()


@dataclass
class _Job:
    fn: TxFn[Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None
    notified: set[int] = field(default_factory=set)


class ProcessWriteLock:
    """An exclusive ``flock`` on ``<database>.writelock`` held around each write batch.

    Several processes may write one store (SMTP worker processes). SQLite alone makes
    a process that finds the database locked poll with sleeps of 1, 2, 5, 10... ms
    (its default busy handler), so two group-committing writers spend most of their
    time asleep. Queuing on a kernel lock first wakes the next writer the moment the
    previous COMMIT's fsync returns. SQLite's own locking stays in force (and
    ``busy_timeout`` still covers writers that do not take this lock, e.g. the
    ``sqlite3`` shell). The lock file is opened on first use; ``:memory:`` and
    unwritable directories go without (one process per such store).
    """

    def __init__(self, database: Path) -> None:
        self._path = Path(f"{database}.writelock")
        self._fd: int | None = None
        self._usable = str(database) != ":memory:"

    def __enter__(self) -> None:
        if not self._usable:
            return
        if self._fd is None:
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                log.warning("cannot open %s (%s): writers of this store from several "
                            "processes will poll SQLite's lock instead", self._path, exc)
                self._usable = False
                return
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Checkpointer:
    """Copies committed WAL frames into the database file on its own thread and
    connection (``PRAGMA wal_checkpoint(PASSIVE)``, which never blocks readers or the
    writer).

    Left to SQLite, the checkpoint runs inside the COMMIT that crosses 1,000 WAL pages:
    that commit - and every job queued behind it - waits for megabytes to be copied
    and the database file fsynced (with 100 KiB messages, every 40th delivery). Here
    the writer only counts commits and the checkpoint overlaps the next batches.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._wake = threading.Event()
        self._stopping = False
        self._commits = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="store-checkpoint",
                                        daemon=True)
        self._thread.start()

    def committed(self) -> None:
        """Called by the writer thread after each COMMIT."""
        self._commits += 1
        if self._commits >= CHECKPOINT_EVERY_COMMITS:
            self._commits = 0
            self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        try:
            conn = _connect(self._path, readonly=False)
        except sqlite3.Error as exc:
            log.warning("sqlite checkpointer cannot open %s (%s); the writer's automatic "
                        "checkpoint remains", self._path, exc)
            return
        try:
            while not self._stopping:
                self._wake.wait(CHECKPOINT_INTERVAL)
                self._wake.clear()
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:
                    log.warning("sqlite checkpoint failed: %s", exc)
        finally:
            conn.close()


class SqliteEngine(Engine):
    """See the module docstring."""

    dialect = SQLITE

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._write_conn: sqlite3.Connection | None = None
        self._readers = concurrent.futures.ThreadPoolExecutor(
            max_workers=READERS, thread_name_prefix="store-read")
        self._local = threading.local()
        self._read_conns: list[sqlite3.Connection] = []
        self._read_lock = threading.Lock()
        self._process_lock = ProcessWriteLock(path)
        self._checkpointer = Checkpointer(path)
        self._closed = False

    async def start(self) -> None:
        await asyncio.to_thread(self._open_writer_locked)
        self._writer = threading.Thread(target=self._writer_loop, name="store-write",
                                        daemon=True)
        self._writer.start()
        self._checkpointer.start()

    def _open_writer_locked(self) -> None:
        # Opening converts a new file to WAL and migrates it; several processes (or
        # stores in one process) opening at once would otherwise meet SQLite's
        # immediate "database is locked" on the conversion.
        with self._process_lock:
            self._open_writer()

    def _open_writer(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = _connect(self.path, readonly=False)
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open SQLite store {self.path}: {exc}") from exc
        if str(mode).lower() != "wal":
            raise StoreUnavailable(f"SQLite store {self.path} refused WAL mode ({mode})")
        try:
            # BEGIN IMMEDIATE takes the database write lock: a second process starting
            # at the same time waits (busy_timeout) and then finds the work done.
            conn.execute("BEGIN IMMEDIATE")
            apply_migrations(SqliteTx(conn))
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()
            raise translate_error(exc) from exc
        conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_AUTOCHECKPOINT_PAGES}")
        self._write_conn = conn

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._writer.join)
            await asyncio.to_thread(self._checkpointer.stop)
        self._readers.shutdown(wait=True)
        with self._read_lock:
            for conn in self._read_conns:
                conn.close()
            self._read_conns.clear()
        if self._write_conn is not None:
            self._write_conn.close()
            self._write_conn = None
        self._process_lock.close()

    # -- reads ---------------------------------------------------------------------

    def _reader_conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path, readonly=True)
            self._local.conn = conn
            with self._read_lock:
                self._read_conns.append(conn)
        return conn

    def _run_read(self, fn: TxFn[T]) -> T:
        conn = self._reader_conn()
        conn.execute("BEGIN")
        try:
            return fn(SqliteTx(conn))
        except BaseException as exc:
            raise translate_error(exc) from exc
        finally:
            conn.execute("ROLLBACK")
            self.stats.read_jobs += 1

    async def read(self, fn: TxFn[T]) -> T:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._run_read, fn)

    # -- writes --------------------------------------------------------------------

    async def write(self, fn: TxFn[T]) -> T:
        if self._closed or self._writer is None:
            raise StoreUnavailable("the store is closed")
        loop = asyncio.get_running_loop()
        job = _Job(fn=fn, loop=loop, future=loop.create_future())
        job.future.add_done_callback(_consume)
        self._queue.put(job)
        # Shielded: a cancelled caller does not un-queue a job that may already be
        # committed; the job's outcome simply goes unobserved.
        result: T = await asyncio.shield(job.future)
        return result

    def _writer_loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
            try:
                self._run_batch(batch)
            except Exception as exc:  # a bug here must not leave callers waiting forever
                log.exception("sqlite writer failed")
                self._fail_batch([j for j in batch if not j.future.done()], exc)

    def _run_batch(self, batch: list[_Job]) -> None:
        with self._process_lock:
            self._run_batch_locked(batch)

    def _run_batch_locked(self, batch: list[_Job]) -> None:
        conn = self._write_conn
        assert conn is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._fail_batch(batch, exc)
            return
        for job in batch:
            try:
                conn.execute("SAVEPOINT job")
            except sqlite3.Error as exc:
                self._fail_batch(batch, exc)
                return
            tx = SqliteTx(conn)
            try:
                job.result = job.fn(tx)
                job.notified = tx.notified
                conn.execute("RELEASE job")
            except BaseException as exc:
                job.error = translate_error(exc)
                try:
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                except sqlite3.Error as exc2:
                    self._fail_batch(batch, exc2)
                    return
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._fail_batch(batch, exc)
            return
        self._checkpointer.committed()
        self.stats.commits += 1
        self.stats.write_jobs += len(batch)
        self.stats.batch_sizes.append(len(batch))
        del self.stats.batch_sizes[:-1000]
        notified: set[int] = set()
        for job in batch:
            if job.error is None:
                notified |= job.notified
            else:
                self.stats.failed_jobs += 1
            self._resolve(job)
        if notified and self._notifier is not None:
            loops = {job.loop for job in batch}
            for loop in loops:
                loop.call_soon_threadsafe(self._notifier, set(notified))

    def _fail_batch(self, batch: list[_Job], exc: BaseException) -> None:
        log.error("sqlite write batch of %d failed: %s", len(batch), exc)
        conn = self._write_conn
        if conn is not None and conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                log.exception("rollback after failed batch")
        for job in batch:
            job.error = StoreUnavailable("the store could not commit the operation")
            self.stats.failed_jobs += 1
            self._resolve(job)

    @staticmethod
    def _resolve(job: _Job) -> None:
        def settle() -> None:
            if job.future.done():
                return
            if job.error is not None:
                job.future.set_exception(job.error)
            else:
                job.future.set_result(job.result)

        try:
            job.loop.call_soon_threadsafe(settle)
        except RuntimeError:  # the caller's loop is gone; nobody is waiting
            pass
