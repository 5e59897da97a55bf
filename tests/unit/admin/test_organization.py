"""Get/Set-OrganizationConfig over the "organization" settings section."""

from __future__ import annotations

import json

import pytest

from gateway.admin import CmdletError, run_line


async def test_get_shows_settings_and_default_domain(ctx, store):
    [row] = json.loads(await run_line(ctx, "Get-OrganizationConfig", output_format="json"))
    assert row == {"Name": None, "NetbiosDomain": None, "DefaultDomain": None,
                   "AcceptedDomainCount": 0}
    await run_line(ctx, "New-AcceptedDomain example -DomainName example.test")
    store.org.settings["organization"] = {"name": "Example", "netbios_domain": "EXAMPLE"}
    [row] = json.loads(await run_line(ctx, "Get-OrganizationConfig", output_format="json"))
    assert row == {"Name": "Example", "NetbiosDomain": "EXAMPLE",
                   "DefaultDomain": "example.test", "AcceptedDomainCount": 1}


async def test_set_netbios_domain_and_name(ctx, store):
    assert await run_line(ctx, "Set-OrganizationConfig -NetbiosDomain corp-1 "
                               "-Name 'Corp One'") == ""
    assert store.org.settings["organization"] == {"name": "Corp One",
                                                   "netbios_domain": "CORP-1"}
    out = await run_line(ctx, "Set-OrganizationConfig -NetbiosDomain CORP-1")
    assert out.startswith("WARNING: The command completed successfully")


@pytest.mark.parametrize("bad", ["", "toolongnetbiosname", "a.b", "-x", "123", "a b", "A\\B"])
async def test_netbios_domain_validation(ctx, store, bad):
    with pytest.raises(CmdletError, match="NetbiosDomain"):
        await run_line(ctx, f"Set-OrganizationConfig -NetbiosDomain '{bad}'")
    assert "organization" not in store.org.settings
