"""The connector cmdlets against the real store, on SQLite and PostgreSQL, through
``run_line`` exactly as ``gateway exec`` runs them: the issue's two acceptance lines,
the ADPermission pipeline, Set with @{Add}, and Test-SmtpRelay's explanation of the
four cases of issue 3."""

from __future__ import annotations

import json

import pytest

from gateway.admin import AdminContext, CmdletError, run_line
from gateway.connectors import SmtpPolicy, ensure_default_connectors
from tests.unit.connectors.relay_cases import RELAY_CASES

BINDINGS = {"smtp": ["0.0.0.0:25", "[::]:25"], "submission": ["0.0.0.0:587"],
            "submissions": ["0.0.0.0:465"]}
ACCEPTANCE = (
    'New-ReceiveConnector -Name "Anonymous Relay" -Usage Custom -PermissionGroups '
    "AnonymousUsers -Bindings 10.0.0.50:25 -RemoteIpRanges 10.0.0.80",
    'Get-ReceiveConnector "Anonymous Relay" | Add-ADPermission -User '
    '"NT AUTHORITY\\ANONYMOUS LOGON" -ExtendedRights "Ms-Exch-SMTP-Accept-Any-Recipient"',
)
TEST = ("Test-SmtpRelay -LocalEndPoint {ep} -RemoteIPAddress {ip} -Sender {sender} "
        "-Recipient {rcpt}")


@pytest.fixture
async def ctx(store):
    ctx = AdminContext(store=store, server_name="mail1")
    await run_line(ctx, "New-AcceptedDomain -Name example -DomainName example.test")
    await run_line(ctx, "New-Mailbox -Name alice -PrimarySmtpAddress alice@example.test")
    await ensure_default_connectors(store, "mail1", BINDINGS)
    return ctx


async def test_acceptance_lines(ctx, store):
    out = await run_line(ctx, ACCEPTANCE[0])
    assert "mail1\\Anonymous Relay" in out and "{10.0.0.80}" in out
    out = await run_line(ctx, ACCEPTANCE[1])
    assert "ms-Exch-SMTP-Accept-Any-Recipient" in out
    c = await store.connectors.get_receive_connector("Anonymous Relay")
    assert c.permission_groups == {"AnonymousUsers"} and c.auth_mechanism == {"Tls"}
    assert [str(b) for b in c.bindings] == ["10.0.0.50:25"]
    assert [(p.user, p.extended_rights, p.deny) for p in c.permissions] == [
        ("NT AUTHORITY\\ANONYMOUS LOGON", "ms-Exch-SMTP-Accept-Any-Recipient", False)]


async def test_four_cases_explained(ctx):
    for line in ACCEPTANCE:
        await run_line(ctx, line)
    printer = await run_line(ctx, TEST.format(ep="10.0.0.50:25", ip="10.0.0.80",
                                              sender="printer@example.test",
                                              rcpt="alice@outlook.test,alice@example.test"))
    assert "connector 'Anonymous Relay' chosen" in printer
    assert "explicit permission for NT AUTHORITY\\ANONYMOUS LOGON" in printer
    assert "C: RCPT TO:<alice@outlook.test>\n  S: 250 2.1.5 Recipient OK" in printer
    other = await run_line(ctx, TEST.format(ep="10.0.0.50:25", ip="10.0.0.81",
                                            sender="printer@example.test",
                                            rcpt="alice@outlook.test,alice@example.test"))
    assert "connector 'Default Frontend mail1' chosen" in other
    assert ("C: RCPT TO:<alice@outlook.test>\n  S: 550 5.7.54 SMTP; Unable to relay "
            "recipient in non-accepted domain") in other
    assert "C: RCPT TO:<alice@example.test>\n  S: 250 2.1.5 Recipient OK" in other
    user = await run_line(ctx, TEST.format(ep="10.0.0.1:587", ip="198.51.100.9",
                                           sender="alice@example.test",
                                           rcpt="bob@outlook.test,alice@example.test")
                          + " -User alice")
    assert "C: STARTTLS\n  S: 220 2.0.0 SMTP server ready" in user
    assert "S: 235 2.7.0 Authentication successful" in user
    assert "C: RCPT TO:<bob@outlook.test>\n  S: 250 2.1.5 Recipient OK" in user
    assert "permission group ExchangeUsers (NT AUTHORITY\\Authenticated Users)" in user
    anon587 = await run_line(ctx, TEST.format(ep="10.0.0.1:587", ip="198.51.100.9",
                                              sender="x@outside.test", rcpt="alice@example.test"))
    assert "S: 530 5.7.57 SMTP; Client was not authenticated" in anon587
    none = await run_line(ctx, TEST.format(ep="10.0.0.1:2525", ip="198.51.100.9",
                                           sender="x@outside.test", rcpt="alice@example.test"))
    assert "S: 421 4.3.2 Service not available" in none


