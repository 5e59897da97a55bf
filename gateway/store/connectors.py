"""Receive connectors in the store: ``store.connectors`` (docs/dev/smtp-policy.md).

Invariants:
* every write starts by bumping ``org_version`` in the same transaction, which both
  publishes the change to every node's snapshot cache and serialises org writers, so
  the §2 conflict check (run inside the transaction against every connector of the
  server) cannot be raced by a concurrent write;
* a stored connector always passes ``validate_connector`` and ``check_conflicts``;
* names are unique per server, case-insensitively (``server_key``, ``name_key``).
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from gateway.connectors.model import ADPermission, ReceiveConnector
from gateway.connectors.ranges import parse_binding, parse_ip_range
from gateway.connectors.rights import canonical_principal, canonical_right
from gateway.connectors.validation import check_conflicts, validate_connector
from gateway.errors import AlreadyExists, NotFound, ValidationError
from gateway.store.engine import Engine, Row, Tx

_COLS = "id, server, name, settings"
_IDENTITY_FIELDS = frozenset({"id", "server", "name", "permissions"})
MAX_PERMISSIONS = 1000        # explicit entries per connector
MAX_USER_LENGTH = 256


def _bump(tx: Tx) -> None:
    tx.execute("UPDATE org_version SET version = version + 1 WHERE id = 1")


def settings_json(c: ReceiveConnector) -> str:
    """Every property but the identity columns and permissions, as JSON."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(c):
        if f.name in _IDENTITY_FIELDS:
            continue
        value = getattr(c, f.name)
        if f.name == "bindings":
            value = [str(b) for b in value]
        elif f.name == "remote_ip_ranges":
            value = [r.text for r in value]
        elif isinstance(value, frozenset):
            value = sorted(value)
        out[f.name] = value
    return json.dumps(out, sort_keys=True)


def _from_row(row: Row, permissions: tuple[ADPermission, ...]) -> ReceiveConnector:
    data = json.loads(row[3])
    known = {f.name for f in dataclasses.fields(ReceiveConnector)} - _IDENTITY_FIELDS
    values: dict[str, Any] = {k: v for k, v in data.items() if k in known}
    values["bindings"] = tuple(parse_binding(b) for b in values.get("bindings", ()))
    values["remote_ip_ranges"] = tuple(parse_ip_range(r)
                                       for r in values.get("remote_ip_ranges", ()))
    for key in ("permission_groups", "auth_mechanism"):
        if key in values:
            values[key] = frozenset(values[key])
    return ReceiveConnector(id=int(row[0]), server=row[1], name=row[2],
                            permissions=permissions, **values)


def _load_all(tx: Tx, where: str = "", params: tuple[Any, ...] = ()) -> list[ReceiveConnector]:
    rows = tx.all(f"SELECT {_COLS} FROM receive_connectors {where} "
                  "ORDER BY server_key, name_key", params)
    if not rows:
        return []
    ids = [int(r[0]) for r in rows]
    perms: dict[int, list[ADPermission]] = {i: [] for i in ids}
    marks = ",".join("?" * len(ids))
    for p in tx.all("SELECT connector_id, user_name, extended_right, deny FROM "
                    f"receive_connector_permissions WHERE connector_id IN ({marks}) "
                    "ORDER BY id", tuple(ids)):
        perms[int(p[0])].append(ADPermission(p[1], p[2], bool(p[3])))
    return [_from_row(r, tuple(perms[int(r[0])])) for r in rows]


def _get(tx: Tx, connector_id: int) -> ReceiveConnector:
    found = _load_all(tx, "WHERE id = ?", (connector_id,))
    if not found:
        raise NotFound(f"receive connector {connector_id} not found")
    return found[0]


def _check_and_lock(tx: Tx, c: ReceiveConnector) -> None:
    validate_connector(c)
    others = _load_all(tx, "WHERE server_key = ?", (c.server.casefold(),))
    check_conflicts(c, others)
    row = tx.one("SELECT id FROM receive_connectors WHERE server_key = ? AND name_key = ? "
                 "AND id <> ?", (c.server.casefold(), c.name.casefold(), c.id))
    if row is not None:
        raise AlreadyExists(f"a receive connector named {c.name!r} already exists on "
                            f"server {c.server}")


