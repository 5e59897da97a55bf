"""run_line: pipelines, statements, output formats, confirmation and error handling."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest

from gateway.admin import AdminContext, CmdletError, Registry, run_line
from gateway.admin.registry import REGISTRY, CmdletSpec, Invocation, Output, ParamSpec, Record
from gateway.errors import StoreUnavailable


@pytest.fixture
async def org_ctx(ctx):
    await run_line(ctx, "New-AcceptedDomain example -DomainName example.test")
    await run_line(ctx, "New-Mailbox alice")
    await run_line(ctx, "New-Mailbox bob")
    return ctx


async def test_unknown_cmdlet_suggests_nearest(ctx):
    with pytest.raises(CmdletError, match=r"'Get-Mailbx' is not recognized.*'Get-Mailbox'"):
        await run_line(ctx, "Get-Mailbx alice")
    with pytest.raises(CmdletError, match="Run Get-Command"):
        await run_line(ctx, "Frobnicate-Everything")


async def test_cmdlet_names_are_case_insensitive(org_ctx):
    assert "alice" in await run_line(org_ctx, "get-mailbox ALICE")


async def test_pipeline_is_bound_before_anything_runs(org_ctx, store):
    writes = store.org.writes
    with pytest.raises(CmdletError, match="Did you mean -ImapEnabled"):
        await run_line(org_ctx, "New-Mailbox carol | Set-CASMailbox -ImapEnabld $false")
    assert store.org.writes == writes and len(store.org.mailboxes) == 2


async def test_pipeline_into_cmdlet_without_pipeline_input(org_ctx):
    with pytest.raises(CmdletError, match="does not take pipeline input"):
        await run_line(org_ctx, "Get-Mailbox | New-AcceptedDomain x -DomainName x.test")


async def test_pipeline_object_type_is_checked(org_ctx, store):
    with pytest.raises(CmdletError, match="AcceptedDomain object cannot be piped"):
        await run_line(org_ctx, "Get-AcceptedDomain | Remove-Mailbox")
    assert len(store.org.mailboxes) == 2


async def test_pipeline_identity_given_twice(org_ctx):
    with pytest.raises(CmdletError, match="both on the command line and by the pipeline"):
        await run_line(org_ctx, "Get-Mailbox alice | Set-CASMailbox bob -PopEnabled $false")


async def test_empty_left_side_runs_nothing(org_ctx, store):
    writes = store.org.writes
    assert await run_line(org_ctx, "Get-Mailbox zz* | Remove-Mailbox") == ""
    assert store.org.writes == writes


async def test_pipeline_remove_all(org_ctx, store):
    await run_line(org_ctx, "Get-Mailbox | Remove-Mailbox -Confirm:$false")
    assert not store.org.mailboxes


async def test_mailbox_to_mailbox_chain(org_ctx):
    out = await run_line(org_ctx, "Get-Mailbox alice | Get-CASMailbox | Format-Table Name,Pop*")
    assert out.splitlines() == ["Name  PopEnabled", "----  ----------", "alice True"]


async def test_formatter_must_be_last(org_ctx):
    with pytest.raises(CmdletError, match="Format-List must be the last command"):
        await run_line(org_ctx, "Get-Mailbox | Format-List | Get-CASMailbox")


async def test_output_format_argument(org_ctx):
    rows = json.loads(await run_line(org_ctx, "Get-Mailbox", output_format="json"))
    assert [r["Name"] for r in rows] == ["alice", "bob"]
    listed = await run_line(org_ctx, "Get-Mailbox", output_format="list")
    assert listed.count("Name                 :") == 2
    table = await run_line(org_ctx, "Get-Mailbox alice", output_format="table")
    assert table.splitlines()[0].startswith("Name")
    with pytest.raises(CmdletError, match="Unknown output format 'yaml'"):
        await run_line(org_ctx, "Get-Mailbox", output_format="yaml")


async def test_pipeline_formatter_wins_over_argument(org_ctx):
    out = await run_line(org_ctx, "Get-Mailbox alice | Format-Table Name", output_format="list")
    assert out.splitlines() == ["Name", "----", "alice"]


async def test_aliases_fl_ft(org_ctx):
    assert await run_line(org_ctx, "Get-Mailbox alice | fl Name") == "Name : alice"
    assert await run_line(org_ctx, "Get-Mailbox alice | ft Name") == "Name\n----\nalice"


async def test_statements_run_in_order_and_json_is_one_array(org_ctx):
    out = await run_line(org_ctx, "Get-Mailbox alice; Get-AcceptedDomain", output_format="json")
    assert [r["Name"] for r in json.loads(out)] == ["alice", "example"]
    text = await run_line(org_ctx, "Get-Mailbox alice | fl Name; Get-Mailbox bob | fl Name")
    assert text == "Name : alice\n\nName : bob"


async def test_blank_and_comment_lines(ctx):
    assert await run_line(ctx, "   ") == ""
    assert await run_line(ctx, "# nothing") == ""


async def test_confirm_without_prompt_is_refused(org_ctx, store):
    with pytest.raises(CmdletError, match="-Confirm needs an interactive session"):
        await run_line(org_ctx, "Remove-Mailbox alice -Confirm")
    assert len(store.org.mailboxes) == 2


async def test_confirm_prompt_is_used_for_high_impact(org_ctx, store):
    asked: list[str] = []

    async def no(question: str) -> bool:
        asked.append(question)
        return False

    interactive = dataclasses.replace(org_ctx, confirm=no)
    assert await run_line(interactive, "Remove-Mailbox alice") == ""
    assert len(store.org.mailboxes) == 2
    assert asked == ['Are you sure you want to perform this action?\nRemove mailbox "alice".']
    await run_line(interactive, "Remove-Mailbox alice -Confirm:$false")
    assert len(store.org.mailboxes) == 1 and len(asked) == 1
    # Set-* is not High impact: it asks only with -Confirm.
    await run_line(interactive, "Set-CASMailbox bob -PopEnabled $false")
    assert len(asked) == 1
    await run_line(interactive, "Set-CASMailbox bob -ImapEnabled $false -Confirm")
    assert len(asked) == 2
    assert next(iter(store.org.mailboxes.values())).imap_enabled is True


async def test_store_errors_become_cmdlet_errors(org_ctx, store, monkeypatch):
    async def down() -> list[object]:
        raise StoreUnavailable("the store cannot be reached")

    monkeypatch.setattr(store.org, "list_mailboxes", down)
    with pytest.raises(CmdletError, match="the store cannot be reached"):
        await run_line(org_ctx, "Get-Mailbox")


async def test_bugs_are_logged_not_shown(ctx, caplog):
    registry = Registry()

    async def broken(inv: Invocation) -> list[Output]:
        raise RuntimeError("secret internals")

    registry.add(CmdletSpec("Get-Broken", "broken", (), broken))
    local = dataclasses.replace(ctx, registry=registry)
    with caplog.at_level(logging.ERROR, logger="gateway.admin"):
        with pytest.raises(CmdletError) as exc:
            await run_line(local, "Get-Broken")
    assert str(exc.value) == "Get-Broken: internal error; the details are in the server log."
    assert "secret internals" in caplog.text


async def test_custom_registry_extends_the_shell(ctx):
    """Later issues add cmdlets by declaring them in a registry; nothing else changes."""
    registry = Registry()

    async def get_queue(inv: Invocation) -> list[Output]:
        return [Record("Queue", "q1", {"Identity": "q1", "MessageCount": inv.get("Min", 0)},
                       ("Identity", "MessageCount"))]

    registry.add(CmdletSpec("Get-TestWidget", "queues",
                            (ParamSpec("Min", "int", minimum=0),), get_queue))
    local = AdminContext(store=ctx.store, registry=registry)
    assert await run_line(local, "Get-TestWidget -Min 3") == "Identity     : q1\nMessageCount : 3"
    with pytest.raises(CmdletError, match="outside the range 0 to"):
        await run_line(local, "Get-TestWidget -Min -1")
    assert "Get-TestWidget" not in REGISTRY


async def test_warnings_follow_text_but_stay_out_of_json(org_ctx):
    text = await run_line(org_ctx, "Set-CASMailbox alice -PopEnabled $true; Get-Mailbox alice "
                                   "| fl Name")
    assert text == ("WARNING: The command completed successfully but no settings of 'alice' "
                    "have been modified.\n\nName : alice")
    out = await run_line(org_ctx, "Set-CASMailbox alice -PopEnabled $true", output_format="json")
    assert json.loads(out) == []


async def test_result_size(ctx, store):
    from gateway.admin.cmdlets import lookup

    await run_line(ctx, "New-AcceptedDomain example -DomainName example.test")
    for n in range(5):
        await run_line(ctx, f"New-Mailbox m{n}")
    rows = json.loads(await run_line(ctx, "Get-Mailbox -ResultSize 2", output_format="json"))
    assert [r["Name"] for r in rows] == ["m0", "m1"]
    assert len(json.loads(await run_line(ctx, "Get-CASMailbox -ResultSize unlimited",
                                         output_format="json"))) == 5
    with pytest.raises(CmdletError, match="positive number or Unlimited"):
        await run_line(ctx, "Get-Mailbox -ResultSize 0")
    lookup_default = lookup.DEFAULT_RESULT_SIZE
    try:
        lookup.DEFAULT_RESULT_SIZE = 3
        text = await run_line(ctx, "Get-Mailbox")
    finally:
        lookup.DEFAULT_RESULT_SIZE = lookup_default
    assert len(text.split("\n\n")[0].splitlines()) == 2 + 3
    assert "WARNING: By default, only the first 3 items are returned" in text


async def test_store_refusals_name_the_cmdlet(org_ctx):
    with pytest.raises(CmdletError, match=r"^New-Mailbox: .*already"):
        await run_line(org_ctx, "New-Mailbox ALICE -PrimarySmtpAddress other@example.test")


async def test_json_argument_with_formatter_in_one_of_the_statements(org_ctx):
    out = await run_line(org_ctx, "Get-Mailbox alice | fl Name; Get-Mailbox bob",
                         output_format="json")
    first, second = out.split("\n\n")
    assert first == "Name : alice"
    assert json.loads(second)[0]["Name"] == "bob"


async def test_whatif_describes_and_changes_nothing(org_ctx, store):
    writes = store.org.writes
    out = await run_line(org_ctx, "Remove-Mailbox alice -WhatIf")
    assert out == 'What if: Performing the operation "Remove mailbox" on target "alice".'
    out = await run_line(org_ctx, "Get-Mailbox | Set-CASMailbox -PopEnabled $false -WhatIf")
    assert out.splitlines() == [
        'What if: Performing the operation "Set CAS mailbox" on target "alice".',
        'What if: Performing the operation "Set CAS mailbox" on target "bob".',
    ]
    out = await run_line(org_ctx, "New-Mailbox carol -Password 'Pa55word!' -WhatIf")
    assert out == 'What if: Performing the operation "New mailbox" on target "carol".'
    # Validation still runs: -WhatIf reports what would fail.
    with pytest.raises(CmdletError, match="not an accepted domain"):
        await run_line(org_ctx, "New-Mailbox d -PrimarySmtpAddress d@else.test -WhatIf")
    assert store.org.writes == writes and len(store.org.mailboxes) == 2