async def test_explain_agrees_with_policy_on_battery(ctx, store):
    policy = SmtpPolicy(store, server_name="mail1", refresh_interval=0)
    for case in RELAY_CASES:
        if case.smtputf8:
            continue                               # Test-SmtpRelay speaks ASCII SMTP
        session = await policy.open_session(local_ip="10.0.0.1", local_port=25,
                                            remote_ip="203.0.113.5")
        await session.check_mail_from("printer@outside.test")
        expected = await session.check_rcpt_to(case.recipient, accepted_so_far=0)
        rcpt = case.recipient.replace('"', '`"')
        out = await run_line(ctx, f'Test-SmtpRelay -LocalEndPoint 10.0.0.1:25 '
                                  f'-RemoteIPAddress 203.0.113.5 -Sender printer@outside.test '
                                  f'-Recipient "{rcpt}"')
        assert f"  C: RCPT TO:<{case.recipient}>\n  S: {expected.reply}" in out, case.id
        assert str(expected.reply).startswith(str(case.expected_code)), case.id


async def test_set_get_remove(ctx, store):
    await run_line(ctx, ACCEPTANCE[0])
    await run_line(ctx, 'Set-ReceiveConnector "Anonymous Relay" -RemoteIPRanges '
                        '@{Add="10.0.0.81","10.0.1.0/24"} -MaxMessageSize 10MB '
                        "-ConnectionTimeout 00:20:00 -MaxInboundConnectionPerSource Unlimited "
                        '-Banner "220 relay ready" -ProtocolLoggingLevel Verbose')
    c = await store.connectors.get_receive_connector("Anonymous Relay")
    assert [r.text for r in c.remote_ip_ranges] == ["10.0.0.80", "10.0.0.81", "10.0.1.0/24"]
    assert c.max_message_size == 10 * 1024 * 1024 and c.connection_timeout == 1200
    assert c.max_inbound_connection_per_source is None and c.banner == "220 relay ready"
    await run_line(ctx, 'Set-ReceiveConnector "Anonymous Relay" -RemoteIPRanges '
                        '@{Remove="10.0.0.81"} -Banner $null')
    c = await store.connectors.get_receive_connector("Anonymous Relay")
    assert [r.text for r in c.remote_ip_ranges] == ["10.0.0.80", "10.0.1.0/24"]
    assert c.banner is None
    out = await run_line(ctx, 'Set-ReceiveConnector "Anonymous Relay" -Banner $null')
    assert "no settings" in out
    listed = json.loads(await run_line(ctx, "Get-ReceiveConnector *Frontend*",
                                       output_format="json"))
    assert sorted(r["Name"] for r in listed) == ["Client Frontend TLS mail1",
                                                 "Client Frontend mail1",
                                                 "Default Frontend mail1"]
    perms = await run_line(ctx, 'Get-ADPermission "Default Frontend mail1" '
                                '-User "NT AUTHORITY\\ANONYMOUS LOGON"')
    assert "ms-Exch-SMTP-Submit" in perms and "Accept-Any-Recipient" not in perms
    await run_line(ctx, 'Get-ReceiveConnector "Anonymous Relay" | Remove-ReceiveConnector '
                        "-Confirm:$false")
    with pytest.raises(CmdletError, match="couldn't be found"):
        await run_line(ctx, 'Get-ReceiveConnector "Anonymous Relay"')


async def test_deny_and_remove_permission(ctx):
    for line in ACCEPTANCE:
        await run_line(ctx, line)
    await run_line(ctx, 'Add-ADPermission "Anonymous Relay" -User '
                        '"NT AUTHORITY\\ANONYMOUS LOGON" -ExtendedRights '
                        "ms-Exch-SMTP-Accept-Any-Recipient -Deny")
    out = await run_line(ctx, TEST.format(ep="10.0.0.50:25", ip="10.0.0.80",
                                          sender="printer@example.test",
                                          rcpt="alice@outlook.test"))
    assert "S: 550 5.7.54" in out and "a Deny beats every Allow" in out
    await run_line(ctx, 'Remove-ADPermission "Anonymous Relay" -User '
                        '"NT AUTHORITY\\ANONYMOUS LOGON" -ExtendedRights '
                        "ms-Exch-SMTP-Accept-Any-Recipient -Deny -Confirm:$false")
    out = await run_line(ctx, TEST.format(ep="10.0.0.50:25", ip="10.0.0.80",
                                          sender="printer@example.test",
                                          rcpt="alice@outlook.test"))
    assert "S: 250 2.1.5 Recipient OK" in out


