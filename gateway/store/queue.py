"""The relay queue: ``store.queue`` (migration 6).

Role: the durable part of the relay engine (gateway.relay). Front ends submit a
message with its categorised recipients in one transaction; queue workers claim due
recipients under a lease, deliver, and record the outcome.

Invariants:
* ``submit`` returns only after a durable COMMIT (group commit on SQLite);
* a claim is a lease: ``lease_until`` in the future means a worker holds the
  recipient; an expired lease is claimable again (a crashed worker's work is taken
  over). On PostgreSQL claims use ``FOR UPDATE SKIP LOCKED`` so concurrent workers in
  several processes or nodes never claim the same row; on SQLite one writer exists;
* local delivery (``deliver_local``) marks the recipient delivered in the same
  transaction that appends the message to the mailbox, and skips recipients already
  delivered: a retry after a crash never delivers twice;
* outcomes (``finish``) are fenced by the lease owner: a worker whose lease was taken
  over records nothing; a message row is deleted, with its recipients, in the
  transaction that makes its last recipient final, and a report (NDR/DSN) produced
  by that outcome is queued in that same transaction.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.errors import NotFound, ValidationError
from gateway.store import delivery as store_delivery
from gateway.store.analysis import ContentFacts
from gateway.store.engine import Engine, Row, Tx
from gateway.store.models import DeliveryResult

MAX_RECIPIENTS = 5000  # per queued message (RFC 5321 §4.5.3.1.8 requires at least 100)
MAX_LIST = 10_000
MAX_CLAIM = 1000
MAX_ERROR = 1024  # characters kept of a last-error text

FINAL = ("delivered", "failed")
STATUSES = ("ready", "retry", "suspended", "delivered", "failed")
ROUTES = ("local", "remote", "failed")


@dataclass(frozen=True)
class NewRecipient:
    """A categorised recipient to queue. Route "failed" records a recipient the
    categoriser rejected (``last_error``): a worker claims it like any other and
    reports it in an NDR."""

    address: str
    route: str  # "local" | "remote" | "failed"
    next_hop: str  # the delivery queue: "mailbox" or the remote domain
    mailbox_id: int | None = None
    status: str = "ready"
    last_error: str = ""


@dataclass(frozen=True)
class NewMessage:
    """A message to queue with its envelope and origin."""

    sender: str
    body: bytes
    recipients: tuple[NewRecipient, ...]
    message_id: str = ""
    subject: str = ""
    hop_count: int = 0
    source: str = "SMTP"
    client_ip: str = ""
    client_hostname: str = ""
    connector_id: str = ""
    authenticated_as: str = ""
    expires_at: float = 0.0
    delay_dsn_at: float = 0.0
    is_dsn: bool = False


@dataclass(frozen=True)
class QueueRow:
    """A queued message without its body (Get-Message)."""

    id: int
    created_at: float
    sender: str
    size: int
    message_id: str
    subject: str
    hop_count: int
    source: str
    client_ip: str
    client_hostname: str
    connector_id: str
    authenticated_as: str
    expires_at: float
    delay_dsn_at: float
    delay_notified: bool
    is_dsn: bool
    recipients: tuple[RecipientRow, ...] = field(default=())


@dataclass(frozen=True)
class RecipientRow:
    id: int
    queue_id: int
    address: str
    route: str
    mailbox_id: int | None
    next_hop: str
    status: str
    attempts: int
    next_attempt: float
    lease_owner: str
    lease_until: float
    last_error: str


@dataclass(frozen=True)
class Outcome:
    """What a delivery attempt did to one claimed recipient.

    ``status``: "delivered", "failed" (permanent; NDR) or "retry" (at ``next_attempt``).
    """

    recipient_id: int
    status: str
    error: str = ""
    next_attempt: float = 0.0


_MSG_COLS = ("id, created_at, sender, size, message_id, subject, hop_count, source, "
             "client_ip, client_hostname, connector_id, authenticated_as, expires_at, "
             "delay_dsn_at, delay_notified, is_dsn")
_RCPT_COLS = ("id, queue_id, address, route, mailbox_id, next_hop, status, attempts, "
              "next_attempt, lease_owner, lease_until, last_error")


def _msg(row: Row, recipients: tuple[RecipientRow, ...] = ()) -> QueueRow:
    return QueueRow(int(row[0]), float(row[1]), row[2], int(row[3]), row[4], row[5],
                    int(row[6]), row[7], row[8], row[9], row[10], row[11], float(row[12]),
                    float(row[13]), bool(row[14]), bool(row[15]), recipients)


def _rcpt(row: Row) -> RecipientRow:
    return RecipientRow(int(row[0]), int(row[1]), row[2], row[3],
                        None if row[4] is None else int(row[4]), row[5], row[6], int(row[7]),
                        float(row[8]), row[9], float(row[10]), row[11])


def _check_message(m: NewMessage) -> None:
    if not m.recipients or len(m.recipients) > MAX_RECIPIENTS:
        raise ValidationError(f"a queued message has 1 to {MAX_RECIPIENTS} recipients")
    if not isinstance(m.body, bytes | bytearray):
        raise ValidationError("message content is bytes")
    for r in m.recipients:
        if r.route not in ROUTES or r.status != "ready":
            raise ValidationError(f"bad queued recipient {r.address!r}")


def insert_message(tx: Tx, m: NewMessage, now: float) -> tuple[int, list[int]]:
    """Queue ``m`` inside the caller's transaction; returns (queue id, recipient ids)."""
    qid = tx.insert_id(
        f"INSERT INTO queue_messages ({_MSG_COLS.split(', ', 1)[1]}, body) VALUES "
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (now, m.sender, len(m.body), m.message_id[:998], m.subject[:998], m.hop_count,
         m.source, m.client_ip, m.client_hostname[:255], m.connector_id[:255],
         m.authenticated_as[:255], m.expires_at, m.delay_dsn_at, 0, int(m.is_dsn),
         bytes(m.body)))
    ids = [tx.insert_id(
        "INSERT INTO queue_recipients (queue_id, address, route, mailbox_id, next_hop, "
        "status, attempts, next_attempt, lease_owner, lease_until, last_error, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, 0, ?, '', 0, ?, ?) RETURNING id",
        (qid, r.address, r.route, r.mailbox_id, r.next_hop, r.status, now,
         r.last_error[:MAX_ERROR], now)) for r in m.recipients]
    return qid, ids


