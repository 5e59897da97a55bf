"""Migration 7: web (forms) sessions, shared by every node (docs/sessions.md).

One row per signed-in browser. The session id itself is never stored: ``id_hash`` is
the SHA-256 of it, so a read of the table (a backup, an SQL injection elsewhere) does
not hand out live sessions. ``principal`` is a JSON snapshot of the Principal taken
at login; ``credential_version`` is the mailbox's at login, so a password change on
any node ends the session at its next use. Times are unix seconds (REAL).

Invariant: append-only (a released migration is never edited).
"""

from __future__ import annotations

MIGRATION_7 = [
    """CREATE TABLE web_sessions (
        id_hash TEXT PRIMARY KEY,
        mailbox_id {bigint} NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        credential_version {bigint} NOT NULL,
        principal TEXT NOT NULL,
        protocol TEXT NOT NULL,
        created_at {real} NOT NULL,
        last_seen {real} NOT NULL,
        idle_timeout {real} NOT NULL,
        expires_at {real} NOT NULL,
        source_ip TEXT NOT NULL,
        user_agent TEXT NOT NULL)""",
    "CREATE INDEX web_sessions_mailbox ON web_sessions (mailbox_id, created_at)",
    "CREATE INDEX web_sessions_expires ON web_sessions (expires_at)",
]
