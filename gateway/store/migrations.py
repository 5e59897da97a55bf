"""Schema migrations, numbered and recorded in ``schema_migrations``.

``apply_migrations(tx)`` runs inside a transaction that the engine opened under a lock
(SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: ``pg_advisory_xact_lock``), so two processes
starting at once apply each migration exactly once. A migration is a list of DDL/DML
statements with dialect markers (``{id}``, ``{blob}``, ``{bigint}``, ``{real}``).

Invariant: migrations are append-only; a released migration is never edited.
Booleans are INTEGER 0/1 and times are unix seconds (REAL) in both engines so one code
path reads them.
"""

from __future__ import annotations

import time

from gateway.store.connectors_schema import MIGRATION_2
from gateway.store.engine import Tx
from gateway.store.queue_schema import MIGRATION_6
from gateway.store.sessions_schema import MIGRATION_7
from gateway.store.tracking_schema import MIGRATION_3

MIGRATION_1 = [
    # -- organisation configuration -------------------------------------------------
    "CREATE TABLE org_version (id INTEGER PRIMARY KEY, version {bigint} NOT NULL)",
    "INSERT INTO org_version (id, version) VALUES (1, 0)",
    """CREATE TABLE accepted_domains (
        id {id},
        name TEXT NOT NULL,
        name_key TEXT NOT NULL UNIQUE,
        domain_name TEXT NOT NULL UNIQUE,
        domain_type TEXT NOT NULL,
        is_default INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE mailboxes (
        id {id},
        name TEXT NOT NULL,
        name_key TEXT NOT NULL UNIQUE,
        display_name TEXT NOT NULL,
        primary_smtp_address TEXT NOT NULL,
        email_addresses TEXT NOT NULL,
        user_principal_name TEXT NOT NULL,
        sam_account_name TEXT NOT NULL,
        sam_key TEXT NOT NULL UNIQUE,
        password_hash TEXT,
        nt_hash {blob},
        ntlm_enabled INTEGER NOT NULL,
        owa_enabled INTEGER NOT NULL,
        activesync_enabled INTEGER NOT NULL,
        imap_enabled INTEGER NOT NULL,
        pop_enabled INTEGER NOT NULL,
        smtp_submission_enabled INTEGER NOT NULL,
        credential_version {bigint} NOT NULL,
        source TEXT NOT NULL,
        created_at {real} NOT NULL)""",
    # Every address of every mailbox (primary, further SMTP, UPN), lower-cased: the
    # primary key makes addresses unique across mailboxes without read-then-write races.
    """CREATE TABLE mailbox_addresses (
        address TEXT PRIMARY KEY,
        mailbox_id {bigint} NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        is_smtp INTEGER NOT NULL,
        is_upn INTEGER NOT NULL)""",
    "CREATE INDEX mailbox_addresses_mailbox ON mailbox_addresses (mailbox_id)",
    """CREATE TABLE certificate_mappings (
        kind TEXT NOT NULL,
        value_key TEXT NOT NULL,
        value TEXT NOT NULL,
        mailbox_id {bigint} NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        PRIMARY KEY (kind, value_key))""",
    "CREATE INDEX certificate_mappings_mailbox ON certificate_mappings (mailbox_id)",
    "CREATE TABLE org_settings (section TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # -- auth state -----------------------------------------------------------------
    """CREATE TABLE auth_failures (
        key TEXT PRIMARY KEY,
        count {bigint} NOT NULL,
        first_failure {real} NOT NULL,
        last_failure {real} NOT NULL,
        locked_until {real} NOT NULL)""",
    """CREATE TABLE auth_audit (
        id {id},
        at {real} NOT NULL,
        event TEXT NOT NULL,
        protocol TEXT NOT NULL,
        mechanism TEXT NOT NULL,
        login TEXT NOT NULL,
        mailbox_id {bigint},
        source_ip TEXT NOT NULL,
        outcome TEXT NOT NULL,
        reason TEXT NOT NULL)""",
    "CREATE INDEX auth_audit_at ON auth_audit (at)",
    # -- mail -------------------------------------------------------------------------
    # Per-mailbox counters; ``modseq`` is the mailbox's modification sequence and the
    # sequence of its change feed (RFC 7162 §3: per-mailbox, strictly increasing).
    # Updating this row is also the mailbox's write lock on PostgreSQL.
    """CREATE TABLE mail_state (
        mailbox_id {bigint} PRIMARY KEY REFERENCES mailboxes(id) ON DELETE CASCADE,
        modseq {bigint} NOT NULL,
        next_uidvalidity {bigint} NOT NULL)""",
    """CREATE TABLE folders (
        id {id},
        mailbox_id {bigint} NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        parent_id {bigint} REFERENCES folders(id),
        name TEXT NOT NULL,
        full_name TEXT NOT NULL,
        full_name_key TEXT NOT NULL,
        special_use TEXT,
        uidvalidity {bigint} NOT NULL,
        uidnext {bigint} NOT NULL,
        highest_modseq {bigint} NOT NULL,
        message_count {bigint} NOT NULL,
        unseen_count {bigint} NOT NULL,
        total_size {bigint} NOT NULL,
        subscribed INTEGER NOT NULL,
        created_at {real} NOT NULL,
        UNIQUE (mailbox_id, full_name_key),
        UNIQUE (mailbox_id, special_use))""",
    "CREATE INDEX folders_parent ON folders (parent_id)",
    # Content stored once however many messages reference it (keyed by SHA-256), with
    # what IMAP/ActiveSync/web need computed once at delivery.
    """CREATE TABLE contents (
        id {id},
        sha256 TEXT NOT NULL UNIQUE,
        size {bigint} NOT NULL,
        refcount {bigint} NOT NULL,
        body {blob} NOT NULL,
        summary TEXT,
        subject TEXT NOT NULL,
        from_addr TEXT NOT NULL,
        to_addr TEXT NOT NULL,
        cc_addr TEXT NOT NULL,
        message_id TEXT NOT NULL,
        sent_date {real},
        preview TEXT NOT NULL,
        has_attachments INTEGER NOT NULL,
        created_at {real} NOT NULL)""",
    """CREATE TABLE messages (
        id {id},
        mailbox_id {bigint} NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        folder_id {bigint} NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
        uid {bigint} NOT NULL,
        content_id {bigint} NOT NULL REFERENCES contents(id),
        flags INTEGER NOT NULL,
        keywords TEXT NOT NULL,
        internal_date {real} NOT NULL,
        size {bigint} NOT NULL,
        modseq {bigint} NOT NULL,
        UNIQUE (folder_id, uid))""",
    "CREATE INDEX messages_folder_modseq ON messages (folder_id, modseq)",
    "CREATE INDEX messages_folder_date ON messages (folder_id, internal_date)",
    "CREATE INDEX messages_content ON messages (content_id)",
    "CREATE INDEX messages_mailbox ON messages (mailbox_id)",
    # The change feed: one row per change, written in the same transaction.
    """CREATE TABLE mail_changes (
        id {id},
        mailbox_id {bigint} NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        modseq {bigint} NOT NULL,
        folder_id {bigint} NOT NULL,
        kind TEXT NOT NULL,
        uid {bigint},
        message_id {bigint},
        detail TEXT,
        at {real} NOT NULL)""",
    "CREATE INDEX mail_changes_mailbox_modseq ON mail_changes (mailbox_id, modseq)",
    "CREATE INDEX mail_changes_folder_modseq ON mail_changes (folder_id, modseq)",
    # ActiveSync per-device sync state (MS-ASCMD 2.2.3.166 SyncKey).
    """CREATE TABLE sync_state (
        mailbox_id {bigint} NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        device_id TEXT NOT NULL,
        collection_id TEXT NOT NULL,
        sync_key TEXT NOT NULL,
        state {blob} NOT NULL,
        updated_at {real} NOT NULL,
        PRIMARY KEY (mailbox_id, device_id, collection_id))""",
]

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (1, "initial schema", MIGRATION_1),
    (2, "receive connectors and permissions", MIGRATION_2),
    (3, "message tracking log and relay queue", MIGRATION_3),
    (6, "relay queue and send connectors", MIGRATION_6),
    (7, "web sessions", MIGRATION_7),
]

# PostgreSQL advisory lock key held while migrating ("gwstore" in ASCII).
PG_MIGRATION_LOCK = 0x6777_7374_6F72_65


def apply_migrations(tx: Tx) -> list[int]:
    """Apply every pending migration inside the caller's (locked) transaction.

    Returns the versions applied (empty when the schema was current)."""
    bigint = tx.dialect.bigint
    real = tx.dialect.real
    tx.execute(f"CREATE TABLE IF NOT EXISTS schema_migrations (version {bigint} PRIMARY KEY,"
               f" name TEXT NOT NULL, applied_at {real} NOT NULL)")
    done = {int(r[0]) for r in tx.all("SELECT version FROM schema_migrations")}
    applied: list[int] = []
    for version, name, statements in MIGRATIONS:
        if version in done:
            continue
        for statement in statements:
            tx.execute(tx.dialect.ddl(statement))
        tx.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                   (version, name, time.time()))
        applied.append(version)
    return applied