def _lock_message(tx: Tx, queue_id: int) -> None:
    """Serialise the outcome transactions of one message (PostgreSQL row lock; SQLite
    has one writer): without it two transactions finishing different recipients of
    the same message could each see the other's recipient still open, and neither
    would delete the finished message. Lock order: message row, recipient rows,
    then mailbox rows (``deliver_tx``)."""
    tx.execute(f"SELECT id FROM queue_messages WHERE id = ?{tx.dialect.for_update}",
               (queue_id,))


def _finish_message_if_done(tx: Tx, queue_id: int) -> bool:
    open_count = tx.scalar("SELECT count(*) FROM queue_recipients WHERE queue_id = ? AND "
                           "status NOT IN ('delivered', 'failed')", (queue_id,))
    if int(open_count or 0) == 0:
        tx.execute("DELETE FROM queue_recipients WHERE queue_id = ?", (queue_id,))
        tx.execute("DELETE FROM queue_messages WHERE id = ?", (queue_id,))
        return True
    return False


class QueueStore:
    """``store.queue``: every method is async and safe to call concurrently."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- submission -------------------------------------------------------------------

    async def submit(self, message: NewMessage) -> tuple[int, list[int]]:
        """Queue a message; returns (queue id, recipient ids) once durable."""
        _check_message(message)
        now = time.time()
        return await self._engine.write(lambda tx: insert_message(tx, message, now))

    async def adopt_legacy(self, legacy_id: int, message: NewMessage) -> int | None:
        """Move row ``legacy_id`` of the SMTP front end's interim ``relay_queue``
        (migration 3) into this queue as ``message``, in one transaction; None when
        another worker adopted it first."""
        _check_message(message)

        def fn(tx: Tx) -> int | None:
            if not tx.execute("DELETE FROM relay_queue WHERE id = ?", (legacy_id,)).rowcount:
                return None
            return insert_message(tx, message, time.time())[0]
        return await self._engine.write(fn)

    # -- workers ----------------------------------------------------------------------

    async def claim(self, owner: str, *, now: float, lease_seconds: float,
                    limit: int = 100) -> list[RecipientRow]:
        """Lease up to ``limit`` due recipients (ready or retry, next attempt reached,
        no live lease) to ``owner`` until ``now + lease_seconds``."""
        if not 1 <= limit <= MAX_CLAIM:
            raise ValidationError(f"claim limit is 1 to {MAX_CLAIM}")
        lock = " FOR UPDATE SKIP LOCKED" if self._engine.dialect.name == "postgresql" else ""

        def fn(tx: Tx) -> list[RecipientRow]:
            ids = [int(r[0]) for r in tx.all(
                "SELECT id FROM queue_recipients WHERE status IN ('ready', 'retry') AND "
                f"next_attempt <= ? AND lease_until <= ? ORDER BY next_attempt, id LIMIT ?{lock}",
                (now, now, limit))]
            if not ids:
                return []
            marks = ", ".join("?" * len(ids))
            tx.execute(f"UPDATE queue_recipients SET lease_owner = ?, lease_until = ? "
                       f"WHERE id IN ({marks})", (owner, now + lease_seconds, *ids))
            return [_rcpt(r) for r in tx.all(
                f"SELECT {_RCPT_COLS} FROM queue_recipients WHERE id IN ({marks}) "
                "ORDER BY queue_id, id", ids)]
        return await self._engine.write(fn)

    async def next_due(self) -> float | None:
        """The earliest next-attempt time of a waiting recipient (None: queue idle)."""
        value = await self._engine.read(lambda tx: tx.scalar(
            "SELECT min(CASE WHEN lease_until > next_attempt THEN lease_until "
            "ELSE next_attempt END) FROM queue_recipients WHERE status IN ('ready', 'retry')"))
        return None if value is None else float(value)

    async def load(self, queue_id: int) -> tuple[QueueRow, bytes]:
        """A queued message with its recipients and content, in one read."""
        def fn(tx: Tx) -> tuple[QueueRow, bytes]:
            m = tx.one(f"SELECT {_MSG_COLS}, body FROM queue_messages WHERE id = ?",
                       (queue_id,))
            if m is None:
                raise NotFound(f"queued message {queue_id} not found")
            rs = tx.all(f"SELECT {_RCPT_COLS} FROM queue_recipients WHERE queue_id = ? "
                        "ORDER BY id", (queue_id,))
            return _msg(m, tuple(_rcpt(r) for r in rs)), bytes(m[-1])
        return await self._engine.read(fn)

    async def body(self, queue_id: int) -> bytes:
        row = await self._engine.read(lambda tx: tx.one(
            "SELECT body FROM queue_messages WHERE id = ?", (queue_id,)))
        if row is None:
            raise NotFound(f"queued message {queue_id} not found")
        return bytes(row[0])

    async def deliver_local(self, queue_id: int, targets: Sequence[tuple[int, int]],
                            facts: ContentFacts,
                            ) -> tuple[list[int], DeliveryResult | None, bool]:
        """Deliver to the Inboxes of ``targets`` [(recipient id, mailbox id)] and mark
        those recipients delivered, in one transaction. Recipients already final are
        skipped (idempotent). Returns (recipient ids delivered now, the store's
        delivery result or None, whether the message is finished)."""
        pg = self._engine.dialect.name == "postgresql"

        def fn(tx: Tx) -> tuple[list[int], DeliveryResult | None, bool]:
            _lock_message(tx, queue_id)
            ids = sorted(rid for rid, _ in targets)
            marks = ", ".join("?" * len(ids))
            # Lock the recipient rows first (queue rows, then mail_state in deliver_tx).
            pending = {int(r[0]) for r in tx.all(
                f"SELECT id FROM queue_recipients WHERE id IN ({marks}) AND status NOT IN "
                f"('delivered', 'failed') ORDER BY id{' FOR UPDATE' if pg else ''}", ids)}
            todo = [(rid, mb) for rid, mb in targets if rid in pending]
            result = None
            now = time.time()
            if todo:
                recipients = sorted(
                    {mb: store_delivery._Recipient(mb, None, 0, "", None)
                     for _, mb in todo}.values(), key=lambda r: r.mailbox_id)
                result = store_delivery.deliver_tx(tx, facts, recipients, now)
                done = [rid for rid, _ in todo]
                tx.execute(
                    f"UPDATE queue_recipients SET status = 'delivered', lease_until = 0, "
                    f"last_error = '', updated_at = ? WHERE id IN ({', '.join('?' * len(done))})",
                    (now, *done))
            finished = _finish_message_if_done(tx, queue_id)
            return [rid for rid, _ in todo], result, finished
        return await self._engine.write(fn)

    async def finish(self, queue_id: int, owner: str, outcomes: Sequence[Outcome], *,
                     reports: Sequence[NewMessage] = (),
                     delay_notified: bool = False) -> tuple[list[int], bool]:
        """Record ``outcomes`` of ``owner``'s leased recipients, queue ``reports``
        (NDRs/DSNs) and mark a delay DSN sent, in one transaction. Outcomes for rows no
        longer leased to ``owner`` are ignored. Returns (recipient ids recorded,
        whether the message is finished)."""
        for o in outcomes:
            if o.status not in ("delivered", "failed", "retry"):
                raise ValidationError(f"bad outcome {o.status!r}")
        for report in reports:
            _check_message(report)

        def fn(tx: Tx) -> tuple[list[int], bool]:
            _lock_message(tx, queue_id)
            now = time.time()
            recorded: list[int] = []
            for o in sorted(outcomes, key=lambda o: o.recipient_id):
                cur = tx.execute(
                    "UPDATE queue_recipients SET status = ?, attempts = attempts + 1, "
                    "next_attempt = ?, lease_until = 0, last_error = ?, updated_at = ? "
                    "WHERE id = ? AND lease_owner = ? AND status NOT IN ('delivered', 'failed')",
                    (o.status, o.next_attempt if o.status == "retry" else now,
                     o.error[:MAX_ERROR], now, o.recipient_id, owner))
                if cur.rowcount:
                    recorded.append(o.recipient_id)
            if delay_notified:
                tx.execute("UPDATE queue_messages SET delay_notified = 1 WHERE id = ?",
                           (queue_id,))
            if recorded or delay_notified or not outcomes:
                for report in reports:
                    insert_message(tx, report, now)
            return recorded, _finish_message_if_done(tx, queue_id)
        return await self._engine.write(fn)

    # -- administration (Get-Queue, Get-Message, Suspend/Resume/Remove-Message) --------

    async def list_messages(self, *, limit: int = 1000) -> list[QueueRow]:
        """Queued messages with their recipients, oldest first."""
        if not 1 <= limit <= MAX_LIST:
            raise ValidationError(f"limit is 1 to {MAX_LIST}")

        def fn(tx: Tx) -> list[QueueRow]:
            msgs = tx.all(f"SELECT {_MSG_COLS} FROM queue_messages ORDER BY id LIMIT ?",
                          (limit,))
            if not msgs:
                return []
            first, last = int(msgs[0][0]), int(msgs[-1][0])
            by_queue: dict[int, list[RecipientRow]] = {}
            for r in tx.all(f"SELECT {_RCPT_COLS} FROM queue_recipients WHERE queue_id "
                            "BETWEEN ? AND ? ORDER BY id", (first, last)):
                rr = _rcpt(r)
                by_queue.setdefault(rr.queue_id, []).append(rr)
            return [_msg(m, tuple(by_queue.get(int(m[0]), ()))) for m in msgs]
        return await self._engine.read(fn)

    async def get_message(self, queue_id: int) -> QueueRow:
        def fn(tx: Tx) -> QueueRow:
            m = tx.one(f"SELECT {_MSG_COLS} FROM queue_messages WHERE id = ?", (queue_id,))
            if m is None:
                raise NotFound(f"queued message {queue_id} not found")
            rs = tx.all(f"SELECT {_RCPT_COLS} FROM queue_recipients WHERE queue_id = ? "
                        "ORDER BY id", (queue_id,))
            return _msg(m, tuple(_rcpt(r) for r in rs))
        return await self._engine.read(fn)

    async def set_suspended(self, queue_id: int, suspended: bool) -> int:
        """Suspend (or resume) the message's waiting recipients; returns how many."""
        src, dst = (("ready", "retry"), "suspended") if suspended else (("suspended",), "ready")
        marks = ", ".join("?" * len(src))

        def fn(tx: Tx) -> int:
            if tx.one("SELECT id FROM queue_messages WHERE id = ?", (queue_id,)) is None:
                raise NotFound(f"queued message {queue_id} not found")
            return int(tx.execute(
                f"UPDATE queue_recipients SET status = ?, next_attempt = ?, updated_at = ? "
                f"WHERE queue_id = ? AND status IN ({marks})",
                (dst, time.time(), time.time(), queue_id, *src)).rowcount)
        return await self._engine.write(fn)

    async def retry_now(self, next_hop: str | None = None) -> int:
        """Make every waiting recipient (of ``next_hop``, or all) due now (Retry-Queue)."""
        where, params = ("", ()) if next_hop is None else (" AND next_hop = ?", (next_hop,))
        return await self._engine.write(lambda tx: int(tx.execute(
            "UPDATE queue_recipients SET next_attempt = ? WHERE status = 'retry'" + where,
            (time.time(), *params)).rowcount))

    async def remove(self, queue_id: int, *, report: NewMessage | None = None) -> None:
        """Delete a queued message (Remove-Message), queueing ``report`` (the NDR of
        -WithNDR) in the same transaction."""
        def fn(tx: Tx) -> None:
            if tx.one("SELECT id FROM queue_messages WHERE id = ?", (queue_id,)) is None:
                raise NotFound(f"queued message {queue_id} not found")
            tx.execute("DELETE FROM queue_recipients WHERE queue_id = ?", (queue_id,))
            tx.execute("DELETE FROM queue_messages WHERE id = ?", (queue_id,))
            if report is not None:
                insert_message(tx, report, time.time())
        if report is not None:
            _check_message(report)
        await self._engine.write(fn)


__all__ = ["FINAL", "NewMessage", "NewRecipient", "Outcome", "QueueRow", "QueueStore",
           "RecipientRow", "insert_message"]