@pytest.mark.parametrize(("line", "message"), [
    ("New-ReceiveConnector -Name x -Usage Custom", "-Bindings is required"),
    ("New-ReceiveConnector -Name x -Usage Internet -Bindings 0.0.0.0:26 "
     "-RemoteIPRanges 10.0.0.1", "cannot be set when Usage is Internet"),
    ("New-ReceiveConnector -Name x -Bindings 10.0.0.1", "IPv4:port"),
    ("New-ReceiveConnector -Name x -Bindings 10.0.0.1:26 -RemoteIPRanges 10.0.0.9-10.0.0.1",
     "ends before it starts"),
    ("New-ReceiveConnector -Name x -Bindings 10.0.0.1:26 -PermissionGroups Admins",
     "not a valid permission group"),
    ("New-ReceiveConnector -Name x -Bindings 10.0.0.1:26 -MaxMessageSize lots",
     "not a size"),
    ("New-ReceiveConnector -Name x -Bindings 0.0.0.0:25", "already used"),
    ("New-ReceiveConnector -Name x -Bindings 10.0.0.1:26 -AuthMechanism None,Tls",
     "None cannot be combined"),
    ("Add-ADPermission 'Default Frontend mail1' -User x -ExtendedRights ms-Exch-Relay",
     "not a receive connector extended right"),
    ("Set-ReceiveConnector nope -Enabled $false", "couldn't be found"),
    ("Test-SmtpRelay -LocalEndPoint nowhere -RemoteIPAddress 1.2.3.4 -Sender a@b.test "
     "-Recipient c@d.test", "not IPv4:port"),
])
async def test_errors_are_clear(ctx, line, message):
    with pytest.raises(CmdletError, match=message):
        await run_line(ctx, line)


async def test_usage_defaults(ctx, store):
    await run_line(ctx, "New-ReceiveConnector -Name Clients -Usage Client -Bindings "
                        "10.0.0.2:587")
    c = await store.connectors.get_receive_connector("Clients")
    assert c.permission_groups == {"ExchangeUsers"}
    assert c.auth_mechanism == {"Tls", "BasicAuth", "BasicAuthRequireTLS", "Integrated"}
    await run_line(ctx, "New-ReceiveConnector -Name Inet -Usage Internet -Bindings "
                        "10.0.0.2:25")
    c = await store.connectors.get_receive_connector("Inet")
    assert c.permission_groups == {"AnonymousUsers"}
    assert [r.text for r in c.remote_ip_ranges] == ["0.0.0.0-255.255.255.255"]


async def test_explain_user_on_port_25_and_465(ctx):
    # Default Frontend has no ExchangeUsers group: a user's AUTH is refused there, and
    # the session stays anonymous (relay refused).
    out = await run_line(ctx, TEST.format(ep="10.0.0.1:25", ip="198.51.100.9",
                                          sender="alice@example.test",
                                          rcpt="bob@outlook.test") + " -User alice")
    assert "S: 535 5.7.3 Authentication unsuccessful" in out
    assert "S: 550 5.7.54" in out
    # the implicit-TLS submission connector: no STARTTLS, AUTH offered at once
    out = await run_line(ctx, TEST.format(ep="10.0.0.1:465", ip="198.51.100.9",
                                          sender="alice@example.test",
                                          rcpt="bob@outlook.test") + " -User alice")
    assert "(implicit TLS handshake)" in out and "C: STARTTLS" not in out
    assert "S: 250-AUTH LOGIN PLAIN" in out
    assert "S: 235 2.7.0 Authentication successful" in out
    assert "C: RCPT TO:<bob@outlook.test>\n  S: 250 2.1.5 Recipient OK" in out
    # sending as somebody else
    out = await run_line(ctx, TEST.format(ep="10.0.0.1:465", ip="198.51.100.9",
                                          sender="ceo@example.test",
                                          rcpt="bob@outlook.test") + " -User alice")
    assert "S: 550 5.7.60 SMTP; Client does not have permissions to send as this sender" in out
    assert "Verdict: refused at MAIL FROM" in out
