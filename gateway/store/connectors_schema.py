"""Migration 2: receive connectors and their explicit permissions (issue 3).

``receive_connectors`` keeps the identity columns (server, name, with case-folded keys
for uniqueness) and every other property as one JSON document, so adding a property
later needs no schema change. ``receive_connector_permissions`` holds one row per
(user, extended right, allow/deny) entry of ``Add-ADPermission``.
"""

from __future__ import annotations

MIGRATION_2 = [
    """CREATE TABLE receive_connectors (
        id {id},
        server TEXT NOT NULL,
        server_key TEXT NOT NULL,
        name TEXT NOT NULL,
        name_key TEXT NOT NULL,
        settings TEXT NOT NULL,
        created_at {real} NOT NULL,
        UNIQUE (server_key, name_key))""",
    """CREATE TABLE receive_connector_permissions (
        id {id},
        connector_id {bigint} NOT NULL REFERENCES receive_connectors(id) ON DELETE CASCADE,
        user_name TEXT NOT NULL,
        user_key TEXT NOT NULL,
        extended_right TEXT NOT NULL,
        deny INTEGER NOT NULL,
        UNIQUE (connector_id, user_key, extended_right, deny))""",
    "CREATE INDEX receive_connector_permissions_connector "
    "ON receive_connector_permissions (connector_id)",
]
