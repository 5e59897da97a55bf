"""HTTP authentication policy: Get/Set-OwaVirtualDirectory, Get/Set-ActiveSyncVirtualDirectory.

Role: the cmdlets that store which HTTP authentication methods web mail and ActiveSync
accept, as Exchange keeps them on its IIS virtual directories (exchange-semantics.md
§6). The values live in the store's ``owa_virtual_directory`` and
``activesync_virtual_directory`` settings sections; ``auth.policy.load_auth_policy``
reads them and ``auth.policy.mechanism_allowed`` applies them on every node (the HTTP
layer, ``gateway.http.auth``, re-reads them within seconds: no restart).

Exchange semantics kept:

- ``Set-OwaVirtualDirectory -FormsAuthentication $true`` also sets
  ``BasicAuthentication $true`` and ``WindowsAuthentication $false`` (forms-based
  authentication posts the password like Basic and excludes integrated login); values
  given explicitly in the same call win over that implication;
- ``-LogonFormat FullDomain|UserName|PrincipalName`` and ``-DefaultDomain`` (a bare
  user name is qualified with the default domain);
- ``-ClientCertAuth Ignore|Accepted|Required`` on ActiveSync.

Invariant: only validated values are stored; a section that somehow holds a bad value
is read back as Exchange's default (``auth.policy.policy_from_sections``).
"""

from __future__ import annotations

import re

from auth.policy import (
    ACTIVESYNC_SECTION,
    CLIENT_CERT_AUTH_VALUES,
    LOGON_FORMATS,
    OWA_SECTION,
    AuthPolicySettings,
    load_auth_policy,
)
from gateway.admin.errors import CmdletError
from gateway.admin.registry import REGISTRY, SHOULD_PROCESS, Invocation, Output, ParamSpec, Record

#: A DNS name or a NetBIOS name (RFC 1035 labels; NetBIOS names are at most 15 chars).
_DOMAIN = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                     r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")

_OWA_NAME = "owa (Default Web Site)"
_EAS_NAME = "Microsoft-Server-ActiveSync (Default Web Site)"

_IDENTITY = ParamSpec("Identity", position=0, max_length=256,
                      help="Accepted for Exchange compatibility; the gateway has one "
                           "virtual directory of each kind per organisation.")


def _check_identity(inv: Invocation, cmdlet: str, expected: str) -> None:
    identity = inv.args.get("Identity")
    if identity is None:
        return
    text = str(identity).strip()
    short = expected.split(" ", 1)[0].lower()
    if text.lower() not in {expected.lower(), short, f"{inv.ctx.server_name}\\{expected}".lower(),
                            f"{inv.ctx.server_name}\\{short}".lower()}:
        raise CmdletError(f"{cmdlet}: the virtual directory '{text[:80]}' was not found; "
                          f"the gateway has one: '{expected}'.")


def owa_record(policy: AuthPolicySettings, server: str) -> Record:
    props: dict[str, object] = {
        "Name": _OWA_NAME,
        "Server": server,
        "FormsAuthentication": policy.owa_forms_authentication,
        "BasicAuthentication": policy.owa_basic_authentication,
        "WindowsAuthentication": policy.owa_windows_authentication,
        "DigestAuthentication": False,
        "LogonFormat": policy.owa_logon_format,
        "DefaultDomain": policy.owa_default_domain or "",
        "InternalAuthenticationMethods": _owa_methods(policy),
    }
    return Record("OwaVirtualDirectory", f"{server}\\{_OWA_NAME}", props,
                  ("Name", "Server", "FormsAuthentication", "BasicAuthentication",
                   "WindowsAuthentication"))


def _owa_methods(policy: AuthPolicySettings) -> list[str]:
    methods = []
    if policy.owa_forms_authentication:
        methods.append("Fba")
    if policy.owa_basic_authentication:
        methods.append("Basic")
    if policy.owa_windows_authentication:
        methods += ["Ntlm", "WindowsIntegrated"]
    return methods


