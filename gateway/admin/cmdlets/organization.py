"""Organisation-wide settings: Get/Set-OrganizationConfig.

They live in the store's ``"organization"`` settings section (docs/dev/interfaces.md):
``name`` (the organisation's display name, Exchange's OrganizationConfig Name) and
``netbios_domain``, the pre-Windows 2000 domain name that ``DOMAIN\\user`` logins use
(the local directory falls back to the first label of the default accepted domain when
it is unset). Like every organisation change they reach all nodes without a restart.
"""

from __future__ import annotations

import re

from gateway.admin import validation
from gateway.admin.errors import CmdletError
from gateway.admin.registry import REGISTRY, SHOULD_PROCESS, Invocation, Output, ParamSpec, Record

SECTION = "organization"
TYPE_NAME = "OrganizationConfig"
MAX_NETBIOS_LENGTH = 15  # NetBIOS names: 15 characters plus a type byte (RFC 1001 §14)
_NETBIOS = re.compile(r"^[A-Z0-9](?:[A-Z0-9-]*[A-Z0-9])?$")


def netbios_domain(text: str) -> str:
    """Validate a NetBIOS domain name: letters, digits, inner hyphens; upper case."""
    value = text.strip().upper()
    if not value or len(value) > MAX_NETBIOS_LENGTH or not _NETBIOS.match(value) \
            or value.isdigit():
        raise CmdletError(
            f"The NetbiosDomain '{validation._clip(text)}' is not valid: 1-{MAX_NETBIOS_LENGTH} "
            "letters, digits and inner hyphens, not only digits."
        )
    return value


@REGISTRY.cmdlet(
    "Get-OrganizationConfig",
    synopsis="Shows the organisation's name, NetBIOS domain and default accepted domain.",
    examples=("Get-OrganizationConfig",),
)
async def get_organization_config(inv: Invocation) -> list[Output]:
    settings = await inv.ctx.org.get_settings(SECTION)
    domains = await inv.ctx.org.list_accepted_domains()
    default = next((d.domain_name for d in domains if d.is_default), None)
    name = settings.get("name")
    netbios = settings.get("netbios_domain")
    return [Record(TYPE_NAME, "OrganizationConfig", {
        "Name": name if isinstance(name, str) else None,
        "NetbiosDomain": netbios if isinstance(netbios, str) else None,
        "DefaultDomain": default,
        "AcceptedDomainCount": len(domains),
    }, ("Name", "NetbiosDomain", "DefaultDomain"))]


@REGISTRY.cmdlet(
    "Set-OrganizationConfig",
    synopsis="Changes the organisation's name or the NetBIOS domain of DOMAIN\\user logons.",
    params=(
        ParamSpec("Name", help="The organisation's name."),
        ParamSpec("NetbiosDomain",
                  help="The domain part of DOMAIN\\user logons (up to 15 letters, digits "
                       "and hyphens; stored in upper case)."),
        *SHOULD_PROCESS,
    ),
    examples=("Set-OrganizationConfig -NetbiosDomain EXAMPLE",),
)
async def set_organization_config(inv: Invocation) -> list[Output]:
    current = await inv.ctx.org.get_settings(SECTION)
    changes: dict[str, object] = {}
    if "Name" in inv.args:
        changes["name"] = validation.object_name(str(inv.args["Name"]),
                                                 limit=validation.MAX_DISPLAY_NAME_LENGTH,
                                                 wildcards=True)
    if "NetbiosDomain" in inv.args:
        changes["netbios_domain"] = netbios_domain(str(inv.args["NetbiosDomain"]))
    changes = {k: v for k, v in changes.items() if current.get(k) != v}
    if not changes:
        inv.warn_unchanged("OrganizationConfig")
        return []
    if not await inv.should_process("Set organization config", "OrganizationConfig"):
        return []
    await inv.ctx.org.set_settings(SECTION, changes)
    return []
