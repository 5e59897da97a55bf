"""End to end through the live SMTP front door: an authenticated user's mail to
alice@outlook.test reaches a smart-host sink and the local recipient's mailbox; a
device on the Anonymous Relay connector likewise. The relay engine runs as it does in
a node (``RelayService``), taking over what SMTP queued."""

from __future__ import annotations

import asyncio
import smtplib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.admin import AdminContext, run_line
from gateway.relay.routing import StaticResolver
from gateway.relay.service import RelayService
from gateway.store.send_connectors import AddressSpace
from tests.integration.relay.conftest import Sink
from tests.integration.smtp.conftest import PASSWORD, SERVER, Harness, free_port

pytestmark = pytest.mark.slow

MESSAGE = (b"From: alice@example.test\r\nTo: alice@outlook.test, bob@example.test\r\n"
           b"Subject: end to end\r\n\r\nHello from the front door.\r\n")


@pytest.fixture
async def running(harness_factory: Any, sink: Sink) -> AsyncIterator[tuple[Harness, Sink]]:
    h = await harness_factory(None)
    await h.store.send_connectors.create(
        name="Smart host", address_spaces=(AddressSpace("*", 1),),
        smart_hosts=(f"sink.test:{sink.port}",), dns_routing_enabled=False)
    service = RelayService(h.store, server_name=SERVER,
                           resolver=StaticResolver(hosts={"sink.test": ["127.0.0.1"]}))
    await service.start()
    yield h, sink
    await service.stop(1.0)


async def _until(predicate: Any, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("not delivered in time")


async def test_authenticated_submission_reaches_sink_and_mailbox(
        running: tuple[Harness, Sink]) -> None:
    h, sink = running
    port = free_port()
    await h.client_connector("Client Frontend", f"127.0.0.1:{port}")

    def submit() -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.starttls(context=h.ca.client_context())
            c.login("alice@example.test", PASSWORD)
            c.sendmail("alice@example.test", ["alice@outlook.test", "bob@example.test"],
                       MESSAGE)
    await asyncio.to_thread(submit)

    async def arrived() -> bool:
        return bool(sink.handler.messages) and bool(await h.inbox("bob@example.test"))
    await _until(arrived)
    [got] = sink.handler.messages
    assert got.rcpt_tos == ["alice@outlook.test"]
    assert b"Subject: end to end" in got.content and b"Received: from" in got.content
    [local] = await h.inbox("bob@example.test")
    assert b"Hello from the front door." in local


async def test_anonymous_relay_connector_device(running: tuple[Harness, Sink]) -> None:
    h, sink = running
    port = free_port()
    ctx = AdminContext(store=h.store, server_name=SERVER)
    await run_line(ctx, f'New-ReceiveConnector -Name "Anonymous Relay" -Usage Custom '
                        f'-PermissionGroups AnonymousUsers -Bindings 127.0.0.50:{port} '
                        f'-RemoteIpRanges 127.0.0.80 -TarpitInterval 00:00:00')
    await run_line(ctx, 'Get-ReceiveConnector "Anonymous Relay" | Add-ADPermission -User '
                        '"NT AUTHORITY\\ANONYMOUS LOGON" -ExtendedRights '
                        '"Ms-Exch-SMTP-Accept-Any-Recipient"')
    await h.apply()

    def submit() -> None:
        with smtplib.SMTP("127.0.0.50", port, timeout=10,
                          source_address=("127.0.0.80", 0)) as c:
            c.sendmail("printer@example.test", ["carol@outlook.test"],
                       b"From: printer@example.test\r\nSubject: scan\r\n\r\nscan\r\n")
    await asyncio.to_thread(submit)

    async def arrived() -> bool:
        # The SEND event is recorded once the sink's 250 is back, a moment after the
        # sink has the message: wait for both.
        return bool(sink.handler.messages) and bool(
            await h.store.tracking.search(event_id="SEND"))
    await _until(arrived)
    assert sink.handler.messages[0].rcpt_tos == ["carol@outlook.test"]
    events = await h.store.tracking.search(event_id="SEND")
    assert events and events[0].recipients == ("carol@outlook.test",)
    assert await h.store.tracking.search(event_id="RECEIVE")
