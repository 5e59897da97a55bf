"""New/Get/Set/Remove-AcceptedDomain against the in-memory store.org."""

from __future__ import annotations

import json

import pytest

from gateway.admin import CmdletError, run_line


async def test_new_accepted_domain_acceptance_line(ctx, store):
    out = await run_line(ctx, "New-AcceptedDomain -Name example -DomainName example.test")
    assert "DomainName         : example.test" in out
    [d] = store.org.domains.values()
    assert (d.name, d.domain_name, d.domain_type, d.is_default) == (
        "example", "example.test", "Authoritative", True)


async def test_domain_name_is_lower_cased_and_typed(ctx, store):
    await run_line(ctx, "New-AcceptedDomain example -DomainName Example.TEST")
    await run_line(ctx, "New-AcceptedDomain partners -DomainName *.Partner.test "
                        "-DomainType internalrelay")
    rows = json.loads(await run_line(ctx, "Get-AcceptedDomain", output_format="json"))
    assert [(r["Name"], r["DomainName"], r["DomainType"], r["Default"], r["MatchSubDomains"])
            for r in rows] == [
        ("example", "example.test", "Authoritative", True, False),
        ("partners", "*.partner.test", "InternalRelay", False, True),
    ]


@pytest.mark.parametrize(("domain", "message"), [
    ("ex*ample.test", "wildcard"),
    ("*.*.example.test", "wildcard"),
    ("example.*", "wildcard"),
    ("-bad.test", "hyphen"),
    ("exa mple.test", "labels"),
    ("a..test", "empty label"),
    ("a" * 64 + ".test", "longer than 63"),
    (".".join(["abcdefghi"] * 26) + ".test", "longer than 256"),
])
async def test_domain_name_validation(ctx, store, domain, message):
    with pytest.raises(CmdletError, match=message):
        await run_line(ctx, f"New-AcceptedDomain x -DomainName '{domain}'")
    assert not store.org.domains


async def test_unicode_domain_is_stored_as_a_labels(ctx, store):
    await run_line(ctx, "New-AcceptedDomain idn -DomainName bücher.test")
    assert [d.domain_name for d in store.org.domains.values()] == ["xn--bcher-kva.test"]


async def test_bad_domain_type_names_the_valid_ones(ctx):
    with pytest.raises(CmdletError, match="Authoritative, InternalRelay, ExternalRelay"):
        await run_line(ctx, "New-AcceptedDomain x -DomainName x.test -DomainType Relay")


async def test_missing_mandatory_domain_name(ctx):
    with pytest.raises(CmdletError, match="missing mandatory parameter\\(s\\): -DomainName"):
        await run_line(ctx, "New-AcceptedDomain x")


async def test_duplicate_is_reported(ctx):
    await run_line(ctx, "New-AcceptedDomain x -DomainName x.test")
    with pytest.raises(CmdletError, match="already"):
        await run_line(ctx, "New-AcceptedDomain y -DomainName X.test")


async def test_get_by_name_domain_and_wildcard(ctx):
    await run_line(ctx, "New-AcceptedDomain one -DomainName one.test")
    await run_line(ctx, "New-AcceptedDomain two -DomainName two.test")
    assert "Name               : two" in await run_line(ctx, "Get-AcceptedDomain two.test")
    table = await run_line(ctx, "Get-AcceptedDomain *o*")
    assert table.splitlines()[0].split() == ["Name", "DomainName", "DomainType", "Default"]
    assert len(table.splitlines()) == 4
    assert await run_line(ctx, "Get-AcceptedDomain zz*") == ""
    with pytest.raises(CmdletError, match="object 'three' couldn't be found"):
        await run_line(ctx, "Get-AcceptedDomain three")


async def test_make_default_moves_the_default(ctx, store):
    await run_line(ctx, "New-AcceptedDomain one -DomainName one.test")
    await run_line(ctx, "New-AcceptedDomain two -DomainName two.test -MakeDefault")
    assert {d.name: d.is_default for d in store.org.domains.values()} == {
        "one": False, "two": True}
    assert await run_line(ctx, "Set-AcceptedDomain one -MakeDefault") == ""
    assert {d.name: d.is_default for d in store.org.domains.values()} == {
        "one": True, "two": False}
    with pytest.raises(CmdletError, match="stays the default"):
        await run_line(ctx, "Set-AcceptedDomain one -MakeDefault:$false")


async def test_set_accepted_domain_changes_name_and_type(ctx, store):
    await run_line(ctx, "New-AcceptedDomain one -DomainName one.test")
    assert await run_line(ctx, "Set-AcceptedDomain one -Name uno -DomainType ExternalRelay") == ""
    [d] = store.org.domains.values()
    assert (d.name, d.domain_type) == ("uno", "ExternalRelay")
    out = await run_line(ctx, "Get-AcceptedDomain uno | Format-List Name,AddressBookEnabled")
    assert out == "Name               : uno\nAddressBookEnabled : False"


async def test_set_without_change_warns(ctx, store):
    await run_line(ctx, "New-AcceptedDomain one -DomainName one.test")
    writes = store.org.writes
    out = await run_line(ctx, "Set-AcceptedDomain one -DomainType Authoritative")
    assert out.startswith("WARNING: The command completed successfully but no settings")
    assert store.org.writes == writes


async def test_domain_name_cannot_be_changed(ctx):
    await run_line(ctx, "New-AcceptedDomain one -DomainName one.test")
    with pytest.raises(CmdletError, match="parameter name 'DomainName'"):
        await run_line(ctx, "Set-AcceptedDomain one -DomainName two.test")


async def test_remove_default_refused_while_others_exist(ctx, store):
    await run_line(ctx, "New-AcceptedDomain one -DomainName one.test")
    await run_line(ctx, "New-AcceptedDomain two -DomainName two.test")
    with pytest.raises(CmdletError, match="default accepted domain cannot be removed"):
        await run_line(ctx, "Remove-AcceptedDomain one")
    assert await run_line(ctx, "Remove-AcceptedDomain two -Confirm:$false") == ""
    assert await run_line(ctx, "Remove-AcceptedDomain one") == ""
    assert not store.org.domains


async def test_remove_warns_about_addresses_left_without_a_domain(ctx, store):
    await run_line(ctx, "New-AcceptedDomain one -DomainName one.test")
    await run_line(ctx, "New-AcceptedDomain two -DomainName two.test")
    await run_line(ctx, "New-AcceptedDomain subs -DomainName *.two.test")
    await run_line(ctx, "New-Mailbox alice -EmailAddresses a@two.test")
    await run_line(ctx, "New-Mailbox bob -EmailAddresses b@x.two.test")
    out = await run_line(ctx, "Remove-AcceptedDomain two")
    assert out == ("WARNING: 1 mailbox(es) still have addresses in two.test, which is no "
                   "longer accepted: alice.")
    assert (await run_line(ctx, "Remove-AcceptedDomain one -WhatIf")).startswith("What if:")
