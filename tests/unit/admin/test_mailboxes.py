"""New/Get/Set/Remove-Mailbox against the in-memory store.org."""

from __future__ import annotations

import json

import pytest

from gateway.admin import CmdletError, run_line
from tests.unit.admin.conftest import fake_hash, fake_nt_hash

PASSWORD = "S3cret!pass"


@pytest.fixture
async def org_ctx(ctx):
    await run_line(ctx, "New-AcceptedDomain -Name example -DomainName example.test")
    await run_line(ctx, "New-AcceptedDomain -Name relay -DomainName relay.test "
                        "-DomainType InternalRelay")
    await run_line(ctx, "New-AcceptedDomain -Name ext -DomainName ext.test "
                        "-DomainType ExternalRelay")
    await run_line(ctx, "New-AcceptedDomain -Name subs -DomainName *.sub.test")
    return ctx


async def test_acceptance_lines(org_ctx, store):
    out = await run_line(org_ctx, 'New-Mailbox -Name alice -PrimarySmtpAddress '
                                  f'alice@example.test -Password "{PASSWORD}"')
    assert "PrimarySmtpAddress   : alice@example.test" in out
    shown = await run_line(org_ctx, "Get-Mailbox alice")
    assert "Name                 : alice" in shown
    assert "UserPrincipalName    : alice@example.test" in shown
    [mb] = store.org.mailboxes.values()
    assert mb.password_hash == fake_hash(PASSWORD)
    assert mb.nt_hash is None and not mb.ntlm_enabled
    assert mb.sam_account_name == "alice" and mb.display_name == "alice"


async def test_password_never_in_output(org_ctx):
    out = await run_line(org_ctx, f"New-Mailbox alice -Password '{PASSWORD}'")
    out += await run_line(org_ctx, "Get-Mailbox alice", output_format="json")
    out += await run_line(org_ctx, "Get-Mailbox alice | Format-List")
    assert PASSWORD not in out and fake_hash(PASSWORD) not in out
    assert "password" not in out.lower()


async def test_primary_defaults_to_name_at_default_domain(org_ctx, store):
    await run_line(org_ctx, "New-Mailbox bob")
    [mb] = store.org.mailboxes.values()
    assert mb.primary_smtp_address == "bob@example.test"
    assert mb.user_principal_name == "bob@example.test"
    assert mb.password_hash is None


async def test_name_without_valid_local_part_needs_primary(org_ctx):
    with pytest.raises(CmdletError, match="give -PrimarySmtpAddress"):
        await run_line(org_ctx, "New-Mailbox 'Bob Smith'")


async def test_domain_of_address_must_be_accepted(org_ctx, store):
    with pytest.raises(CmdletError, match=r"'other\.test' is not an accepted domain"):
        await run_line(org_ctx, "New-Mailbox a -PrimarySmtpAddress a@other.test")
    with pytest.raises(CmdletError, match="ExternalRelay"):
        await run_line(org_ctx, "New-Mailbox a -PrimarySmtpAddress a@ext.test")
    with pytest.raises(CmdletError, match="not an accepted domain"):
        await run_line(org_ctx, "New-Mailbox a -PrimarySmtpAddress a@sub.test")
    with pytest.raises(CmdletError, match="not an accepted domain"):
        await run_line(org_ctx, "New-Mailbox a -PrimarySmtpAddress a@example.test "
                                "-EmailAddresses b@nowhere.test")
    assert not store.org.mailboxes
    await run_line(org_ctx, "New-Mailbox r -PrimarySmtpAddress r@relay.test")
    await run_line(org_ctx, "New-Mailbox w -PrimarySmtpAddress w@deep.a.sub.test")
    assert len(store.org.mailboxes) == 2


async def test_upn_suffix_need_not_be_accepted(org_ctx, store):
    await run_line(org_ctx, "New-Mailbox a -UserPrincipalName a@corp.internal")
    [mb] = store.org.mailboxes.values()
    assert mb.user_principal_name == "a@corp.internal"


