"""The relay cmdlets against a real store (both engines): send connectors, queues,
messages and the tracking log."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.admin import AdminContext, CmdletError, run_line
from tests.unit.relay.helpers import inbox_messages, make_relay, organisation, raw


@pytest.fixture
def ctx(store: Any) -> AdminContext:
    return AdminContext(store=store, server_name="mail1.example.test")


async def _json(ctx: AdminContext, line: str) -> list[dict[str, Any]]:
    return list(json.loads(await run_line(ctx, line, output_format="json")))


async def test_send_connector_lifecycle(ctx: AdminContext, store: Any) -> None:
    await run_line(ctx, "New-SendConnector Internet -AddressSpaces '*;5','outlook.test' "
                        "-SmartHosts relay.example.test:587,'[192.0.2.1]' -RequireTLS $true "
                        "-SmartHostAuthMechanism BasicAuthRequireTLS "
                        "-AuthenticationUserName relay -AuthenticationPassword "
                        "(ConvertTo-SecureString 'Pa55word' -AsPlainText -Force)")
    [c] = await _json(ctx, "Get-SendConnector")
    assert c["AddressSpaces"] == ["SMTP:*;5", "SMTP:outlook.test;1"]
    assert c["SmartHosts"] == ["relay.example.test:587", "[192.0.2.1]"]
    assert c["DNSRoutingEnabled"] is False and c["RequireTLS"] is True
    assert "Pa55word" not in json.dumps(c)
    stored = await store.send_connectors.get("Internet")
    assert stored.auth_password == "Pa55word"
    await run_line(ctx, "Set-SendConnector Internet -Enabled $false -Port 2525")
    [c] = await _json(ctx, "Get-SendConnector Inter*")
    assert c["Enabled"] is False and c["Port"] == 2525
    with pytest.raises(CmdletError, match="address space"):
        await run_line(ctx, "New-SendConnector Bad -AddressSpaces 'bad domain!'")
    with pytest.raises(CmdletError, match="smart host"):
        await run_line(ctx, "Set-SendConnector Internet -SmartHosts 'a:b:c:x'")
    with pytest.raises(CmdletError, match="credentials"):
        await run_line(ctx, "New-SendConnector Auth -AddressSpaces * -SmartHosts x.test "
                            "-SmartHostAuthMechanism BasicAuth")
    await run_line(ctx, "Remove-SendConnector Internet -Confirm:$false")
    assert await _json(ctx, "Get-SendConnector") == []
    with pytest.raises(CmdletError, match="not found"):
        await run_line(ctx, "Remove-SendConnector Internet -Confirm:$false")


async def test_queue_and_message_cmdlets(ctx: AdminContext, store: Any) -> None:
    boxes = await organisation(store)
    relay = make_relay(store)
    queued = await relay.submit("bob@example.test", ["alice@outlook.test"], raw("stuck"))
    await relay.drain(seconds=0.3)  # no send connector: it waits to retry
    [q] = await _json(ctx, "Get-Queue")
    assert q["NextHopDomain"] == "outlook.test" and q["Status"] == "Retry"
    assert q["MessageCount"] == 1 and "UnreachableDestination" in q["LastError"]
    [m] = await _json(ctx, "Get-Message -Queue outlook.test")
    assert m["QueueId"] == queued.queue_id and m["Subject"] == "stuck"
    await run_line(ctx, f"Suspend-Message {queued.queue_id}")
    [m] = await _json(ctx, f"Get-Message mail1.example.test\\outlook.test\\{queued.queue_id}")
    assert m["Status"] == "Suspended"
    await run_line(ctx, f"Resume-Message {queued.queue_id}")
    await run_line(ctx, "Retry-Queue outlook.test")
    await run_line(ctx, f"Remove-Message {queued.queue_id} -WithNDR $true -Confirm:$false")
    [ndr_queued] = await _json(ctx, "Get-Message")  # only the NDR is left
    assert ndr_queued["FromAddress"] == "<>"
    await relay.drain()
    [ndr] = await inbox_messages(store, boxes["bob"].id)
    assert b"QUEUE.Admin" in ndr
    with pytest.raises(CmdletError, match="not in any queue"):
        await run_line(ctx, f"Suspend-Message {queued.queue_id}")
    with pytest.raises(CmdletError, match="not a message identity"):
        await run_line(ctx, "Get-Message x1")


async def test_message_tracking_log(ctx: AdminContext, store: Any) -> None:
    await organisation(store)
    relay = make_relay(store)
    await relay.submit("bob@example.test", ["alice@example.test", "ghost@example.test"],
                       raw("tracked"))
    await relay.drain()
    events = await _json(ctx, "Get-MessageTrackingLog -Sender bob@example.test")
    assert {e["EventId"] for e in events} >= {"DELIVER", "FAIL", "DSN"}
    fails = await _json(ctx, "Get-MessageTrackingLog -EventId FAIL -Recipients "
                             "ghost@example.test -MessageId '<tracked@example.test>'")
    assert [e["Recipients"] for e in fails] == [["ghost@example.test"]]
    assert await _json(ctx, "Get-MessageTrackingLog -Start 2000-01-01 -End 2000-01-02") == []
    with pytest.raises(CmdletError, match="not a date"):
        await run_line(ctx, "Get-MessageTrackingLog -Start yesterday")


async def test_transport_service_settings(ctx: AdminContext, store: Any) -> None:
    [t] = await _json(ctx, "Get-TransportService")
    assert t["MessageExpirationTimeout"] == "2.00:00:00"
    assert t["DelayNotificationTimeout"] == "04:00:00"
    await run_line(ctx, "Set-TransportService -MessageExpirationTimeout 1.00:00:00 "
                        "-MaxHopCount 30")
    [t] = await _json(ctx, "Get-TransportService")
    assert t["MessageExpirationTimeout"] == "1.00:00:00" and t["MaxHopCount"] == 30
    relay = make_relay(store, settings=None)  # type: ignore[arg-type]
    settings = await relay.reload_settings(force=True)
    assert settings.message_expiration_timeout == 86400 and settings.max_hop_count == 30
    with pytest.raises(CmdletError, match="message_expiration_timeout"):
        await run_line(ctx, "Set-TransportService -MessageExpirationTimeout 100.00:00:00")
    with pytest.raises(CmdletError, match="time span"):
        await run_line(ctx, "Set-TransportService -MessageRetryInterval soon")
