"""Migration 3: the message tracking log and the pending-relay queue (issue 3, SMTP).

``message_tracking`` follows Exchange's message tracking log (reference
exchange-semantics.md §8: date-time, client-ip, server-hostname, connector-id, source,
event-id, internal-message-id, message-id, recipient-address, recipient-status,
total-bytes, sender-address, return-path, directionality ...): one row per event,
recipients joined with ``;`` as Exchange writes them.

``relay_queue`` is the minimal durable outbound queue: messages accepted by SMTP for
recipients outside the organisation's authoritative mailboxes (relay granted by the
connector policy) wait here until the relay engine (a later issue) takes them over.
Nothing is acknowledged to a client before its row is committed.

Invariant: append-only (a released migration is never edited).
"""

from __future__ import annotations

MIGRATION_3 = [
    """CREATE TABLE message_tracking (
        id {id},
        at {real} NOT NULL,
        client_ip TEXT NOT NULL,
        client_hostname TEXT NOT NULL,
        server_ip TEXT NOT NULL,
        server_hostname TEXT NOT NULL,
        source_context TEXT NOT NULL,
        connector_id TEXT NOT NULL,
        source TEXT NOT NULL,
        event_id TEXT NOT NULL,
        internal_message_id {bigint},
        message_id TEXT NOT NULL,
        recipient_address TEXT NOT NULL,
        recipient_status TEXT NOT NULL,
        total_bytes {bigint} NOT NULL,
        recipient_count INTEGER NOT NULL,
        message_subject TEXT NOT NULL,
        sender_address TEXT NOT NULL,
        return_path TEXT NOT NULL,
        directionality TEXT NOT NULL,
        original_client_ip TEXT NOT NULL)""",
    "CREATE INDEX message_tracking_at ON message_tracking (at)",
    "CREATE INDEX message_tracking_message_id ON message_tracking (message_id)",
    "CREATE INDEX message_tracking_sender ON message_tracking (sender_address)",
    """CREATE TABLE relay_queue (
        id {id},
        created_at {real} NOT NULL,
        sender TEXT NOT NULL,
        recipients TEXT NOT NULL,
        size {bigint} NOT NULL,
        body {blob} NOT NULL,
        message_id TEXT NOT NULL,
        connector_id TEXT NOT NULL,
        client_ip TEXT NOT NULL,
        authenticated_as TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        next_attempt {real} NOT NULL,
        last_error TEXT NOT NULL)""",
    "CREATE INDEX relay_queue_ready ON relay_queue (status, next_attempt)",
]
