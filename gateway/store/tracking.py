"""The message tracking log: ``store.tracking`` (migration 3).

Role: record what happened to each message, as Exchange's message tracking log does
(reference exchange-semantics.md §8): the SMTP front end writes a RECEIVE event per
accepted message; the relay engine will add SEND, DELIVER, DEFER, FAIL, DSN.
``search`` answers Get-MessageTrackingLog-style queries.

Invariants: events are append-only; every text field is truncated to
``MAX_FIELD`` characters (a client controls several of them: never an unbounded row);
times are unix seconds (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import ValidationError
from gateway.store.engine import Engine, Row, Tx

MAX_FIELD = 2048  # characters kept of each text field
MAX_RECIPIENT_FIELD = 64 * 1024  # the joined recipient list
MAX_SEARCH = 10_000  # rows per search (Exchange's ResultSize default is 1000)
MAX_BATCH = 10_000  # events per append_many

EVENT_IDS = frozenset({"RECEIVE", "SEND", "DELIVER", "DEFER", "FAIL", "DSN", "DROP",
                       "EXPAND", "RESOLVE", "REDIRECT", "SUBMIT", "POISONMESSAGE"})


@dataclass(frozen=True)
class TrackingEvent:
    """One row of the tracking log (field names follow Exchange's, with ``_``)."""

    at: float
    event_id: str
    source: str = "SMTP"
    client_ip: str = ""
    client_hostname: str = ""
    server_ip: str = ""
    server_hostname: str = ""
    source_context: str = ""
    connector_id: str = ""
    internal_message_id: int | None = None
    message_id: str = ""
    recipients: tuple[str, ...] = ()
    recipient_status: tuple[str, ...] = ()
    total_bytes: int = 0
    message_subject: str = ""
    sender_address: str = ""
    return_path: str = ""
    directionality: str = "Incoming"
    original_client_ip: str = ""
    id: int | None = None


_TEXT = ("client_ip", "client_hostname", "server_ip", "server_hostname", "source_context",
         "connector_id", "source", "event_id", "message_id", "message_subject",
         "sender_address", "return_path", "directionality", "original_client_ip")
_COLS = ("at, client_ip, client_hostname, server_ip, server_hostname, source_context, "
         "connector_id, source, event_id, internal_message_id, message_id, "
         "recipient_address, recipient_status, total_bytes, recipient_count, "
         "message_subject, sender_address, return_path, directionality, original_client_ip")


def _clip(value: str, limit: int = MAX_FIELD) -> str:
    return value if len(value) <= limit else value[:limit]


def _row(event: TrackingEvent) -> tuple[object, ...]:
    text = {name: _clip(str(getattr(event, name))) for name in _TEXT}
    return (event.at, text["client_ip"], text["client_hostname"], text["server_ip"],
            text["server_hostname"], text["source_context"], text["connector_id"],
            text["source"], text["event_id"], event.internal_message_id, text["message_id"],
            _clip(";".join(event.recipients), MAX_RECIPIENT_FIELD),
            _clip(";".join(event.recipient_status), MAX_RECIPIENT_FIELD),
            int(event.total_bytes), len(event.recipients), text["message_subject"],
            text["sender_address"], text["return_path"], text["directionality"],
            text["original_client_ip"])


def _event(row: Row) -> TrackingEvent:
    recipients = tuple(r for r in row[12].split(";") if r)
    status = tuple(s for s in row[13].split(";") if s)
    return TrackingEvent(
        id=int(row[0]), at=float(row[1]), client_ip=row[2], client_hostname=row[3],
        server_ip=row[4], server_hostname=row[5], source_context=row[6],
        connector_id=row[7], source=row[8], event_id=row[9],
        internal_message_id=None if row[10] is None else int(row[10]),
        message_id=row[11], recipients=recipients, recipient_status=status,
        total_bytes=int(row[14]), message_subject=row[16], sender_address=row[17],
        return_path=row[18], directionality=row[19], original_client_ip=row[20])


class TrackingLog:
    """``store.tracking``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def append(self, event: TrackingEvent) -> int:
        """Record ``event``; returns its id once durable."""
        if event.event_id not in EVENT_IDS:
            raise ValidationError(f"unknown tracking event id {event.event_id!r}")
        values = _row(event)
        marks = ", ".join("?" * len(values))
        return await self._engine.write(lambda tx: tx.insert_id(
            f"INSERT INTO message_tracking ({_COLS}) VALUES ({marks}) RETURNING id", values))

    async def append_many(self, events: list[TrackingEvent]) -> None:
        """Record several events in one transaction (one durable commit)."""
        if len(events) > MAX_BATCH:
            raise ValidationError(f"at most {MAX_BATCH} events per call")
        for event in events:
            if event.event_id not in EVENT_IDS:
                raise ValidationError(f"unknown tracking event id {event.event_id!r}")
        rows = [_row(e) for e in events]
        if not rows:
            return
        marks = ", ".join("?" * len(rows[0]))

        def fn(tx: Tx) -> None:
            for values in rows:
                tx.execute(f"INSERT INTO message_tracking ({_COLS}) VALUES ({marks})",
                           values)
        await self._engine.write(fn)

    async def search(self, *, sender: str | None = None, recipient: str | None = None,
                     message_id: str | None = None, event_id: str | None = None,
                     start: float | None = None, end: float | None = None,
                     limit: int = 1000) -> list[TrackingEvent]:
        """Events matching every given filter, oldest first (Get-MessageTrackingLog).

        ``sender`` matches the sender address exactly (case-insensitive);
        ``recipient`` matches one of the recipients (case-insensitive)."""
        if not 1 <= limit <= MAX_SEARCH:
            raise ValidationError(f"limit is 1 to {MAX_SEARCH}")
        where: list[str] = []
        params: list[object] = []
        if sender is not None:
            where.append("lower(sender_address) = ?")
            params.append(sender.lower())
        if message_id is not None:
            where.append("message_id = ?")
            params.append(message_id)
        if event_id is not None:
            where.append("event_id = ?")
            params.append(event_id.upper())
        if start is not None:
            where.append("at >= ?")
            params.append(start)
        if end is not None:
            where.append("at < ?")
            params.append(end)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        wanted = recipient.lower() if recipient is not None else None

        def fn(tx: Tx) -> list[Row]:
            return tx.all(f"SELECT id, {_COLS} FROM message_tracking{clause} "
                          f"ORDER BY at, id LIMIT ?", (*params, MAX_SEARCH))
        events = [_event(r) for r in await self._engine.read(fn)]
        if wanted is not None:
            events = [e for e in events if wanted in (r.lower() for r in e.recipients)]
        return events[:limit]


__all__ = ["EVENT_IDS", "TrackingEvent", "TrackingLog"]