@pytest.mark.parametrize(("address", "message"), [
    ("alice", "expected user@domain"),
    ("@example.test", "expected user@domain"),
    ("a..b@example.test", "dots"),
    ("a b@example.test", "dots"),
    ("a@exa_mple.test", "labels"),
    ("a@*.example.test", "wildcard"),
    ("x" * 65 + "@example.test", "longer than 64"),
])
async def test_address_validation(org_ctx, address, message):
    with pytest.raises(CmdletError, match=message):
        await run_line(org_ctx, f"New-Mailbox a -PrimarySmtpAddress '{address}'")


async def test_address_domain_is_lower_cased_local_part_kept(org_ctx, store):
    await run_line(org_ctx, "New-Mailbox a -PrimarySmtpAddress Alice.Smith@EXAMPLE.test")
    [mb] = store.org.mailboxes.values()
    assert mb.primary_smtp_address == "Alice.Smith@example.test"


async def test_email_addresses_with_primary_prefix(org_ctx, store):
    await run_line(org_ctx, "New-Mailbox bob -EmailAddresses "
                            "smtp:b@example.test,SMTP:bob@relay.test,'bobby@example.test'")
    [mb] = store.org.mailboxes.values()
    assert mb.primary_smtp_address == "bob@relay.test"
    assert mb.email_addresses == ("b@example.test", "bobby@example.test")
    shown = json.loads(await run_line(org_ctx, "Get-Mailbox bob", output_format="json"))
    assert shown[0]["EmailAddresses"] == [
        "SMTP:bob@relay.test", "smtp:b@example.test", "smtp:bobby@example.test"]


async def test_conflicting_primaries(org_ctx):
    with pytest.raises(CmdletError, match="Only one address can be the primary"):
        await run_line(org_ctx, "New-Mailbox b -EmailAddresses SMTP:a@example.test,"
                                "SMTP:b@example.test")
    with pytest.raises(CmdletError, match="different primary addresses"):
        await run_line(org_ctx, "New-Mailbox b -PrimarySmtpAddress b@example.test "
                                "-EmailAddresses SMTP:c@example.test")
    with pytest.raises(CmdletError, match="'X500:' is not supported"):
        await run_line(org_ctx, "New-Mailbox b -EmailAddresses X500:/o=x")


async def test_duplicate_name_or_address(org_ctx):
    await run_line(org_ctx, "New-Mailbox alice")
    with pytest.raises(CmdletError, match="already"):
        await run_line(org_ctx, "New-Mailbox ALICE -PrimarySmtpAddress a2@example.test")
    with pytest.raises(CmdletError, match="already"):
        await run_line(org_ctx, "New-Mailbox bob -EmailAddresses alice@example.test")


async def test_password_length(org_ctx):
    with pytest.raises(CmdletError, match="at least 8 characters"):
        await run_line(org_ctx, "New-Mailbox a -Password short")


async def test_ntlm_needs_password_and_stores_nt_hash(org_ctx, store):
    with pytest.raises(CmdletError, match="needs -Password"):
        await run_line(org_ctx, "New-Mailbox a -NtlmEnabled $true")
    await run_line(org_ctx, f"New-Mailbox a -NtlmEnabled $true -Password '{PASSWORD}'")
    [mb] = store.org.mailboxes.values()
    assert mb.ntlm_enabled and mb.nt_hash == fake_nt_hash(PASSWORD)


async def test_sam_account_name_derived_and_validated(org_ctx, store):
    await run_line(org_ctx, "New-Mailbox 'averyveryverylong.name+x' -PrimarySmtpAddress "
                            "long@example.test")
    [mb] = store.org.mailboxes.values()
    assert mb.sam_account_name == "averyveryverylong.na"
    with pytest.raises(CmdletError, match="SamAccountName"):
        await run_line(org_ctx, "New-Mailbox b -SamAccountName 'a/b'")


async def test_get_mailbox_by_address_wildcard_and_table(org_ctx):
    await run_line(org_ctx, "New-Mailbox alice -EmailAddresses al@example.test")
    await run_line(org_ctx, "New-Mailbox bob")
    assert "Name                 : alice" in await run_line(org_ctx, "Get-Mailbox AL@example.test")
    table = await run_line(org_ctx, "Get-Mailbox")
    assert table.splitlines()[0].split() == ["Name", "DisplayName", "PrimarySmtpAddress"]
    assert [line.split()[0] for line in table.splitlines()[2:]] == ["alice", "bob"]
    assert "bob" in await run_line(org_ctx, "Get-Mailbox b*")
    with pytest.raises(CmdletError, match="object 'carol' couldn't be found"):
        await run_line(org_ctx, "Get-Mailbox carol")


