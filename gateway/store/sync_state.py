"""ActiveSync per-device sync state: one blob per (mailbox, device, collection) with its
SyncKey (MS-ASCMD 2.2.3.166). The store keeps it so any node can answer the device's
next request.

``put(..., expected_sync_key=k)`` is a compare-and-set: it fails with ``Conflict``
when another request already advanced the state (two devices requests racing), so the
ActiveSync layer can answer with its "invalid synchronization key" status.
"""

from __future__ import annotations

import time

from gateway.errors import Conflict, ValidationError
from gateway.store.engine import Engine, Row, Tx
from gateway.store.models import SyncState

MAX_ID = 256  # characters of a device or collection id (MS-ASCMD DeviceId is <= 32)
MAX_SYNC_KEY = 64  # MS-ASCMD 2.2.3.166: up to 64 characters
MAX_STATE = 16 * 1024 * 1024  # octets of one state blob

_COLS = "mailbox_id, device_id, collection_id, sync_key, state, updated_at"


def _state(row: Row) -> SyncState:
    return SyncState(int(row[0]), row[1], row[2], row[3], bytes(row[4]), float(row[5]))


def _check_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ID:
        raise ValidationError(f"{what} is 1 to {MAX_ID} characters of text")
    return value


class SyncStateStore:
    """``store.sync_state``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def get(self, mailbox_id: int, device_id: str, collection_id: str) -> SyncState | None:
        _check_id(device_id, "device id")
        _check_id(collection_id, "collection id")
        row = await self._engine.read(lambda tx: tx.one(
            f"SELECT {_COLS} FROM sync_state WHERE mailbox_id = ? AND device_id = ? AND "
            f"collection_id = ?", (mailbox_id, device_id, collection_id)))
        return _state(row) if row is not None else None

    async def list(self, mailbox_id: int, device_id: str) -> list[SyncState]:
        _check_id(device_id, "device id")
        rows = await self._engine.read(lambda tx: tx.all(
            f"SELECT {_COLS} FROM sync_state WHERE mailbox_id = ? AND device_id = ? "
            f"ORDER BY collection_id", (mailbox_id, device_id)))
        return [_state(r) for r in rows]

    async def put(self, mailbox_id: int, device_id: str, collection_id: str, sync_key: str,
                  state: bytes, *, expected_sync_key: str | None = None) -> SyncState:
        """Store the state; with ``expected_sync_key``, only if the stored key is that
        one (or nothing is stored and it is "0", the initial SyncKey)."""
        _check_id(device_id, "device id")
        _check_id(collection_id, "collection id")
        if not isinstance(sync_key, str) or not sync_key or len(sync_key) > MAX_SYNC_KEY:
            raise ValidationError(f"sync key is 1 to {MAX_SYNC_KEY} characters")
        if not isinstance(state, bytes | bytearray) or len(state) > MAX_STATE:
            raise ValidationError(f"sync state is at most {MAX_STATE} bytes")
        blob = bytes(state)
        now = time.time()

        def fn(tx: Tx) -> SyncState:
            if expected_sync_key is not None:
                # Materialise the row (as key "0") so that the row lock below also
                # serialises two first syncs racing on PostgreSQL; a Conflict rolls it back.
                tx.execute("INSERT INTO sync_state (mailbox_id, device_id, collection_id, "
                           "sync_key, state, updated_at) VALUES (?, ?, ?, '0', ?, ?) "
                           "ON CONFLICT (mailbox_id, device_id, collection_id) DO NOTHING",
                           (mailbox_id, device_id, collection_id, b"", now))
                current = tx.scalar(
                    f"SELECT sync_key FROM sync_state WHERE mailbox_id = ? AND device_id = ? "
                    f"AND collection_id = ?{tx.dialect.for_update}",
                    (mailbox_id, device_id, collection_id))
                if (current or "0") != expected_sync_key:
                    raise Conflict("the sync key has changed")
            tx.execute("INSERT INTO sync_state (mailbox_id, device_id, collection_id, "
                       "sync_key, state, updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT "
                       "(mailbox_id, device_id, collection_id) DO UPDATE SET sync_key = "
                       "excluded.sync_key, state = excluded.state, updated_at = "
                       "excluded.updated_at", (mailbox_id, device_id, collection_id,
                                               sync_key, blob, now))
            return SyncState(mailbox_id, device_id, collection_id, sync_key, blob, now)
        return await self._engine.write(fn)

    async def delete(self, mailbox_id: int, device_id: str,
                     collection_id: str | None = None) -> int:
        """Forget one collection's state, or the whole device's; returns rows removed."""
        _check_id(device_id, "device id")

        def fn(tx: Tx) -> int:
            if collection_id is None:
                cur = tx.execute("DELETE FROM sync_state WHERE mailbox_id = ? AND "
                                 "device_id = ?", (mailbox_id, device_id))
            else:
                cur = tx.execute("DELETE FROM sync_state WHERE mailbox_id = ? AND "
                                 "device_id = ? AND collection_id = ?",
                                 (mailbox_id, device_id, collection_id))
            return int(cur.rowcount)
        return await self._engine.write(fn)