class ConnectorStore:
    """``store.connectors``: receive connectors and their explicit permissions."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def list_receive_connectors(self, *, server: str | None = None
                                      ) -> list[ReceiveConnector]:
        """Every connector (of ``server`` when given), ordered by server and name."""
        if server is None:
            return await self._engine.read(lambda tx: _load_all(tx))
        key = server.casefold()
        return await self._engine.read(lambda tx: _load_all(tx, "WHERE server_key = ?",
                                                             (key,)))

    async def get_receive_connector(self, identity: str, *, server: str | None = None
                                    ) -> ReceiveConnector:
        """By ``Server\\Name``, by name (on ``server`` when given; ambiguous names on
        several servers are refused) or by ``str(id)``. ``NotFound``."""
        text = identity.strip()

        def fn(tx: Tx) -> ReceiveConnector:
            if "\\" in text:
                srv, _, name = text.partition("\\")
                found = _load_all(tx, "WHERE server_key = ? AND name_key = ?",
                                  (srv.strip().casefold(), name.strip().casefold()))
            elif server is not None:
                found = _load_all(tx, "WHERE server_key = ? AND name_key = ?",
                                  (server.casefold(), text.casefold()))
            else:
                found = _load_all(tx, "WHERE name_key = ?", (text.casefold(),))
            if not found and text.isdigit():
                found = _load_all(tx, "WHERE id = ?", (int(text),))
            if not found:
                raise NotFound(f"receive connector {text!r} not found")
            if len(found) > 1:
                raise ValidationError(f"{text!r} names connectors on several servers; "
                                      "use Server\\Name")
            return found[0]
        return await self._engine.read(fn)

    async def create_receive_connector(self, connector: ReceiveConnector) -> ReceiveConnector:
        """Store a new connector (its ``id`` and ``permissions`` are ignored)."""
        draft = dataclasses.replace(connector, id=0, permissions=(),
                                    name=connector.name.strip(),
                                    server=connector.server.strip())
        validate_connector(draft)

        def fn(tx: Tx) -> ReceiveConnector:
            _bump(tx)
            _check_and_lock(tx, draft)
            new_id = tx.insert_id(
                "INSERT INTO receive_connectors (server, server_key, name, name_key, "
                "settings, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (draft.server, draft.server.casefold(), draft.name, draft.name.casefold(),
                 settings_json(draft), time.time()))
            return _get(tx, new_id)
        return await self._engine.write(fn)

    async def update_receive_connector(self, connector_id: int, **changes: Any
                                       ) -> ReceiveConnector:
        """Change properties (any field but id, server and permissions)."""
        bad = set(changes) & {"id", "server", "permissions"}
        unknown = set(changes) - {f.name for f in dataclasses.fields(ReceiveConnector)}
        if bad or unknown:
            raise ValidationError(f"cannot change {', '.join(sorted(bad | unknown))}")

        def fn(tx: Tx) -> ReceiveConnector:
            _bump(tx)
            current = _get(tx, connector_id)
            updated = dataclasses.replace(current, **changes)
            if "name" in changes:
                updated = dataclasses.replace(updated, name=str(changes["name"]).strip())
            _check_and_lock(tx, updated)
            tx.execute("UPDATE receive_connectors SET name = ?, name_key = ?, settings = ? "
                       "WHERE id = ?", (updated.name, updated.name.casefold(),
                                        settings_json(updated), connector_id))
            return _get(tx, connector_id)
        return await self._engine.write(fn)

    async def delete_receive_connector(self, connector_id: int) -> None:
        def fn(tx: Tx) -> None:
            _bump(tx)
            _get(tx, connector_id)
            tx.execute("DELETE FROM receive_connector_permissions WHERE connector_id = ?",
                       (connector_id,))
            tx.execute("DELETE FROM receive_connectors WHERE id = ?", (connector_id,))
        await self._engine.write(fn)

    async def add_permission(self, connector_id: int, user: str, extended_right: str, *,
                             deny: bool = False) -> ReceiveConnector:
        """Add an Allow (or Deny) entry; adding an existing entry changes nothing."""
        user_name, right = _check_permission(user, extended_right)

        def fn(tx: Tx) -> ReceiveConnector:
            _bump(tx)
            _get(tx, connector_id)
            exists = tx.one("SELECT id FROM receive_connector_permissions WHERE "
                            "connector_id = ? AND user_key = ? AND extended_right = ? "
                            "AND deny = ?", (connector_id, user_name.casefold(), right,
                                             int(deny)))
            if exists is None:
                count = tx.scalar("SELECT count(*) FROM receive_connector_permissions "
                                  "WHERE connector_id = ?", (connector_id,))
                if int(count) >= MAX_PERMISSIONS:
                    raise ValidationError(f"at most {MAX_PERMISSIONS} permission entries "
                                          "per connector")
                tx.execute("INSERT INTO receive_connector_permissions (connector_id, "
                           "user_name, user_key, extended_right, deny) VALUES "
                           "(?, ?, ?, ?, ?)", (connector_id, user_name,
                                               user_name.casefold(), right, int(deny)))
            return _get(tx, connector_id)
        return await self._engine.write(fn)

    async def remove_permission(self, connector_id: int, user: str, extended_right: str, *,
                                deny: bool = False) -> ReceiveConnector:
        """Remove an explicit entry; ``NotFound`` when there is none."""
        user_name, right = _check_permission(user, extended_right)

        def fn(tx: Tx) -> ReceiveConnector:
            _bump(tx)
            _get(tx, connector_id)
            row = tx.one("SELECT id FROM receive_connector_permissions WHERE "
                         "connector_id = ? AND user_key = ? AND extended_right = ? "
                         "AND deny = ?", (connector_id, user_name.casefold(), right,
                                          int(deny)))
            if row is None:
                raise NotFound(f"no {'Deny' if deny else 'Allow'} entry of {right} for "
                               f"{user_name} on this connector")
            tx.execute("DELETE FROM receive_connector_permissions WHERE id = ?", (row[0],))
            return _get(tx, connector_id)
        return await self._engine.write(fn)


def _check_permission(user: str, extended_right: str) -> tuple[str, str]:
    if not isinstance(user, str) or not user.strip():
        raise ValidationError("User must name a principal")
    name = canonical_principal(user)
    if len(name) > MAX_USER_LENGTH or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise ValidationError("User is too long or contains control characters")
    try:
        right = canonical_right(extended_right)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    return name, right
