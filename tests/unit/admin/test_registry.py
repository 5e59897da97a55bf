"""Registry declarations, Get-Command and Get-Help."""

from __future__ import annotations

import pytest

from gateway.admin import CmdletError, run_line
from gateway.admin.registry import CmdletSpec, Output, ParamSpec, Registry
from gateway.admin.runner import default_registry

ISSUE_CMDLETS = {
    "New-AcceptedDomain", "Get-AcceptedDomain", "Set-AcceptedDomain", "Remove-AcceptedDomain",
    "New-Mailbox", "Get-Mailbox", "Set-Mailbox", "Remove-Mailbox",
    "Get-CASMailbox", "Set-CASMailbox", "Get-Help", "Get-Command",
}


async def _noop(inv: object) -> list[Output]:
    return []


def spec(name: str = "Get-Thing", *params: ParamSpec) -> CmdletSpec:
    return CmdletSpec(name, "s", tuple(params), _noop)


def test_every_issue_cmdlet_is_registered():
    names = {s.name for s in default_registry().all()}
    assert ISSUE_CMDLETS <= names


def test_issue_parameters_are_declared():
    registry = default_registry()

    def params(name: str) -> set[str]:
        return {p.name for p in registry.get(name).params}

    assert {"Name", "DomainName", "DomainType", "MakeDefault"} <= params("New-AcceptedDomain")
    assert {"Name", "DisplayName", "PrimarySmtpAddress", "UserPrincipalName", "Password",
            "EmailAddresses", "NtlmEnabled"} <= params("New-Mailbox")
    assert {"OWAEnabled", "ActiveSyncEnabled", "ImapEnabled", "PopEnabled",
            "SmtpClientAuthenticationDisabled"} <= params("Set-CASMailbox")


@pytest.mark.parametrize(("bad", "message"), [
    (spec("GetThing"), "not Verb-Noun"),
    (spec("Get-Thing", ParamSpec("A"), ParamSpec("a")), "declared twice"),
    (spec("Get-Thing", ParamSpec("A", aliases=("B",)), ParamSpec("B")), "declared twice"),
    (spec("Get-Thing", ParamSpec("A", position=0), ParamSpec("B", position=0)), "position"),
    (spec("Get-Thing", ParamSpec("A", "enum")), "no choices"),
    (spec("Get-Thing", ParamSpec("A", edit=True)), "only a list"),
    (spec("Get-Thing", ParamSpec("A", pipeline=True), ParamSpec("B", pipeline=True)),
     "more than one"),
])
def test_declaration_mistakes_are_caught(bad, message):
    with pytest.raises(ValueError, match=message):
        Registry().add(bad)


def test_duplicate_cmdlet_or_alias():
    registry = Registry()
    registry.add(CmdletSpec("Get-Thing", "s", (), _noop, aliases=("gt",)))
    with pytest.raises(ValueError, match="twice"):
        registry.add(spec("get-thing"))
    with pytest.raises(ValueError, match="twice"):
        registry.add(CmdletSpec("Get-Other", "s", (), _noop, aliases=("GT",)))
    assert registry.get("GT").name == "Get-Thing"
    assert "gt" in registry and "nope" not in registry


def test_syntax_line():
    s = spec("Set-Thing", ParamSpec("Identity", mandatory=True, position=0),
             ParamSpec("Kind", "enum", choices=("A", "B")), ParamSpec("Force", "switch"),
             ParamSpec("Must", mandatory=True))
    assert s.syntax() == "Set-Thing [-Identity] <String> -Must <String> [-Force] [-Kind <A|B>]"


async def test_get_command_lists_and_filters(ctx):
    table = await run_line(ctx, "Get-Command")
    for name in ISSUE_CMDLETS:
        assert name in table
    only = await run_line(ctx, "Get-Command *CASMailbox")
    assert [line.split()[0] for line in only.splitlines()[2:]] == [
        "Get-CASMailbox", "Set-CASMailbox"]
    verbs = await run_line(ctx, "Get-Command -Verb remove -Noun *domain*")
    assert verbs.startswith("Name     : Remove-AcceptedDomain\n")
    with pytest.raises(CmdletError, match="Did you mean 'Get-Mailbox'"):
        await run_line(ctx, "Get-Command Get-Mailboxes")


async def test_get_help_for_a_cmdlet(ctx):
    text = await run_line(ctx, "Get-Help Set-CASMailbox")
    assert text.startswith("NAME\n    Set-CASMailbox\n\nSYNOPSIS")
    assert "SYNTAX\n    Set-CASMailbox [-Identity] <String>" in text
    assert "    -ImapEnabled <Boolean>\n        Allows IMAP4 logons." in text
    assert "Accept pipeline input?       true" in text
    assert "PS> Set-CASMailbox alice" in text


async def test_get_help_enum_aliases_and_intro(ctx):
    assert "-DomainType <Authoritative | InternalRelay | ExternalRelay>" in await run_line(
        ctx, "Get-Help New-AcceptedDomain")
    assert "ALIASES\n    fl" in await run_line(ctx, "help Format-List")
    intro = await run_line(ctx, "Get-Help")
    assert "Verb-Noun -Parameter value" in intro and "Get-Command" in intro
    several = await run_line(ctx, "Get-Help *-AcceptedDomain")
    assert "Remove-AcceptedDomain" in several and "New-AcceptedDomain" in several
    with pytest.raises(CmdletError, match="no cmdlet matches"):
        await run_line(ctx, "Get-Help Zap-*")
    with pytest.raises(CmdletError, match="Did you mean 'New-Mailbox'"):
        await run_line(ctx, "Get-Help New-Mailbx")