async def test_set_mailbox_names_and_upn(org_ctx, store):
    await run_line(org_ctx, "New-Mailbox alice")
    assert await run_line(org_ctx, "Set-Mailbox alice -DisplayName 'Alice Liddell' "
                                   "-UserPrincipalName alice@corp.test") == ""
    [mb] = store.org.mailboxes.values()
    assert (mb.display_name, mb.user_principal_name) == ("Alice Liddell", "alice@corp.test")


async def test_set_primary_keeps_old_as_further(org_ctx, store):
    await run_line(org_ctx, "New-Mailbox alice")
    await run_line(org_ctx, "Set-Mailbox alice -PrimarySmtpAddress alice@relay.test")
    [mb] = store.org.mailboxes.values()
    assert mb.primary_smtp_address == "alice@relay.test"
    assert mb.email_addresses == ("alice@example.test",)
    with pytest.raises(CmdletError, match="not an accepted domain"):
        await run_line(org_ctx, "Set-Mailbox alice -PrimarySmtpAddress alice@else.test")


async def test_set_email_addresses_replace_edit_clear(org_ctx, store):
    await run_line(org_ctx, "New-Mailbox alice -EmailAddresses a1@example.test")
    mb = lambda: next(iter(store.org.mailboxes.values()))  # noqa: E731
    await run_line(org_ctx, "Set-Mailbox alice -EmailAddresses a2@example.test,a3@example.test")
    assert mb().email_addresses == ("a2@example.test", "a3@example.test")
    await run_line(org_ctx, "Set-Mailbox alice -EmailAddresses "
                            "@{Add='a4@example.test'; Remove='A2@example.test'}")
    assert mb().email_addresses == ("a3@example.test", "a4@example.test")
    await run_line(org_ctx, "Set-Mailbox alice -EmailAddresses @{Add='SMTP:a3@example.test'}")
    assert mb().primary_smtp_address == "a3@example.test"
    assert set(mb().email_addresses) == {"alice@example.test", "a4@example.test"}
    with pytest.raises(CmdletError, match=r"primary address .* cannot be removed"):
        await run_line(org_ctx, "Set-Mailbox alice -EmailAddresses @{Remove='a3@example.test'}")
    await run_line(org_ctx, "Set-Mailbox alice -EmailAddresses $null")
    assert mb().email_addresses == () and mb().primary_smtp_address == "a3@example.test"


async def test_set_existing_address_in_removed_domain_does_not_block(org_ctx, store):
    await run_line(org_ctx, "New-Mailbox alice -EmailAddresses a@relay.test")
    relay = next(d for d in store.org.domains.values() if d.name == "relay")
    del store.org.domains[relay.id]
    await run_line(org_ctx, "Set-Mailbox alice -EmailAddresses @{Add='a2@example.test'}")
    assert set(next(iter(store.org.mailboxes.values())).email_addresses) == {
        "a@relay.test", "a2@example.test"}


async def test_set_password_and_ntlm(org_ctx, store):
    await run_line(org_ctx, f"New-Mailbox alice -Password '{PASSWORD}'")
    mb = lambda: next(iter(store.org.mailboxes.values()))  # noqa: E731
    with pytest.raises(CmdletError, match="needs -Password in the same command"):
        await run_line(org_ctx, "Set-Mailbox alice -NtlmEnabled $true")
    await run_line(org_ctx, "Set-Mailbox alice -NtlmEnabled $true -Password 'N3w!passw0rd'")
    assert mb().ntlm_enabled and mb().nt_hash == fake_nt_hash("N3w!passw0rd")
    assert mb().password_hash == fake_hash("N3w!passw0rd")
    version = mb().credential_version
    # A new password on an NTLM mailbox refreshes the NT hash too.
    await run_line(org_ctx, "Set-Mailbox alice -Password 'Th1rd!pass'")
    assert mb().nt_hash == fake_nt_hash("Th1rd!pass") and mb().credential_version > version
    await run_line(org_ctx, "Set-Mailbox alice -NtlmEnabled $false")
    assert not mb().ntlm_enabled and mb().nt_hash is None
    assert mb().password_hash == fake_hash("Th1rd!pass")
    await run_line(org_ctx, "Set-Mailbox alice -Password $null")
    assert mb().password_hash is None


