"""Remote delivery over real loopback sockets: smart hosts and MX routing to an
aiosmtpd sink, injected faults, retries, NDRs, STARTTLS, AUTH, pipelining,
connection reuse and SMTP-smuggling-safe data."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import pytest

from gateway.relay.routing import StaticResolver
from gateway.store.send_connectors import AddressSpace
from tests.integration.relay.conftest import RawPeer, Sink, free_port
from tests.unit.relay.helpers import FAST, inbox_messages, make_relay, organisation, raw

RESOLVER = StaticResolver(
    mx={"outlook.test": [(20, "mx2.outlook.test"), (10, "mx1.outlook.test")]},
    hosts={"mx1.outlook.test": ["127.0.0.1"], "mx2.outlook.test": ["127.0.0.1"],
           "sink.test": ["127.0.0.1"]},
    missing=["nonexistent.test"])


async def smart_host(store: Any, port: int, **kw: Any) -> Any:
    return await store.send_connectors.create(
        name="Internet", address_spaces=(AddressSpace("*", 1),),
        smart_hosts=(f"sink.test:{port}",), dns_routing_enabled=False, **kw)


async def drain_until(relay: Any, predicate: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await relay.run_once()
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def test_smart_host_delivery_with_pipelining(store: Any, sink: Sink) -> None:
    boxes = await organisation(store)
    await smart_host(store, sink.port)
    relay = make_relay(store, resolver=RESOLVER)
    await relay.submit("bob@example.test",
                       ["alice@outlook.test", "zed@outlook.test", "alice@example.test"],
                       raw("outbound"))
    await relay.drain()
    [got] = sink.handler.messages
    assert got.mail_from == "bob@example.test"
    assert got.rcpt_tos == ["alice@outlook.test", "zed@outlook.test"]
    assert b"Subject: outbound" in got.content
    assert len(await inbox_messages(store, boxes["alice"].id)) == 1
    assert await store.queue.list_messages() == []
    [send] = await store.tracking.search(event_id="SEND")
    assert send.recipients == ("alice@outlook.test", "zed@outlook.test")


async def test_mx_routing_in_preference_order(store: Any, sink: Sink) -> None:
    await organisation(store)
    await store.send_connectors.create(
        name="Internet", address_spaces=(AddressSpace("*", 1),), port=sink.port)
    relay = make_relay(store, resolver=RESOLVER)
    await relay.submit("bob@example.test", ["alice@outlook.test"], raw("mx"))
    await relay.drain()
    assert len(sink.handler.messages) == 1


async def test_nonexistent_domain_ndr(store: Any) -> None:
    boxes = await organisation(store)
    await store.send_connectors.create(name="Internet",
                                       address_spaces=(AddressSpace("*", 1),))
    relay = make_relay(store, resolver=RESOLVER)
    await relay.submit("bob@example.test", ["x@nonexistent.test"], raw("nx"))
    await relay.drain()
    [ndr] = await inbox_messages(store, boxes["bob"].id)
    assert b"Status: 5.4.4" in ndr and b"NonExistentDomain" in ndr


async def test_permanent_and_transient_rcpt_faults(store: Any, sink: Sink) -> None:
    boxes = await organisation(store)
    await smart_host(store, sink.port)
    relay = make_relay(store, resolver=RESOLVER)
    await relay.submit("bob@example.test", ["ok@outlook.test", "perm1@outlook.test",
                                            "temp1@outlook.test"], raw("mixed"))
    await relay.drain(seconds=0.5)
    assert [m.rcpt_tos for m in sink.handler.messages] == [["ok@outlook.test"]]
    [ndr] = await inbox_messages(store, boxes["bob"].id)
    assert b"Final-Recipient: rfc822;perm1@outlook.test" in ndr
    assert b"Remote Server returned '550 5.1.1 no such user here'" in ndr
    assert b"temp1" not in ndr.split(b"Original message headers")[0]
    [row] = await store.queue.list_messages()
    [pending] = [r for r in row.recipients if r.status == "retry"]
    assert pending.address == "temp1@outlook.test" and pending.last_error.startswith("451")
    assert pending.next_attempt > time.time() - 1


async def test_temporary_data_failure_is_retried_then_delivered(store: Any,
                                                                sink: Sink) -> None:
    await organisation(store)
    await smart_host(store, sink.port)
    sink.handler.data_replies = ["452 4.3.1 insufficient storage"]
    relay = make_relay(store, resolver=RESOLVER)
    await relay.submit("bob@example.test", ["alice@outlook.test"], raw("retry"))
    await relay.run_once()
    assert sink.handler.messages == []
    await drain_until(relay, lambda: _empty(store))
    assert len(sink.handler.messages) == 1
    defers = await store.tracking.search(event_id="DEFER")
    assert defers and defers[0].recipient_status[0].startswith("452 4.3.1")


async def _empty(store: Any) -> bool:
    return await store.queue.list_messages() == []


async def test_permanent_data_failure_ndr(store: Any, sink: Sink) -> None:
    boxes = await organisation(store)
    await smart_host(store, sink.port)
    sink.handler.data_replies = ["554 5.6.0 content rejected"]
    relay = make_relay(store, resolver=RESOLVER)
    await relay.submit("bob@example.test", ["alice@outlook.test"], raw("rejected"))
    await relay.drain()
    [ndr] = await inbox_messages(store, boxes["bob"].id)
    assert b"Status: 5.6.0" in ndr and b"Remote-MTA: dns;sink.test" in ndr


@pytest.mark.slow
async def test_refused_connection_retries_then_expires(store: Any) -> None:
    boxes = await organisation(store)
    await smart_host(store, free_port())  # nothing listens there
    relay = make_relay(store, resolver=RESOLVER,
                       settings=replace(FAST, message_expiration_timeout=1.5))
    await relay.submit("bob@example.test", ["alice@outlook.test"], raw("refused"))
    await relay.run_once()
    [row] = await store.queue.list_messages()
    assert row.recipients[0].status == "retry"
    assert "SocketError" in row.recipients[0].last_error
    await drain_until(relay, lambda: _empty(store), seconds=10)
    [ndr] = await inbox_messages(store, boxes["bob"].id)
    assert b"Status: 4.4.7" in ndr and b"SocketError" in ndr


@pytest.mark.slow
async def test_delay_dsn_is_sent_once(store: Any) -> None:
    boxes = await organisation(store)
    await smart_host(store, free_port())
    relay = make_relay(store, resolver=RESOLVER,
                       settings=replace(FAST, delay_notification_timeout=0.3))
    await relay.submit("bob@example.test", ["alice@outlook.test"], raw("slowpoke"))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not await inbox_messages(store, boxes["bob"].id):
        await relay.run_once()
        await asyncio.sleep(0.1)
    for _ in range(5):
        await relay.run_once()
        await asyncio.sleep(0.1)
    [dsn] = await inbox_messages(store, boxes["bob"].id)
    assert b"Subject: Delivery delayed: slowpoke" in dsn
    assert b"Action: delayed" in dsn and b"Will-Retry-Until:" in dsn


async def test_starttls_and_smart_host_auth(store: Any, tls_sink: Sink) -> None:
    await organisation(store)
    await smart_host(store, tls_sink.port, require_tls=True,
                     auth_mechanism="BasicAuthRequireTLS", auth_username="relayuser",
                     auth_password="s3cret")
    relay = make_relay(store, resolver=RESOLVER)
    await relay.submit("bob@example.test", ["alice@outlook.test"], raw("secure"))
    await relay.drain()
    [got] = tls_sink.handler.messages
    assert got.tls and got.authenticated


async def test_require_tls_without_starttls_is_deferred(store: Any, sink: Sink) -> None:
    await organisation(store)
    await smart_host(store, sink.port, require_tls=True)
    relay = make_relay(store, resolver=RESOLVER)
    await relay.submit("bob@example.test", ["alice@outlook.test"], raw("plain"))
    await relay.run_once()
    assert sink.handler.messages == []
    [row] = await store.queue.list_messages()
    assert row.recipients[0].status == "retry" and "4.7.4" in row.recipients[0].last_error


async def test_connection_reuse(store: Any, sink: Sink) -> None:
    await organisation(store)
    await smart_host(store, sink.port)
    relay = make_relay(store, resolver=RESOLVER)
    for n in range(5):
        await relay.submit("bob@example.test", ["alice@outlook.test"], raw(f"reuse{n}"))
        await relay.drain()
    assert len(sink.handler.messages) == 5
    assert sink.handler.sessions == 1
    await relay.remote.close()


@pytest.mark.parametrize("raw_peer", ["record"], indirect=True)
async def test_pipelined_group_and_dot_stuffing(store: Any, raw_peer: RawPeer) -> None:
    await organisation(store)
    await smart_host(store, raw_peer.port)
    relay = make_relay(store, resolver=RESOLVER)
    smuggle = (b"line one\r\n.leading dot\r\nbare lf\n.\nMAIL FROM:<evil@x>\r\n"
               b"bare cr\r.\r\nend")
    await relay.submit("bob@example.test", ["a@outlook.test", "b@outlook.test"],
                       raw("smuggle", body=smuggle))
    await relay.drain()
    assert raw_peer.completed == 1
    # RFC 2920: MAIL, both RCPTs and DATA in one write.
    assert any(r.startswith(b"MAIL FROM:<bob@example.test>") and r.count(b"RCPT TO:") == 2
               and r.endswith(b"DATA\r\n") for r in raw_peer.reads)
    data = b"".join(raw_peer.reads)
    body = data[data.index(b"Subject: smuggle"):]
    # No bare CR or LF, dots stuffed, exactly one end-of-data mark.
    assert b"\r\n..leading dot\r\n" in body
    assert body.replace(b"\r\n", b"").count(b"\r") == 0
    assert body.replace(b"\r\n", b"").count(b"\n") == 0
    assert body.count(b"\r\n.\r\n") == 1 and body.endswith(b"end\r\n.\r\n")


@pytest.mark.parametrize("raw_peer", ["drop-in-data"], indirect=True)
async def test_drop_in_mid_data_is_retried(store: Any, raw_peer: RawPeer) -> None:
    await organisation(store)
    await smart_host(store, raw_peer.port)
    relay = make_relay(store, resolver=RESOLVER)
    await relay.submit("bob@example.test", ["alice@outlook.test"],
                       raw("dropped", body=b"x" * 300_000))
    await relay.run_once()
    [row] = await store.queue.list_messages()
    assert row.recipients[0].status == "retry"
    assert "4.4.2" in row.recipients[0].last_error


@pytest.mark.parametrize("raw_peer", ["slow"], indirect=True)
async def test_slow_peer_times_out(store: Any, raw_peer: RawPeer) -> None:
    await organisation(store)
    await smart_host(store, raw_peer.port)
    relay = make_relay(store, resolver=RESOLVER,
                       settings=replace(FAST, connect_timeout=0.5, command_timeout=0.5))
    await relay.submit("bob@example.test", ["alice@outlook.test"], raw("slow"))
    started = time.monotonic()
    await relay.run_once()
    assert time.monotonic() - started < 5
    [row] = await store.queue.list_messages()
    assert row.recipients[0].status == "retry"


async def test_most_specific_connector_wins(store: Any, sink: Sink) -> None:
    await organisation(store)
    await store.send_connectors.create(
        name="Default", address_spaces=(AddressSpace("*", 1),),
        smart_hosts=(f"sink.test:{free_port()}",), dns_routing_enabled=False)
    await store.send_connectors.create(
        name="Outlook", address_spaces=(AddressSpace("*.outlook.test", 5),),
        smart_hosts=(f"sink.test:{sink.port}",), dns_routing_enabled=False)
    relay = make_relay(store, resolver=RESOLVER)
    await relay.submit("bob@example.test", ["alice@outlook.test"], raw("specific"))
    await relay.drain()
    assert len(sink.handler.messages) == 1


@pytest.mark.parametrize("raw_peer", ["bad-tls"], indirect=True)
async def test_failed_opportunistic_tls_falls_back_to_plaintext(store: Any,
                                                               raw_peer: RawPeer) -> None:
    await organisation(store)
    await smart_host(store, raw_peer.port)
    relay = make_relay(store, resolver=RESOLVER)
    await relay.submit("bob@example.test", ["alice@outlook.test"], raw("tlsfail"))
    await relay.run_once()
    assert raw_peer.connections == 2 and raw_peer.completed == 1
    assert await store.queue.list_messages() == []


@pytest.mark.parametrize("raw_peer", ["bad-tls"], indirect=True)
async def test_failed_required_tls_is_not_sent_in_plaintext(store: Any,
                                                            raw_peer: RawPeer) -> None:
    await organisation(store)
    await smart_host(store, raw_peer.port, require_tls=True)
    relay = make_relay(store, resolver=RESOLVER)
    await relay.submit("bob@example.test", ["alice@outlook.test"], raw("tlsreq"))
    await relay.run_once()
    assert raw_peer.connections == 1 and raw_peer.completed == 0
    [row] = await store.queue.list_messages()
    assert "4.7.5" in row.recipients[0].last_error
