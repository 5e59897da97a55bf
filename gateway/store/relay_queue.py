"""The pending-relay queue: ``store.relay_queue`` (migration 3).

Role: the minimal durable outbound queue. The SMTP front end puts here, before it
answers 250, every accepted message that has recipients outside the organisation's
mailboxes (relay granted by the receive connector's policy), so no acknowledged message
is lost while the relay engine does not exist yet. The relay issue takes this table
over: it claims ``ready`` rows (PostgreSQL ``FOR UPDATE SKIP LOCKED``), delivers, and
deletes or reschedules them.

Invariants: ``enqueue`` returns only after a durable COMMIT; the body is stored as
received after the SMTP layer's normalisation (CRLF line ends, dot-unstuffed).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from gateway.errors import ValidationError
from gateway.store.engine import Engine, Row

MAX_QUEUED_SIZE = 2 * 1024 * 1024 * 1024  # octets; Exchange's MaxMessageSize ceiling
MAX_RECIPIENTS = 5000
MAX_LIST = 10_000


@dataclass(frozen=True)
class QueuedMessage:
    id: int
    created_at: float
    sender: str
    recipients: tuple[str, ...]
    size: int
    message_id: str
    connector_id: str
    client_ip: str
    authenticated_as: str
    status: str
    attempts: int
    next_attempt: float
    last_error: str


_COLS = ("id, created_at, sender, recipients, size, message_id, connector_id, client_ip, "
         "authenticated_as, status, attempts, next_attempt, last_error")


def _queued(row: Row) -> QueuedMessage:
    return QueuedMessage(int(row[0]), float(row[1]), row[2], tuple(json.loads(row[3])),
                         int(row[4]), row[5], row[6], row[7], row[8], row[9], int(row[10]),
                         float(row[11]), row[12])


class RelayQueue:
    """``store.relay_queue``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def enqueue(self, *, sender: str, recipients: list[str], body: bytes,
                      message_id: str, connector_id: str, client_ip: str,
                      authenticated_as: str = "") -> int:
        """Queue ``body`` for ``recipients``; returns the queue id once durable."""
        if not recipients or len(recipients) > MAX_RECIPIENTS:
            raise ValidationError(f"a queued message has 1 to {MAX_RECIPIENTS} recipients")
        if len(body) > MAX_QUEUED_SIZE:
            raise ValidationError("message too large for the relay queue")
        now = time.time()
        values = (now, sender, json.dumps(recipients), len(body), bytes(body), message_id,
                  connector_id, client_ip, authenticated_as, "ready", 0, now, "")
        return await self._engine.write(lambda tx: tx.insert_id(
            "INSERT INTO relay_queue (created_at, sender, recipients, size, body, "
            "message_id, connector_id, client_ip, authenticated_as, status, attempts, "
            "next_attempt, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "RETURNING id", values))

    async def list(self, *, limit: int = 1000) -> list[QueuedMessage]:
        """Queued messages, oldest first (without bodies)."""
        if not 1 <= limit <= MAX_LIST:
            raise ValidationError(f"limit is 1 to {MAX_LIST}")
        rows = await self._engine.read(lambda tx: tx.all(
            f"SELECT {_COLS} FROM relay_queue ORDER BY id LIMIT ?", (limit,)))
        return [_queued(r) for r in rows]

    async def body(self, queue_id: int) -> bytes | None:
        row = await self._engine.read(lambda tx: tx.one(
            "SELECT body FROM relay_queue WHERE id = ?", (queue_id,)))
        return None if row is None else bytes(row[0])