def activesync_record(policy: AuthPolicySettings, server: str) -> Record:
    props: dict[str, object] = {
        "Name": _EAS_NAME,
        "Server": server,
        "BasicAuthEnabled": policy.activesync_basic_auth_enabled,
        "WindowsAuthEnabled": policy.activesync_windows_auth_enabled,
        "ClientCertAuth": policy.activesync_client_cert_auth,
    }
    return Record("ActiveSyncVirtualDirectory", f"{server}\\{_EAS_NAME}", props,
                  ("Name", "Server", "BasicAuthEnabled", "WindowsAuthEnabled",
                   "ClientCertAuth"))


def _owa_changes(inv: Invocation) -> dict[str, object]:
    changes: dict[str, object] = {}
    forms = inv.args.get("FormsAuthentication")
    if forms is True:  # exchange-semantics.md §6: FBA implies Basic on, Windows off
        changes.update(basic_authentication=True, windows_authentication=False)
    for param, key in (("FormsAuthentication", "forms_authentication"),
                       ("BasicAuthentication", "basic_authentication"),
                       ("WindowsAuthentication", "windows_authentication")):
        if param in inv.args:
            changes[key] = bool(inv.args[param])
    if "LogonFormat" in inv.args:
        changes["logon_format"] = str(inv.args["LogonFormat"])
    if "DefaultDomain" in inv.args:
        domain = inv.args["DefaultDomain"]
        text = "" if domain is None else str(domain).strip()
        if text and not _DOMAIN.match(text):
            raise CmdletError(f"Set-OwaVirtualDirectory: parameter 'DefaultDomain': "
                              f"'{text[:80]}' is not a domain name (example.com or EXAMPLE).")
        changes["default_domain"] = text
    return changes


def _effective(p: AuthPolicySettings) -> dict[str, object]:
    """The values in force, keyed as the sections store them."""
    return {"forms_authentication": p.owa_forms_authentication,
            "basic_authentication": p.owa_basic_authentication,
            "windows_authentication": p.owa_windows_authentication,
            "logon_format": p.owa_logon_format,
            "default_domain": p.owa_default_domain or "",
            "basic_auth_enabled": p.activesync_basic_auth_enabled,
            "windows_auth_enabled": p.activesync_windows_auth_enabled,
            "client_cert_auth": p.activesync_client_cert_auth}


async def _store(inv: Invocation, section: str, type_name: str, target: str,
                 changes: dict[str, object]) -> list[Output]:
    policy = await load_auth_policy(inv.ctx.org)
    current = _effective(policy)  # compare with what applies, stored or default
    changes = {k: v for k, v in changes.items() if current.get(k) != v}
    if not changes:
        inv.warn_unchanged(type_name)
        return []
    if not await inv.should_process(f"Set {type_name}", target):
        return []
    await inv.ctx.org.set_settings(section, changes)
    return []


@REGISTRY.cmdlet(
    "Get-OwaVirtualDirectory",
    synopsis="Shows how web mail (Outlook on the web) authenticates users.",
    params=(_IDENTITY,),
    examples=("Get-OwaVirtualDirectory",
              "Get-OwaVirtualDirectory | Format-List *Authentication,LogonFormat,DefaultDomain"),
)
async def get_owa_virtual_directory(inv: Invocation) -> list[Output]:
    _check_identity(inv, "Get-OwaVirtualDirectory", _OWA_NAME)
    return [owa_record(await load_auth_policy(inv.ctx.org), inv.ctx.server_name)]


