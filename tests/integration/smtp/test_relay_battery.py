"""The open-relay battery live (security.md A2): every case of the connectors' table
against the running server, and Test-SmtpRelay (same policy code) agreeing with the
server's reply on every case."""

from __future__ import annotations

import asyncio

import pytest

from gateway.admin import AdminContext, run_line
from gateway.connectors import SmtpPolicy
from gateway.connectors.explain import explain_relay
from tests.integration.smtp.conftest import SERVER, Harness, RawClient, free_port
from tests.unit.connectors.relay_cases import RELAY_CASES, RELAY_ORG, RelayCase


def _live(port: int, case: RelayCase) -> str:
    c = RawClient("127.0.0.1", port)
    try:
        c.reply()
        c.send(b"EHLO outside.test\r\n")
        c.reply()
        utf8 = b" SMTPUTF8" if case.smtputf8 else b""
        c.send(b"MAIL FROM:<" + RELAY_ORG["sender"].encode() + b">" + utf8 + b"\r\n")
        assert c.reply().startswith("250")
        c.send(b"RCPT TO:<" + case.recipient.encode() + b">\r\n")
        return c.reply()
    finally:
        c.close()


def _explained(lines: list[str], recipient: str) -> str:
    marker = f"  C: RCPT TO:<{recipient}>"
    i = lines.index(marker)
    return lines[i + 1].removeprefix("  S: ")


@pytest.fixture
async def battery(harness: Harness) -> tuple[Harness, int]:
    port = free_port()
    await harness.connector("Default Frontend", f"127.0.0.1:{port}",
                            groups=frozenset({"AnonymousUsers", "ExchangeServers"}))
    return harness, port


async def test_open_relay_battery_live_and_explained(battery: tuple[Harness, int]) -> None:
    h, port = battery
    policy = SmtpPolicy(h.store, server_name=SERVER, refresh_interval=0)
    failures = []
    for case in RELAY_CASES:
        live = await asyncio.to_thread(_live, port, case)
        code, enhanced = live.split(" ")[:2]
        if case.control:
            ok = code == "250"
        else:
            ok = code.startswith("5") and (int(code), enhanced) == (
                case.expected_code, case.expected_enhanced)
        if not ok:
            failures.append(f"{case.id}: live {live!r}, expected {case.expected_code} "
                            f"{case.expected_enhanced}")
        if case.smtputf8:
            continue  # Test-SmtpRelay has no SMTPUTF8 switch
        report = await explain_relay(policy, local_endpoint=f"127.0.0.1:{port}",
                                     remote_ip="127.0.0.1", sender=RELAY_ORG["sender"],
                                     recipients=[case.recipient])
        explained = _explained(report.lines, case.recipient)
        if explained != live:
            failures.append(f"{case.id}: Test-SmtpRelay says {explained!r}, live {live!r}")
    assert failures == []
    assert await h.store.relay_queue.list() == []


async def test_test_smtprelay_cmdlet_matches_the_anonymous_relay_connector(
        harness: Harness) -> None:
    port = free_port()
    await harness.connector("Default Frontend", f"0.0.0.0:{port}", apply=False)
    ctx = AdminContext(store=harness.store, server_name=SERVER)
    await run_line(ctx, f'New-ReceiveConnector -Name "Anonymous Relay" -Usage Custom '
                        f'-PermissionGroups AnonymousUsers -Bindings 127.0.0.50:{port} '
                        f'-RemoteIpRanges 127.0.0.80 -TarpitInterval 00:00:00')
    await run_line(ctx, 'Get-ReceiveConnector "Anonymous Relay" | Add-ADPermission -User '
                        '"NT AUTHORITY\\ANONYMOUS LOGON" -ExtendedRights '
                        '"Ms-Exch-SMTP-Accept-Any-Recipient"')
    await harness.apply()
    explained = {}
    for remote in ("127.0.0.80", "127.0.0.81"):
        text = await run_line(ctx, f"Test-SmtpRelay -LocalEndPoint 127.0.0.50:{port} "
                                   f"-RemoteIPAddress {remote} -Sender printer@example.test "
                                   f"-Recipient carol@outlook.test")
        explained[remote] = _explained(text.splitlines(), "carol@outlook.test")

    def live(source: str) -> str:
        c = RawClient("127.0.0.50", port, source=source)
        try:
            c.reply()
            for line in (b"EHLO printer\r\n", b"MAIL FROM:<printer@example.test>\r\n"):
                c.send(line)
                c.reply()
            c.send(b"RCPT TO:<carol@outlook.test>\r\n")
            return c.reply()
        finally:
            c.close()
    assert explained["127.0.0.80"] == await asyncio.to_thread(live, "127.0.0.80") \
        == "250 2.1.5 Recipient OK"
    assert explained["127.0.0.81"] == await asyncio.to_thread(live, "127.0.0.81")
    assert explained["127.0.0.81"].startswith("550 ")
