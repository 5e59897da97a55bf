"""Send connectors: ``store.send_connectors`` (migration 6, issue 4).

Role: the organisation's outbound routing configuration, as Exchange keeps it with
New-SendConnector: address spaces (domain patterns with a cost), smart hosts or DNS
(MX) routing, the port, TLS requirement and smart-host authentication. Shared by
every node; every change bumps the organisation version so relays re-read it.

Invariants: names are unique (case-insensitive); address spaces are stored
validated and lower-case (``gateway.relay.routing.parse_address_space`` is the one
parser); the smart-host password never leaves through ``describe``-style output (the
cmdlets do not show it).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from gateway.errors import NotFound, ValidationError
from gateway.store.engine import Engine, Row, Tx

MAX_CONNECTORS = 1000
AUTH_MECHANISMS = ("None", "BasicAuth", "BasicAuthRequireTLS")


@dataclass(frozen=True)
class AddressSpace:
    """``domain`` is ``*`` (everything), ``example.test`` or ``*.example.test``."""

    domain: str
    cost: int = 1


@dataclass(frozen=True)
class SendConnector:
    id: int
    name: str
    address_spaces: tuple[AddressSpace, ...]
    smart_hosts: tuple[str, ...]  # "host", "host:port", "[192.0.2.1]"
    dns_routing_enabled: bool
    port: int
    require_tls: bool
    auth_mechanism: str  # AUTH_MECHANISMS
    auth_username: str
    auth_password: str
    enabled: bool
    max_per_domain: int  # concurrent connections per destination
    created_at: float


_COLS = ("id, name, address_spaces, smart_hosts, dns_routing_enabled, port, require_tls, "
         "auth_mechanism, auth_username, auth_password, enabled, max_per_domain, created_at")
_FIELDS = ("name", "address_spaces", "smart_hosts", "dns_routing_enabled", "port",
           "require_tls", "auth_mechanism", "auth_username", "auth_password", "enabled",
           "max_per_domain")


def _connector(row: Row) -> SendConnector:
    spaces = tuple(AddressSpace(s["domain"], int(s["cost"])) for s in json.loads(row[2]))
    return SendConnector(int(row[0]), row[1], spaces, tuple(json.loads(row[3])),
                         bool(row[4]), int(row[5]), bool(row[6]), row[7], row[8], row[9],
                         bool(row[10]), int(row[11]), float(row[12]))


def _values(c: dict[str, object]) -> tuple[object, ...]:
    spaces = c["address_spaces"]
    assert isinstance(spaces, tuple | list)
    return (c["name"], str(c["name"]).lower(),
            json.dumps([{"domain": s.domain, "cost": s.cost} for s in spaces]),
            json.dumps(list(c["smart_hosts"])),  # type: ignore[call-overload]
            int(bool(c["dns_routing_enabled"])), c["port"], int(bool(c["require_tls"])),
            c["auth_mechanism"], c["auth_username"], c["auth_password"],
            int(bool(c["enabled"])), c["max_per_domain"])


def _check(c: dict[str, object]) -> None:
    name = c["name"]
    if not isinstance(name, str) or not 1 <= len(name) <= 64 or not name.isprintable():
        raise ValidationError("a send connector name is 1 to 64 printable characters")
    port = c["port"]
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValidationError("the port is 1 to 65535")
    per = c["max_per_domain"]
    if not isinstance(per, int) or not 1 <= per <= 1000:
        raise ValidationError("the per-destination connection limit is 1 to 1000")
    if c["auth_mechanism"] not in AUTH_MECHANISMS:
        raise ValidationError(f"the auth mechanism is one of {', '.join(AUTH_MECHANISMS)}")
    if c["auth_mechanism"] != "None" and not c["auth_username"]:
        raise ValidationError("BasicAuth needs credentials (a user name and password)")
    if not c["address_spaces"]:
        raise ValidationError("a send connector needs at least one address space")
    if not c["dns_routing_enabled"] and not c["smart_hosts"]:
        raise ValidationError("a send connector without DNS routing needs smart hosts")


class SendConnectorStore:
    """``store.send_connectors``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def list(self) -> list[SendConnector]:
        rows = await self._engine.read(lambda tx: tx.all(
            f"SELECT {_COLS} FROM send_connectors ORDER BY name_key LIMIT ?",
            (MAX_CONNECTORS,)))
        return [_connector(r) for r in rows]

    async def get(self, identity: str) -> SendConnector:
        """By name (case-insensitive) or ``str(id)``; ``NotFound``."""
        key = identity.strip().lower()

        def fn(tx: Tx) -> Row | None:
            row = tx.one(f"SELECT {_COLS} FROM send_connectors WHERE name_key = ?", (key,))
            if row is None and key.isdigit():
                row = tx.one(f"SELECT {_COLS} FROM send_connectors WHERE id = ?", (int(key),))
            return row
        row = await self._engine.read(fn)
        if row is None:
            raise NotFound(f"send connector {identity!r} not found")
        return _connector(row)

    async def create(self, *, name: str, address_spaces: tuple[AddressSpace, ...],
                     smart_hosts: tuple[str, ...] = (), dns_routing_enabled: bool = True,
                     port: int = 25, require_tls: bool = False, auth_mechanism: str = "None",
                     auth_username: str = "", auth_password: str = "", enabled: bool = True,
                     max_per_domain: int = 20) -> SendConnector:
        """Create a connector (``AlreadyExists`` for a taken name)."""
        c: dict[str, object] = {
            "name": name, "address_spaces": address_spaces, "smart_hosts": smart_hosts,
            "dns_routing_enabled": dns_routing_enabled, "port": port,
            "require_tls": require_tls, "auth_mechanism": auth_mechanism,
            "auth_username": auth_username, "auth_password": auth_password,
            "enabled": enabled, "max_per_domain": max_per_domain}
        _check(c)
        values = _values(c)

        def fn(tx: Tx) -> Row:
            count = int(tx.scalar("SELECT count(*) FROM send_connectors") or 0)
            if count >= MAX_CONNECTORS:
                raise ValidationError(f"at most {MAX_CONNECTORS} send connectors")
            tx.execute("UPDATE org_version SET version = version + 1 WHERE id = 1")
            new_id = tx.insert_id(
                "INSERT INTO send_connectors (name, name_key, address_spaces, smart_hosts, "
                "dns_routing_enabled, port, require_tls, auth_mechanism, auth_username, "
                "auth_password, enabled, max_per_domain, created_at) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id", (*values, time.time()))
            row = tx.one(f"SELECT {_COLS} FROM send_connectors WHERE id = ?", (new_id,))
            assert row is not None
            return row
        return _connector(await self._engine.write(fn))

    async def update(self, connector_id: int, **changes: object) -> SendConnector:
        unknown = set(changes) - set(_FIELDS)
        if unknown:
            raise ValidationError(f"unknown send connector fields: {', '.join(sorted(unknown))}")

        def fn(tx: Tx) -> Row:
            row = tx.one(f"SELECT {_COLS} FROM send_connectors WHERE id = ?", (connector_id,))
            if row is None:
                raise NotFound(f"send connector {connector_id} not found")
            current = _connector(row)
            merged: dict[str, object] = {f: getattr(current, f) for f in _FIELDS}
            merged.update(changes)
            _check(merged)
            tx.execute("UPDATE org_version SET version = version + 1 WHERE id = 1")
            tx.execute(
                "UPDATE send_connectors SET name = ?, name_key = ?, address_spaces = ?, "
                "smart_hosts = ?, dns_routing_enabled = ?, port = ?, require_tls = ?, "
                "auth_mechanism = ?, auth_username = ?, auth_password = ?, enabled = ?, "
                "max_per_domain = ? WHERE id = ?", (*_values(merged), connector_id))
            new = tx.one(f"SELECT {_COLS} FROM send_connectors WHERE id = ?", (connector_id,))
            assert new is not None
            return new
        return _connector(await self._engine.write(fn))

    async def delete(self, connector_id: int) -> None:
        def fn(tx: Tx) -> None:
            if not tx.execute("DELETE FROM send_connectors WHERE id = ?",
                              (connector_id,)).rowcount:
                raise NotFound(f"send connector {connector_id} not found")
            tx.execute("UPDATE org_version SET version = version + 1 WHERE id = 1")
        await self._engine.write(fn)


__all__ = ["AUTH_MECHANISMS", "AddressSpace", "SendConnector", "SendConnectorStore"]
