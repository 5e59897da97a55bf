"""Get/Set-CASMailbox: per-protocol enablement of a mailbox."""

from __future__ import annotations

import json

import pytest

from gateway.admin import CmdletError, run_line


@pytest.fixture
async def org_ctx(ctx):
    await run_line(ctx, "New-AcceptedDomain example -DomainName example.test")
    await run_line(ctx, "New-Mailbox alice")
    await run_line(ctx, "New-Mailbox bob")
    return ctx


def flags(store, name):
    mb = next(m for m in store.org.mailboxes.values() if m.name == name)
    return (mb.owa_enabled, mb.activesync_enabled, mb.imap_enabled, mb.pop_enabled,
            mb.smtp_submission_enabled)


async def test_defaults_all_enabled(org_ctx):
    [row] = json.loads(await run_line(org_ctx, "Get-CASMailbox alice", output_format="json"))
    assert row == {
        "Name": "alice", "PrimarySmtpAddress": "alice@example.test", "OWAEnabled": True,
        "ActiveSyncEnabled": True, "ImapEnabled": True, "PopEnabled": True,
        "SmtpClientAuthenticationDisabled": False, "Identity": "alice",
    }


async def test_set_each_flag(org_ctx, store):
    await run_line(org_ctx, "Set-CASMailbox alice -OWAEnabled $false -ActiveSyncEnabled 0 "
                            "-ImapEnabled:$false -PopEnabled false")
    assert flags(store, "alice") == (False, False, False, False, True)
    await run_line(org_ctx, "Set-CASMailbox alice -SmtpClientAuthenticationDisabled $true")
    assert flags(store, "alice") == (False, False, False, False, False)
    assert flags(store, "bob") == (True, True, True, True, True)
    out = await run_line(org_ctx, "Get-CASMailbox alice | Format-List Smtp*")
    assert out == "SmtpClientAuthenticationDisabled : True"


async def test_pipeline_from_get_mailbox(org_ctx, store):
    assert await run_line(org_ctx, "Get-Mailbox alice | Set-CASMailbox -ImapEnabled $false") == ""
    assert flags(store, "alice")[2] is False and flags(store, "bob")[2] is True
    await run_line(org_ctx, "Get-Mailbox | Set-CASMailbox -PopEnabled $false")
    assert flags(store, "alice")[3] is False and flags(store, "bob")[3] is False


async def test_table_of_all(org_ctx):
    table = (await run_line(org_ctx, "Get-CASMailbox")).splitlines()
    assert table[0].split() == ["Name", "ActiveSyncEnabled", "OWAEnabled", "PopEnabled",
                                "ImapEnabled", "SmtpClientAuthenticationDisabled"]
    assert len(table) == 4


async def test_no_change_warns_and_bad_value_errors(org_ctx):
    out = await run_line(org_ctx, "Set-CASMailbox alice -ImapEnabled $true")
    assert out.startswith("WARNING:")
    with pytest.raises(CmdletError, match="cannot convert 'off' to type Boolean"):
        await run_line(org_ctx, "Set-CASMailbox alice -ImapEnabled off")
