"""Migration 6: the relay queue and the send connectors (issue 4, relay engine).

``queue_messages`` holds one row per accepted message: the envelope sender, the raw
content (CRLF line ends, as the front end accepted it), what the admin cmdlets and the
tracking log show (Message-ID, subject, origin), its hop count, expiry and whether a
delay DSN went out. ``queue_recipients`` holds one row per envelope recipient with its
category (local mailbox or remote next hop), status, attempt count, next-attempt time
and lease. A message row is deleted (recipients cascade) once every recipient is
final (delivered or failed); the tracking log keeps the history.

``send_connectors`` follows Exchange's Send connector (New-SendConnector): address
spaces with costs, smart hosts or DNS routing, port, TLS and smart-host auth.

Invariant: append-only (a released migration is never edited). Times are unix seconds.
"""

from __future__ import annotations

MIGRATION_6 = [
    """CREATE TABLE queue_messages (
        id {id},
        created_at {real} NOT NULL,
        sender TEXT NOT NULL,
        size {bigint} NOT NULL,
        body {blob} NOT NULL,
        message_id TEXT NOT NULL,
        subject TEXT NOT NULL,
        hop_count INTEGER NOT NULL,
        source TEXT NOT NULL,
        client_ip TEXT NOT NULL,
        client_hostname TEXT NOT NULL,
        connector_id TEXT NOT NULL,
        authenticated_as TEXT NOT NULL,
        expires_at {real} NOT NULL,
        delay_dsn_at {real} NOT NULL,
        delay_notified INTEGER NOT NULL,
        is_dsn INTEGER NOT NULL)""",
    """CREATE TABLE queue_recipients (
        id {id},
        queue_id {bigint} NOT NULL REFERENCES queue_messages(id) ON DELETE CASCADE,
        address TEXT NOT NULL,
        route TEXT NOT NULL,
        mailbox_id {bigint},
        next_hop TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        next_attempt {real} NOT NULL,
        lease_owner TEXT NOT NULL,
        lease_until {real} NOT NULL,
        last_error TEXT NOT NULL,
        updated_at {real} NOT NULL)""",
    "CREATE INDEX queue_recipients_due ON queue_recipients (status, next_attempt)",
    "CREATE INDEX queue_recipients_queue ON queue_recipients (queue_id)",
    """CREATE TABLE send_connectors (
        id {id},
        name TEXT NOT NULL,
        name_key TEXT NOT NULL UNIQUE,
        address_spaces TEXT NOT NULL,
        smart_hosts TEXT NOT NULL,
        dns_routing_enabled INTEGER NOT NULL,
        port INTEGER NOT NULL,
        require_tls INTEGER NOT NULL,
        auth_mechanism TEXT NOT NULL,
        auth_username TEXT NOT NULL,
        auth_password TEXT NOT NULL,
        enabled INTEGER NOT NULL,
        max_per_domain INTEGER NOT NULL,
        created_at {real} NOT NULL)""",
]
