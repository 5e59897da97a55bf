"""Get/Set-OwaVirtualDirectory and Get/Set-ActiveSyncVirtualDirectory: stored sections,
Exchange's FormsAuthentication implication, and what auth.policy reads back."""

from __future__ import annotations

import json

import pytest

from auth.policy import (
    ACTIVESYNC_SECTION,
    OWA_SECTION,
    ConnectionFacts,
    load_auth_policy,
    mechanism_allowed,
)
from gateway.admin import AdminContext, CmdletError, run_line
from tests.unit.admin.fake_org import FakeStore

TLS = ConnectionFacts(tls=True)


async def owa(ctx: AdminContext) -> dict[str, object]:
    [row] = json.loads(await run_line(ctx, "Get-OwaVirtualDirectory", output_format="json"))
    return row


async def eas(ctx: AdminContext) -> dict[str, object]:
    [row] = json.loads(await run_line(ctx, "Get-ActiveSyncVirtualDirectory",
                                      output_format="json"))
    return row


async def test_defaults_are_exchanges(ctx: AdminContext) -> None:
    row = await owa(ctx)
    assert (row["FormsAuthentication"], row["BasicAuthentication"],
            row["WindowsAuthentication"], row["LogonFormat"], row["DefaultDomain"]) == \
        (True, True, False, "FullDomain", "")
    assert row["InternalAuthenticationMethods"] == ["Fba", "Basic"]
    row = await eas(ctx)
    assert (row["BasicAuthEnabled"], row["WindowsAuthEnabled"], row["ClientCertAuth"]) == \
        (True, False, "Ignore")


async def test_set_owa_is_stored_and_read_by_the_policy(ctx: AdminContext,
        store: FakeStore) -> None:
    await run_line(ctx, "Set-OwaVirtualDirectory -WindowsAuthentication $true "
                        "-BasicAuthentication $false -LogonFormat UserName "
                        "-DefaultDomain example.test")
    assert store.org.settings[OWA_SECTION] == {
        "windows_authentication": True, "basic_authentication": False,
        "logon_format": "UserName", "default_domain": "example.test"}
    policy = await load_auth_policy(store.org)
    assert mechanism_allowed("owa", "NTLM", connection=TLS, settings=policy)
    assert mechanism_allowed("owa", "Negotiate", connection=TLS, settings=policy)
    assert not mechanism_allowed("owa", "Basic", connection=TLS, settings=policy)
    assert policy.owa_logon_format == "UserName"
    assert policy.owa_default_domain == "example.test"
    row = await owa(ctx)
    assert row["InternalAuthenticationMethods"] == ["Fba", "Ntlm", "WindowsIntegrated"]


async def test_forms_authentication_implies_basic_on_windows_off(ctx: AdminContext,
        store: FakeStore) -> None:
    await run_line(ctx, "Set-OwaVirtualDirectory -FormsAuthentication $false "
                        "-BasicAuthentication $false -WindowsAuthentication $true")
    row = await owa(ctx)
    assert (row["FormsAuthentication"], row["BasicAuthentication"],
            row["WindowsAuthentication"]) == (False, False, True)
    await run_line(ctx, "Set-OwaVirtualDirectory -FormsAuthentication $true")
    row = await owa(ctx)
    assert (row["FormsAuthentication"], row["BasicAuthentication"],
            row["WindowsAuthentication"]) == (True, True, False)
    # explicit values in the same call win over the implication
    await run_line(ctx, "Set-OwaVirtualDirectory -FormsAuthentication $true "
                        "-WindowsAuthentication $true")
    assert (await owa(ctx))["WindowsAuthentication"] is True


async def test_set_activesync(ctx: AdminContext,
        store: FakeStore) -> None:
    await run_line(ctx, "Set-ActiveSyncVirtualDirectory -ClientCertAuth required "
                        "-WindowsAuthEnabled $true")
    assert store.org.settings[ACTIVESYNC_SECTION] == {"client_cert_auth": "Required",
                                                      "windows_auth_enabled": True}
    policy = await load_auth_policy(store.org)
    assert policy.activesync_client_cert_auth == "Required"
    # Required: certificates only
    assert not mechanism_allowed("activesync", "Basic", connection=TLS, settings=policy)
    assert mechanism_allowed("activesync", "Certificate",
                             connection=ConnectionFacts(tls=True, client_certificate=True),
                             settings=policy)
    row = await eas(ctx)
    assert (row["BasicAuthEnabled"], row["WindowsAuthEnabled"], row["ClientCertAuth"]) == \
        (True, True, "Required")


async def test_unchanged_warns_and_whatif_stores_nothing(ctx: AdminContext,
        store: FakeStore) -> None:
    out = await run_line(ctx, "Set-ActiveSyncVirtualDirectory -BasicAuthEnabled $true "
                              "-ClientCertAuth Ignore")
    assert out.startswith("WARNING:")
    await run_line(ctx, "Set-OwaVirtualDirectory -WindowsAuthentication $true -WhatIf")
    assert OWA_SECTION not in store.org.settings


async def test_bad_values_are_refused(ctx: AdminContext,
        store: FakeStore) -> None:
    with pytest.raises(CmdletError, match="LogonFormat"):
        await run_line(ctx, "Set-OwaVirtualDirectory -LogonFormat Email")
    with pytest.raises(CmdletError, match="ClientCertAuth"):
        await run_line(ctx, "Set-ActiveSyncVirtualDirectory -ClientCertAuth Sometimes")
    with pytest.raises(CmdletError, match="not a domain name"):
        await run_line(ctx, "Set-OwaVirtualDirectory -DefaultDomain 'bad domain;'")
    with pytest.raises(CmdletError, match="Boolean"):
        await run_line(ctx, "Set-ActiveSyncVirtualDirectory -BasicAuthEnabled maybe")
    with pytest.raises(CmdletError, match="was not found"):
        await run_line(ctx, "Get-OwaVirtualDirectory 'ecp (Default Web Site)'")
    assert await run_line(ctx, "Get-OwaVirtualDirectory owa") != ""
    assert store.org.settings == {}


async def test_default_domain_cleared_by_null(ctx: AdminContext,
        store: FakeStore) -> None:
    await run_line(ctx, "Set-OwaVirtualDirectory -DefaultDomain EXAMPLE")
    assert (await load_auth_policy(store.org)).owa_default_domain == "EXAMPLE"
    await run_line(ctx, "Set-OwaVirtualDirectory -DefaultDomain $null")
    assert (await load_auth_policy(store.org)).owa_default_domain is None


async def test_a_bad_stored_value_reads_as_the_default(store: FakeStore) -> None:
    store.org.settings[ACTIVESYNC_SECTION] = {"client_cert_auth": "Bogus",
                                              "basic_auth_enabled": "yes"}
    store.org.settings[OWA_SECTION] = {"windows_authentication": 1}
    policy = await load_auth_policy(store.org)
    assert policy.activesync_client_cert_auth == "Ignore"
    assert policy.activesync_basic_auth_enabled is True
    assert policy.owa_windows_authentication is False