@REGISTRY.cmdlet(
    "Set-OwaVirtualDirectory",
    synopsis="Chooses the authentication methods of web mail, on every node without a "
             "restart.",
    params=(
        _IDENTITY,
        ParamSpec("FormsAuthentication", "bool",
                  help="Forms-based sign-in (default $true). $true also sets "
                       "BasicAuthentication $true and WindowsAuthentication $false, as "
                       "Exchange does."),
        ParamSpec("BasicAuthentication", "bool",
                  help="HTTP Basic over HTTPS (default $true)."),
        ParamSpec("WindowsAuthentication", "bool",
                  help="Integrated Windows authentication: NTLM and Negotiate (carrying "
                       "NTLM) over HTTPS (default $false)."),
        ParamSpec("LogonFormat", "enum", choices=LOGON_FORMATS,
                  help="FullDomain (DOMAIN\\user, default), UserName (a bare user name, "
                       "qualified with DefaultDomain) or PrincipalName (user@domain)."),
        ParamSpec("DefaultDomain", nullable=True, max_length=253,
                  help="Domain added to a bare user name (e.g. example.com or EXAMPLE); "
                       "$null or '' clears it."),
        *SHOULD_PROCESS,
    ),
    examples=("Set-OwaVirtualDirectory -WindowsAuthentication $true",
              "Set-OwaVirtualDirectory -FormsAuthentication $true",
              "Set-OwaVirtualDirectory -LogonFormat UserName -DefaultDomain example.com"),
)
async def set_owa_virtual_directory(inv: Invocation) -> list[Output]:
    _check_identity(inv, "Set-OwaVirtualDirectory", _OWA_NAME)
    return await _store(inv, OWA_SECTION, "OwaVirtualDirectory",
                        f"{inv.ctx.server_name}\\{_OWA_NAME}", _owa_changes(inv))


@REGISTRY.cmdlet(
    "Get-ActiveSyncVirtualDirectory",
    synopsis="Shows how ActiveSync devices authenticate.",
    params=(_IDENTITY,),
    examples=("Get-ActiveSyncVirtualDirectory",
              "Get-ActiveSyncVirtualDirectory | Format-List"),
)
async def get_activesync_virtual_directory(inv: Invocation) -> list[Output]:
    _check_identity(inv, "Get-ActiveSyncVirtualDirectory", _EAS_NAME)
    return [activesync_record(await load_auth_policy(inv.ctx.org), inv.ctx.server_name)]


@REGISTRY.cmdlet(
    "Set-ActiveSyncVirtualDirectory",
    synopsis="Chooses the authentication methods of ActiveSync, on every node without "
             "a restart.",
    params=(
        _IDENTITY,
        ParamSpec("BasicAuthEnabled", "bool", help="HTTP Basic over HTTPS (default $true)."),
        ParamSpec("WindowsAuthEnabled", "bool",
                  help="NTLM and Negotiate (carrying NTLM) over HTTPS (default $false)."),
        ParamSpec("ClientCertAuth", "enum", choices=CLIENT_CERT_AUTH_VALUES,
                  help="Ignore (default), Accepted (a mapped certificate logs in; "
                       "otherwise Basic/NTLM) or Required (a certificate only). The "
                       "HTTPS listener must request certificates (tls.client_ca_file)."),
        *SHOULD_PROCESS,
    ),
    examples=("Set-ActiveSyncVirtualDirectory -ClientCertAuth Required",
              "Set-ActiveSyncVirtualDirectory -BasicAuthEnabled $false "
              "-WindowsAuthEnabled $true"),
)
async def set_activesync_virtual_directory(inv: Invocation) -> list[Output]:
    _check_identity(inv, "Set-ActiveSyncVirtualDirectory", _EAS_NAME)
    changes: dict[str, object] = {}
    for param, key in (("BasicAuthEnabled", "basic_auth_enabled"),
                       ("WindowsAuthEnabled", "windows_auth_enabled")):
        if param in inv.args:
            changes[key] = bool(inv.args[param])
    if "ClientCertAuth" in inv.args:
        changes["client_cert_auth"] = str(inv.args["ClientCertAuth"])
    return await _store(inv, ACTIVESYNC_SECTION, "ActiveSyncVirtualDirectory",
                        f"{inv.ctx.server_name}\\{_EAS_NAME}", changes)
