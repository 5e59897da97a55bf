"""Contract: store.connectors (docs/dev/smtp-policy.md), on SQLite and PostgreSQL.

Receive connectors and their explicit permissions round-trip every property; every
write bumps the organisation version; validation and the §2 conflict rules are
enforced inside the write transaction, also under concurrency; the policy's snapshot
cache picks up changes without a restart.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from gateway.connectors import SmtpPolicy, ensure_default_connectors
from gateway.connectors.model import ReceiveConnector
from gateway.connectors.ranges import parse_bindings, parse_ip_ranges
from gateway.errors import AlreadyExists, NotFound, ValidationError

BINDINGS = {"smtp": ["0.0.0.0:25", "[::]:25"], "submission": ["0.0.0.0:587"],
            "submissions": ["0.0.0.0:465"]}


def relay(name: str = "Anonymous Relay", ranges: str = "10.0.0.80",
          bindings: str = "10.0.0.50:25", server: str = "mail1") -> ReceiveConnector:
    return ReceiveConnector(id=0, server=server, name=name,
                            bindings=parse_bindings(bindings),
                            remote_ip_ranges=parse_ip_ranges(ranges),
                            permission_groups=frozenset({"AnonymousUsers"}))


async def test_round_trip_every_property(store):
    full = dataclasses.replace(
        relay(), usage="Custom", transport_role="FrontendTransport",
        bindings=parse_bindings("10.0.0.50:25,[2001:db8::5]:25"),
        remote_ip_ranges=parse_ip_ranges("10.0.0.80,10.1.0.0/16,10.2.0.1-10.2.0.9,fe80::1%3"),
        auth_mechanism=frozenset({"Tls", "BasicAuth", "BasicAuthRequireTLS"}),
        require_tls=True, max_message_size=10 * 1024 * 1024, max_recipients_per_message=7,
        max_inbound_connection=None, max_inbound_connection_per_source=3,
        connection_timeout=900.0, connection_inactivity_timeout=60.0, max_logon_failures=2,
        max_protocol_errors=9, tarpit_interval=1.5, banner="220 relay ready",
        fqdn="relay.example.test", protocol_logging_level="Verbose", message_rate_limit=60,
        max_hop_count=20, enabled=False, comment="printers")
    created = await store.connectors.create_receive_connector(full)
    assert created.id > 0
    assert dataclasses.replace(created, id=0) == full
    again = await store.connectors.get_receive_connector("MAIL1\\anonymous relay")
    assert again == created
    assert (await store.connectors.get_receive_connector("Anonymous Relay",
                                                         server="mail1")) == created
    assert (await store.connectors.get_receive_connector(str(created.id))) == created
    with pytest.raises(NotFound):
        await store.connectors.get_receive_connector("nope")


async def test_every_write_bumps_the_org_version(store):
    v0 = await store.org.version()
    c = await store.connectors.create_receive_connector(relay())
    v1 = await store.org.version()
    c = await store.connectors.update_receive_connector(c.id, max_recipients_per_message=5)
    v2 = await store.org.version()
    c = await store.connectors.add_permission(c.id, "NT AUTHORITY\\ANONYMOUS LOGON",
                                              "ms-exch-smtp-accept-any-recipient")
    v3 = await store.org.version()
    await store.connectors.remove_permission(c.id, "nt authority\\anonymous logon",
                                             "ms-Exch-SMTP-Accept-Any-Recipient")
    v4 = await store.org.version()
    await store.connectors.delete_receive_connector(c.id)
    v5 = await store.org.version()
    assert v0 < v1 < v2 < v3 < v4 < v5


async def test_permissions(store):
    c = await store.connectors.create_receive_connector(relay())
    c = await store.connectors.add_permission(c.id, "nt authority\\anonymous logon",
                                              "Ms-Exch-SMTP-Accept-Any-Recipient")
    c = await store.connectors.add_permission(c.id, "NT AUTHORITY\\ANONYMOUS LOGON",
                                              "ms-Exch-SMTP-Accept-Any-Recipient")  # no dup
    c = await store.connectors.add_permission(c.id, "EXAMPLE\\bob", "ms-Exch-SMTP-Submit",
                                              deny=True)
    assert [(p.user, p.extended_rights, p.deny) for p in c.permissions] == [
        ("NT AUTHORITY\\ANONYMOUS LOGON", "ms-Exch-SMTP-Accept-Any-Recipient", False),
        ("EXAMPLE\\bob", "ms-Exch-SMTP-Submit", True)]
    with pytest.raises(ValidationError, match="extended right"):
        await store.connectors.add_permission(c.id, "x", "ms-Exch-Everything")
    with pytest.raises(NotFound):
        await store.connectors.remove_permission(c.id, "EXAMPLE\\bob", "ms-Exch-SMTP-Submit")
    with pytest.raises(NotFound):
        await store.connectors.add_permission(c.id + 999, "x", "ms-Exch-SMTP-Submit")
    await store.connectors.delete_receive_connector(c.id)   # permissions go with it
    assert await store.connectors.list_receive_connectors() == []


async def test_validation_and_conflicts(store):
    await store.connectors.create_receive_connector(relay("all", ranges="0.0.0.0/0",
                                                          bindings="0.0.0.0:25"))
    lan = await store.connectors.create_receive_connector(
        relay("lan", ranges="192.168.1.0/24", bindings="0.0.0.0:25"))
    await store.connectors.create_receive_connector(
        relay("one", ranges="192.168.1.75", bindings="0.0.0.0:25"))
    await store.connectors.create_receive_connector(
        relay("next", ranges="192.168.2.0/24", bindings="0.0.0.0:25"))
    with pytest.raises(ValidationError, match="already used"):
        await store.connectors.create_receive_connector(
            relay("dup", ranges="0.0.0.0-255.255.255.255", bindings="0.0.0.0:25"))
    with pytest.raises(ValidationError, match="partly overlaps"):
        await store.connectors.update_receive_connector(
            lan.id, remote_ip_ranges=parse_ip_ranges("192.168.1.128-192.168.2.1"))
    with pytest.raises(AlreadyExists):
        await store.connectors.create_receive_connector(relay("LAN", ranges="10.9.9.9"))
    with pytest.raises(ValidationError, match="Bindings"):
        await store.connectors.create_receive_connector(dataclasses.replace(
            relay("x"), bindings=()))
    with pytest.raises(ValidationError, match="cannot change"):
        await store.connectors.update_receive_connector(lan.id, server="other")
    # the same name on another server is another connector
    other = await store.connectors.create_receive_connector(relay("lan", server="mail2"))
    assert other.identity == "mail2\\lan"
    with pytest.raises(ValidationError, match="several servers"):
        await store.connectors.get_receive_connector("lan")
    assert len(await store.connectors.list_receive_connectors(server="MAIL1")) == 4
    assert len(await store.connectors.list_receive_connectors()) == 5


async def test_concurrent_conflicting_creates_one_wins(store):
    results = await asyncio.gather(
        *(store.connectors.create_receive_connector(relay(f"r{i}", ranges="10.0.0.80"))
          for i in range(4)), return_exceptions=True)
    ok = [r for r in results if isinstance(r, ReceiveConnector)]
    assert len(ok) == 1
    assert all(isinstance(r, ValidationError) for r in results if r not in ok)


async def test_default_connectors(store):
    created = await ensure_default_connectors(store, "mail1", BINDINGS)
    assert [c.name for c in created] == ["Default Frontend mail1", "Client Frontend mail1",
                                         "Client Frontend TLS mail1"]
    assert await ensure_default_connectors(store, "mail1", BINDINGS) == []
    front = await store.connectors.get_receive_connector("Default Frontend mail1")
    assert front.permission_groups == {"AnonymousUsers", "ExchangeLegacyServers",
                                       "ExchangeServers"}
    assert [str(b) for b in front.bindings] == ["0.0.0.0:25", "[::]:25"]
    assert front.protocol_logging_level == "Verbose"
    assert [r.text for r in front.remote_ip_ranges] == [
        "0.0.0.0-255.255.255.255", "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"]
    tls = await store.connectors.get_receive_connector("Client Frontend TLS mail1")
    assert tls.implicit_tls and tls.permission_groups == {"ExchangeUsers"}
    # a default the operator removed stays removed
    await store.connectors.delete_receive_connector(tls.id)
    assert await ensure_default_connectors(store, "mail1", BINDINGS) == []
    with pytest.raises(NotFound):
        await store.connectors.get_receive_connector("Client Frontend TLS mail1")
    # only the keys present; an operator's conflicting connector is never overwritten
    assert await ensure_default_connectors(store, "mail2", {"submission": ["0.0.0.0:587"]}) \
        != []
    await store.connectors.create_receive_connector(
        relay("mine", ranges="0.0.0.0-255.255.255.255", bindings="0.0.0.0:25",
              server="mail3"))
    made = await ensure_default_connectors(store, "mail3", BINDINGS)
    assert "Default Frontend mail3" not in [c.name for c in made]


async def test_policy_snapshot_follows_changes(store):
    await store.org.create_accepted_domain("example", "example.test")
    await ensure_default_connectors(store, "mail1", BINDINGS)
    policy = SmtpPolicy(store, server_name="mail1", refresh_interval=0)
    s = await policy.open_session(local_ip="10.0.0.50", local_port=25, remote_ip="10.0.0.80")
    assert s.connector.name == "Default Frontend mail1"
    assert not (await s.check_rcpt_to("x@outlook.test", accepted_so_far=0)).allowed
    c = await store.connectors.create_receive_connector(relay())
    await store.connectors.add_permission(c.id, "NT AUTHORITY\\ANONYMOUS LOGON",
                                          "ms-Exch-SMTP-Accept-Any-Recipient")
    s = await policy.open_session(local_ip="10.0.0.50", local_port=25, remote_ip="10.0.0.80")
    assert s.connector.name == "Anonymous Relay"
    assert (await s.check_rcpt_to("x@outlook.test", accepted_so_far=0)).route == "relay"
    eps = await policy.listen_endpoints()
    assert {(e.host, e.port) for e in eps} == {("0.0.0.0", 25), ("::", 25), ("0.0.0.0", 587),
                                              ("0.0.0.0", 465)}
    cached = SmtpPolicy(store, server_name="mail1", refresh_interval=3600)
    snap = await cached.snapshot()
    await store.connectors.update_receive_connector(c.id, enabled=False)
    assert (await cached.snapshot()) is snap          # within the refresh interval
    cached.invalidate()
    assert (await cached.snapshot()).version > snap.version
