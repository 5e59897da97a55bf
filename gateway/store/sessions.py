"""Web (forms) sessions in the store: ``store.sessions`` (docs/sessions.md).

Role: persistence for ``auth.sessions.FormsSessionService``; every node reads and
writes the same rows, so a browser may hit any node behind the load balancer. Keys are
SHA-256 digests of session ids (hex); this module never sees an id.

Invariants:
- ``get`` returns a session joined with its mailbox's *current* credential version
  and per-protocol flags, in one read; it never returns a session of a deleted
  mailbox (inner join; the foreign key also cascades);
- expiry is decided by the caller's clock, stored as ``expires_at`` (absolute) and
  ``last_seen + idle_timeout`` (idle); ``purge_expired`` deletes both kinds;
- ``create`` keeps at most ``max_per_mailbox`` sessions per mailbox, dropping the
  oldest in the same transaction (a password-spraying success cannot pile up rows);
- every text field is bounded; bad input raises ``ValidationError``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from gateway.errors import NotFound, ValidationError
from gateway.store.engine import Engine, Row, Tx

MAX_PRINCIPAL_JSON = 16_384
MAX_USER_AGENT = 256
MAX_SOURCE_IP = 64
MAX_PROTOCOL = 32
MAX_SESSIONS_PER_MAILBOX = 1000  # hard ceiling for the per-call limit
MAX_LIST = 1000
_HASH = re.compile(r"\A[0-9a-f]{64}\Z")

_COLS = ("s.id_hash, s.mailbox_id, s.credential_version, s.principal, s.protocol, "
         "s.created_at, s.last_seen, s.idle_timeout, s.expires_at, s.source_ip, "
         "s.user_agent, m.credential_version, m.owa_enabled, m.activesync_enabled")


@dataclass(frozen=True)
class WebSession:
    """One stored session, with what its mailbox looks like now."""

    id_hash: str
    mailbox_id: int
    credential_version: int           # the mailbox's at login
    principal: dict[str, Any]         # JSON snapshot taken at login
    protocol: str                     # "owa", ...
    created_at: float
    last_seen: float
    idle_timeout: float
    expires_at: float                 # absolute expiry
    source_ip: str
    user_agent: str
    mailbox_credential_version: int   # the mailbox's now
    mailbox_owa_enabled: bool
    mailbox_activesync_enabled: bool

    def idle_deadline(self) -> float:
        return self.last_seen + self.idle_timeout


def _session(row: Row) -> WebSession:
    return WebSession(
        id_hash=row[0], mailbox_id=int(row[1]), credential_version=int(row[2]),
        principal=json.loads(row[3]), protocol=row[4], created_at=float(row[5]),
        last_seen=float(row[6]), idle_timeout=float(row[7]), expires_at=float(row[8]),
        source_ip=row[9], user_agent=row[10], mailbox_credential_version=int(row[11]),
        mailbox_owa_enabled=bool(row[12]), mailbox_activesync_enabled=bool(row[13]))


def _check_hash(id_hash: object) -> str:
    if not isinstance(id_hash, str) or not _HASH.match(id_hash):
        raise ValidationError("a session key is 64 lower-case hexadecimal digits")
    return id_hash


def _bounded_text(value: object, limit: int) -> str:
    text = value if isinstance(value, str) else ""
    return "".join(c if c.isprintable() else "?" for c in text[:limit])


class SessionStore:
    """``store.sessions``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def create(self, id_hash: str, *, mailbox_id: int, principal: dict[str, Any],
                     protocol: str, now: float, idle_timeout: float,
                     absolute_timeout: float, source_ip: str = "", user_agent: str = "",
                     max_per_mailbox: int = 100) -> int:
        """Store a new session bound to the mailbox's credential version, read in the
        same transaction; drop the mailbox's oldest sessions beyond
        ``max_per_mailbox``. Returns the credential version; ``NotFound`` when the
        mailbox is gone."""
        _check_hash(id_hash)
        if not 0 < idle_timeout <= absolute_timeout:
            raise ValidationError("0 < idle_timeout <= absolute_timeout")
        if not 1 <= max_per_mailbox <= MAX_SESSIONS_PER_MAILBOX:
            raise ValidationError(f"max_per_mailbox is 1 to {MAX_SESSIONS_PER_MAILBOX}")
        if not isinstance(protocol, str) or not 0 < len(protocol) <= MAX_PROTOCOL:
            raise ValidationError("protocol is a short name")
        blob = json.dumps(principal, separators=(",", ":"), sort_keys=True)
        if len(blob) > MAX_PRINCIPAL_JSON:
            raise ValidationError("principal snapshot too large")
        params = (id_hash, blob, protocol, now, now, float(idle_timeout),
                  now + float(absolute_timeout), _bounded_text(source_ip, MAX_SOURCE_IP),
                  _bounded_text(user_agent, MAX_USER_AGENT), int(mailbox_id))

        def fn(tx: Tx) -> int:
            cur = tx.execute(
                "INSERT INTO web_sessions (id_hash, mailbox_id, credential_version, "
                "principal, protocol, created_at, last_seen, idle_timeout, expires_at, "
                "source_ip, user_agent) SELECT ?, id, credential_version, ?, ?, ?, ?, ?, "
                "?, ?, ? FROM mailboxes WHERE id = ?", params)
            if cur.rowcount != 1:
                raise NotFound(f"mailbox {mailbox_id} not found")
            # Keep the new session and the newest max_per_mailbox - 1 others.
            offset = "LIMIT -1 OFFSET ?" if tx.dialect.name == "sqlite" else "OFFSET ?"
            tx.execute("DELETE FROM web_sessions WHERE mailbox_id = ? AND id_hash IN ("
                       "SELECT id_hash FROM web_sessions WHERE mailbox_id = ? AND "
                       f"id_hash <> ? ORDER BY created_at DESC, id_hash {offset})",
                       (int(mailbox_id), int(mailbox_id), id_hash, max_per_mailbox - 1))
            return int(tx.scalar("SELECT credential_version FROM web_sessions "
                                 "WHERE id_hash = ?", (id_hash,)))
        return await self._engine.write(fn)

    async def get(self, id_hash: str) -> WebSession | None:
        """The session (expired or not: the caller decides), or None."""
        _check_hash(id_hash)
        row = await self._engine.read(lambda tx: tx.one(
            f"SELECT {_COLS} FROM web_sessions s JOIN mailboxes m ON m.id = s.mailbox_id "
            f"WHERE s.id_hash = ?", (id_hash,)))
        return _session(row) if row is not None else None

    async def touch(self, id_hash: str, now: float) -> None:
        """Record activity (the idle timeout restarts); never moves ``last_seen`` back."""
        _check_hash(id_hash)
        await self._engine.write(lambda tx: tx.execute(
            "UPDATE web_sessions SET last_seen = ? WHERE id_hash = ? AND last_seen < ?",
            (now, id_hash, now)))

    async def delete(self, id_hash: str) -> bool:
        """End one session (logoff); False when it did not exist."""
        _check_hash(id_hash)
        return bool(await self._engine.write(lambda tx: tx.execute(
            "DELETE FROM web_sessions WHERE id_hash = ?", (id_hash,)).rowcount))

    async def delete_for_mailbox(self, mailbox_id: int) -> int:
        """End every session of a mailbox (sign out everywhere); how many ended."""
        return int(await self._engine.write(lambda tx: tx.execute(
            "DELETE FROM web_sessions WHERE mailbox_id = ?", (int(mailbox_id),)).rowcount))

    async def list_for_mailbox(self, mailbox_id: int) -> list[WebSession]:
        """The mailbox's sessions, newest first (at most MAX_LIST)."""
        rows = await self._engine.read(lambda tx: tx.all(
            f"SELECT {_COLS} FROM web_sessions s JOIN mailboxes m ON m.id = s.mailbox_id "
            f"WHERE s.mailbox_id = ? ORDER BY s.created_at DESC, s.id_hash LIMIT ?",
            (int(mailbox_id), MAX_LIST)))
        return [_session(r) for r in rows]

    async def purge_expired(self, now: float) -> int:
        """Delete sessions past their absolute or idle expiry; how many."""
        return int(await self._engine.write(lambda tx: tx.execute(
            "DELETE FROM web_sessions WHERE expires_at <= ? OR last_seen + idle_timeout <= ?",
            (now, now)).rowcount))