async def test_set_nothing_warns(org_ctx, store):
    await run_line(org_ctx, "New-Mailbox alice")
    writes = store.org.writes
    out = await run_line(org_ctx, "Set-Mailbox alice -DisplayName alice")
    assert "no settings of 'alice' have been modified" in out
    assert store.org.writes == writes


async def test_remove_mailbox(org_ctx, store):
    await run_line(org_ctx, "New-Mailbox alice")
    assert await run_line(org_ctx, "Remove-Mailbox alice@example.test") == ""
    assert not store.org.mailboxes
    with pytest.raises(CmdletError, match="couldn't be found"):
        await run_line(org_ctx, "Remove-Mailbox alice -Confirm:$false")


async def test_secure_string_idiom(org_ctx, store):
    await run_line(org_ctx, "New-Mailbox -Name alice -Password (ConvertTo-SecureString "
                            f"-String '{PASSWORD}' -AsPlainText -Force)")
    [mb] = store.org.mailboxes.values()
    assert mb.password_hash == fake_hash(PASSWORD)


async def test_secure_string_is_never_shown_or_misused(org_ctx):
    shown = await run_line(org_ctx, f"ConvertTo-SecureString '{PASSWORD}' -AsPlainText")
    assert shown == "Type   : System.Security.SecureString\nLength : 11"
    shown = await run_line(org_ctx, f"ConvertTo-SecureString '{PASSWORD}' -AsPlainText",
                           output_format="json")
    assert PASSWORD not in shown
    for line in (
        f"Get-Mailbox (ConvertTo-SecureString '{PASSWORD}' -AsPlainText)",
        f"Set-Mailbox x -DisplayName (ConvertTo-SecureString '{PASSWORD}' -AsPlainText | fl)",
        f"ConvertTo-SecureString '{PASSWORD}' -AsPlainText | Get-Mailbox",
        f"ConvertTo-SecureString '{PASSWORD}'",
    ):
        with pytest.raises(CmdletError) as exc:
            await run_line(org_ctx, line)
        assert PASSWORD not in str(exc.value), line


async def test_subexpression_object_stands_for_its_identity(org_ctx, store):
    await run_line(org_ctx, "New-Mailbox alice")
    await run_line(org_ctx, "Set-CASMailbox (Get-Mailbox alice) -PopEnabled $false")
    assert next(iter(store.org.mailboxes.values())).pop_enabled is False
    with pytest.raises(CmdletError, match="because it is null"):
        await run_line(org_ctx, "Set-CASMailbox (Get-Mailbox zz*) -PopEnabled $false")


async def test_names_cannot_hold_wildcards(org_ctx, store):
    with pytest.raises(CmdletError, match="wildcards"):
        await run_line(org_ctx, "New-Mailbox 'a*' -PrimarySmtpAddress a@example.test")
    with pytest.raises(CmdletError, match="wildcards"):
        await run_line(org_ctx, "New-AcceptedDomain 'd?' -DomainName d.test")
    await run_line(org_ctx, "New-Mailbox a -DisplayName 'Who? Me*'")
    assert next(iter(store.org.mailboxes.values())).display_name == "Who? Me*"


async def test_directory_mailbox_password_is_not_ours(org_ctx, store):
    await run_line(org_ctx, "New-Mailbox alice")
    [mb] = store.org.mailboxes.values()
    await store.org.update_mailbox(mb.id, source="ldap")
    with pytest.raises(CmdletError, match="managed by its directory"):
        await run_line(org_ctx, f"Set-Mailbox alice -Password '{PASSWORD}'")
    with pytest.raises(CmdletError, match="managed by its directory"):
        await run_line(org_ctx, "Set-Mailbox alice -NtlmEnabled $false")
    await run_line(org_ctx, "Set-Mailbox alice -DisplayName Alice")


async def test_whatif_still_checks_the_password(org_ctx):
    with pytest.raises(CmdletError, match="at least 8"):
        await run_line(org_ctx, "New-Mailbox a -Password short -WhatIf")
