"""Auth state in the store: ``store.auth_state`` (docs/dev/interfaces.md).

Lockout counters and the audit trail live in the store so that every process and node
sees the same numbers. ``record_failure`` is atomic: the counter row is created if
missing (``ON CONFLICT DO NOTHING``) and then read under a row lock (PostgreSQL
``FOR UPDATE``; SQLite has a single writer), so concurrent failures never lose a count.
"""

from __future__ import annotations

from gateway.errors import ValidationError
from gateway.store.engine import Engine, Row, Tx
from gateway.store.models import AuthAuditEvent, FailureCounter

MAX_KEY = 512
MAX_KEYS = 1000  # per get_counters/clear call
MAX_AUDIT_LIST = 10_000
MAX_AUDIT_FIELD = 1024  # characters kept of each audit text field

_AUDIT_COLS = "at, event, protocol, mechanism, login, mailbox_id, source_ip, outcome, reason"


def _counter(row: Row) -> FailureCounter:
    return FailureCounter(row[0], int(row[1]), float(row[2]), float(row[3]), float(row[4]))


def _check_keys(keys: list[str]) -> list[str]:
    if isinstance(keys, str) or len(keys) > MAX_KEYS:
        raise ValidationError(f"counter keys are a list of at most {MAX_KEYS}")
    for key in keys:
        if not isinstance(key, str) or not key or len(key) > MAX_KEY:
            raise ValidationError(f"a counter key is 1 to {MAX_KEY} characters")
    return list(dict.fromkeys(keys))


class AuthStateStore:
    """``store.auth_state``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def get_counters(self, keys: list[str]) -> dict[str, FailureCounter]:
        keys = _check_keys(keys)
        if not keys:
            return {}
        rows = await self._engine.read(lambda tx: tx.all(
            f"SELECT key, count, first_failure, last_failure, locked_until FROM auth_failures "
            f"WHERE key IN ({','.join('?' * len(keys))})", keys))
        return {r[0]: _counter(r) for r in rows}

    async def record_failure(self, key: str, *, now: float, window: float, lock_for: float,
                             threshold: int) -> FailureCounter:
        """Reset when ``now - first_failure > window``, count one failure, and lock until
        ``now + lock_for`` once ``count >= threshold`` (``lock_for`` 0: never lock). An
        existing lock that has not expired is kept across a window reset."""
        _check_keys([key])
        if window < 0 or lock_for < 0 or threshold < 1:
            raise ValidationError("window and lock_for >= 0, threshold >= 1")

        def fn(tx: Tx) -> FailureCounter:
            tx.execute("INSERT INTO auth_failures (key, count, first_failure, last_failure, "
                       "locked_until) VALUES (?, 0, ?, ?, 0) ON CONFLICT (key) DO NOTHING",
                       (key, now, now))
            row = tx.one(f"SELECT key, count, first_failure, last_failure, locked_until FROM "
                         f"auth_failures WHERE key = ?{tx.dialect.for_update}", (key,))
            assert row is not None
            cur = _counter(row)
            count, first, locked = cur.count, cur.first_failure, cur.locked_until
            if count == 0 or now - first > window:
                count, first = 0, now
                if locked <= now:
                    locked = 0.0
            count += 1
            if lock_for > 0 and count >= threshold:
                locked = max(locked, now + lock_for)
            tx.execute("UPDATE auth_failures SET count = ?, first_failure = ?, "
                       "last_failure = ?, locked_until = ? WHERE key = ?",
                       (count, first, now, locked, key))
            return FailureCounter(key, count, first, now, locked)
        return await self._engine.write(fn)

    async def clear(self, keys: list[str]) -> None:
        keys = _check_keys(keys)
        if not keys:
            return

        def fn(tx: Tx) -> None:
            tx.execute(f"DELETE FROM auth_failures WHERE key IN ({','.join('?' * len(keys))})",
                       keys)
        await self._engine.write(fn)

    async def prune(self, *, older_than: float, now: float) -> int:
        """Delete counters whose window began before ``older_than`` and that hold no
        lock at ``now`` (record_failure would reset them anyway); returns how many.
        The audit trail is kept: it is a record, not state."""
        def fn(tx: Tx) -> int:
            return int(tx.execute(
                "DELETE FROM auth_failures WHERE first_failure < ? AND locked_until <= ?",
                (older_than, now)).rowcount)
        return await self._engine.write(fn)

    async def append_audit(self, event: AuthAuditEvent) -> None:
        def clip(value: str) -> str:
            return str(value)[:MAX_AUDIT_FIELD]
        params = (float(event.at), clip(event.event), clip(event.protocol),
                  clip(event.mechanism), clip(event.login), event.mailbox_id,
                  clip(event.source_ip), clip(event.outcome), clip(event.reason))

        def fn(tx: Tx) -> None:
            tx.execute(f"INSERT INTO auth_audit ({_AUDIT_COLS}) VALUES "
                       f"(?, ?, ?, ?, ?, ?, ?, ?, ?)", params)
        await self._engine.write(fn)

    async def list_audit(self, *, since: float = 0, limit: int = 100) -> list[AuthAuditEvent]:
        """Events at or after ``since``, newest first."""
        limit = max(1, min(int(limit), MAX_AUDIT_LIST))
        rows = await self._engine.read(lambda tx: tx.all(
            f"SELECT {_AUDIT_COLS} FROM auth_audit WHERE at >= ? ORDER BY at DESC, id DESC "
            f"LIMIT ?", (since, limit)))
        return [AuthAuditEvent(float(r[0]), r[1], r[2], r[3], r[4],
                               None if r[5] is None else int(r[5]), r[6], r[7], r[8])
                for r in rows]
