"""The admin cmdlets against the real store, on SQLite and PostgreSQL.

Runs the issue's acceptance lines and the rules that depend on the store (uniqueness
of names and addresses, the default domain, credential hashing with the real argon2id
and NT hash) through ``run_line``, exactly as ``gateway exec`` does.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from auth.passwords import nt_hash, verify_password
from gateway.admin import AdminContext, CmdletError, run_line

PASSWORD = "S3cret!pass"


@pytest.fixture
def ctx(store: object) -> AdminContext:
    return AdminContext(store=store, server_name="mail1.example.test")


async def test_acceptance_lines(ctx, store):
    await run_line(ctx, "New-AcceptedDomain -Name example -DomainName example.test")
    created = await run_line(ctx, "New-Mailbox -Name alice -PrimarySmtpAddress "
                                  f'alice@example.test -Password "{PASSWORD}"')
    shown = await run_line(ctx, "Get-Mailbox alice")
    assert created == shown
    assert "Name                 : alice" in shown
    assert "PrimarySmtpAddress   : alice@example.test" in shown
    assert PASSWORD not in shown

    mb = await store.org.get_mailbox("alice")
    assert mb.user_principal_name == "alice@example.test"
    ok, _ = await asyncio.to_thread(verify_password, PASSWORD, mb.password_hash)
    assert ok
    assert not mb.ntlm_enabled and mb.nt_hash is None
    [domain] = await store.org.list_accepted_domains()
    assert domain.is_default and domain.domain_type == "Authoritative"


async def test_ntlm_and_password_change(ctx, store):
    await run_line(ctx, "New-AcceptedDomain example -DomainName example.test")
    await run_line(ctx, "New-Mailbox bob")
    before = await store.org.get_mailbox("bob")
    assert before.password_hash is None
    with pytest.raises(CmdletError, match="needs -Password"):
        await run_line(ctx, "Set-Mailbox bob -NtlmEnabled $true")
    await run_line(ctx, f"Set-Mailbox bob -Password '{PASSWORD}' -NtlmEnabled $true")
    after = await store.org.get_mailbox("bob")
    assert after.ntlm_enabled and after.nt_hash == nt_hash(PASSWORD)
    assert after.credential_version > before.credential_version
    await run_line(ctx, "Set-Mailbox bob -NtlmEnabled $false")
    off = await store.org.get_mailbox("bob")
    assert not off.ntlm_enabled and off.nt_hash is None and off.password_hash


async def test_domains_and_addresses(ctx, store):
    await run_line(ctx, "New-AcceptedDomain example -DomainName example.test")
    await run_line(ctx, "New-AcceptedDomain relay -DomainName *.relay.test "
                        "-DomainType InternalRelay")
    await run_line(ctx, "New-AcceptedDomain ext -DomainName ext.test -DomainType ExternalRelay")
    rows = json.loads(await run_line(ctx, "Get-AcceptedDomain", output_format="json"))
    assert [(r["Name"], r["DomainName"], r["Default"]) for r in rows] == [
        ("example", "example.test", True), ("ext", "ext.test", False),
        ("relay", "*.relay.test", False),
    ]
    with pytest.raises(CmdletError, match="ExternalRelay"):
        await run_line(ctx, "New-Mailbox x -PrimarySmtpAddress x@ext.test")
    await run_line(ctx, "New-Mailbox carol -EmailAddresses c@eu.relay.test,c2@example.test")
    await run_line(ctx, "Set-Mailbox carol -EmailAddresses @{Add='SMTP:Carol@Example.TEST'; "
                        "Remove='c2@example.test'}")
    mb = await store.org.get_mailbox("c@EU.relay.test")
    assert mb.primary_smtp_address == "Carol@example.test"
    # Only the case of the primary changed, so it is not kept as a further address.
    assert mb.email_addresses == ("c@eu.relay.test",)
    with pytest.raises(CmdletError, match="already"):
        await run_line(ctx, "New-Mailbox dave -EmailAddresses c@eu.relay.test")
    with pytest.raises(CmdletError, match="already"):
        await run_line(ctx, "New-AcceptedDomain example2 -DomainName EXAMPLE.test")

    await run_line(ctx, "Set-AcceptedDomain ext -MakeDefault")
    assert (await store.org.get_accepted_domain("ext.test")).is_default
    with pytest.raises(CmdletError, match="default"):
        await run_line(ctx, "Remove-AcceptedDomain ext")
    await run_line(ctx, "Remove-AcceptedDomain relay -Confirm:$false")
    assert len(await store.org.list_accepted_domains()) == 2


async def test_cas_pipeline_and_remove(ctx, store):
    await run_line(ctx, "New-AcceptedDomain example -DomainName example.test")
    await run_line(ctx, "New-Mailbox alice; New-Mailbox bob")
    await run_line(ctx, "Get-Mailbox alice | Set-CASMailbox -ImapEnabled $false "
                        "-SmtpClientAuthenticationDisabled $true")
    alice = await store.org.get_mailbox("alice")
    bob = await store.org.get_mailbox("bob")
    assert (alice.imap_enabled, alice.smtp_submission_enabled) == (False, False)
    assert (bob.imap_enabled, bob.smtp_submission_enabled) == (True, True)
    table = await run_line(ctx, "Get-CASMailbox | Format-Table Name,ImapEnabled")
    assert table.splitlines()[2:] == ["alice False", "bob   True"]
    version = await store.org.version()
    await run_line(ctx, "Get-Mailbox b* | Remove-Mailbox")
    assert [m.name for m in await store.org.list_mailboxes()] == ["alice"]
    assert await store.org.version() > version


@pytest.mark.slow
def test_gateway_exec_acceptance(tmp_path):
    """The issue's three `gateway exec` lines on a fresh node with embedded defaults."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k != "GATEWAY_CONFIG"}
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")

    def gateway(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gateway", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)

    first = gateway("exec", "New-AcceptedDomain -Name example -DomainName example.test")
    assert first.returncode == 0, first.stderr
    second = gateway("exec", "New-Mailbox -Name alice -PrimarySmtpAddress alice@example.test "
                             '-Password "S3cret!pass"')
    assert second.returncode == 0, second.stderr
    shown = gateway("exec", "Get-Mailbox alice")
    assert shown.returncode == 0, shown.stderr
    assert "PrimarySmtpAddress   : alice@example.test" in shown.stdout
    assert "S3cret!pass" not in first.stdout + second.stdout + shown.stdout
    wrong = gateway("exec", "Get-Mailbx alice")
    assert wrong.returncode == 1
    assert "Did you mean 'Get-Mailbox'?" in wrong.stderr
    assert "Traceback" not in wrong.stderr


async def test_organization_config(ctx, store):
    await run_line(ctx, "New-AcceptedDomain example -DomainName example.test")
    await run_line(ctx, "Set-OrganizationConfig -NetbiosDomain corp -Name 'Corp'")
    assert await store.org.get_settings("organization") == {"name": "Corp",
                                                             "netbios_domain": "CORP"}
    [row] = json.loads(await run_line(ctx, "Get-OrganizationConfig", output_format="json"))
    assert (row["NetbiosDomain"], row["DefaultDomain"]) == ("CORP", "example.test")
