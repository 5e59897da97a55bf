"""Accepted domain cmdlets: New/Get/Set/Remove-AcceptedDomain.

Semantics (Exchange, "Accepted domains in Exchange Server"; reference §5):

* DomainType Authoritative (default): every recipient is in the organisation;
  InternalRelay: some are elsewhere (relayed); ExternalRelay: none is (always relayed);
* ``-DomainName`` is ``example.test`` or ``*.example.test`` (subdomains; MatchSubDomains)
  and cannot be changed after creation (Set-AcceptedDomain has no -DomainName);
* the first domain becomes the default; ``-MakeDefault`` moves the default; the default
  domain cannot be removed while others exist (the store enforces it);
* AddressBookEnabled (recipient lookup) is shown as Exchange derives it: true for
  Authoritative domains only;
* removing a domain that mailbox addresses still use is allowed (as in Exchange) but
  warns, naming the mailboxes.
"""

from __future__ import annotations

from gateway.admin import validation
from gateway.admin.cmdlets import lookup
from gateway.admin.errors import CmdletError
from gateway.admin.registry import REGISTRY, SHOULD_PROCESS, Invocation, Output, ParamSpec, Record
from gateway.admin.storeapi import AcceptedDomainView

DOMAIN_TYPES = ("Authoritative", "InternalRelay", "ExternalRelay")
TYPE_NAME = "AcceptedDomain"


def domain_record(d: AcceptedDomainView) -> Record:
    return Record(TYPE_NAME, d.name, {
        "Name": d.name,
        "DomainName": d.domain_name,
        "DomainType": d.domain_type,
        "Default": d.is_default,
        "MatchSubDomains": d.domain_name.startswith("*."),
        "AddressBookEnabled": d.domain_type == "Authoritative",
        "Identity": d.name,
        "Id": d.id,
    }, ("Name", "DomainName", "DomainType", "Default"))


_IDENTITY = ParamSpec(
    "Identity", mandatory=True, position=0, pipeline=True,
    help="The accepted domain: its Name or DomainName.",
)
_DOMAIN_TYPE = ParamSpec(
    "DomainType", "enum", choices=DOMAIN_TYPES,
    help="Authoritative: all recipients are in this organisation (the default). "
         "InternalRelay: some recipients are elsewhere; mail for unknown ones is relayed. "
         "ExternalRelay: no recipient is here; all mail is relayed.",
)
_MAKE_DEFAULT = ParamSpec(
    "MakeDefault", "switch",
    help="Makes this the default accepted domain (used for postmaster and new addresses).",
)


@REGISTRY.cmdlet(
    "New-AcceptedDomain",
    synopsis="Creates an accepted domain: a domain the organisation receives mail for.",
    description="The domain name is example.test or *.example.test (every subdomain of "
                "example.test, not example.test itself), at most 256 characters, with "
                "labels of letters, digits and hyphens; Unicode names are stored as "
                "punycode. The first accepted domain becomes the default. Mailbox "
                "addresses must be in an Authoritative or InternalRelay domain.",
    params=(
        ParamSpec("Name", mandatory=True, position=0,
                  help="A unique name for the accepted domain (up to 64 characters)."),
        ParamSpec("DomainName", mandatory=True,
                  help="The SMTP domain: example.test, or *.example.test for all its "
                       "subdomains."),
        _DOMAIN_TYPE, _MAKE_DEFAULT, *SHOULD_PROCESS,
    ),
    examples=("New-AcceptedDomain -Name example -DomainName example.test",
              "New-AcceptedDomain -Name partners -DomainName *.partner.test "
              "-DomainType InternalRelay"),
)
async def new_accepted_domain(inv: Invocation) -> list[Output]:
    name = validation.object_name(str(inv.args["Name"]))
    domain_name = validation.accepted_domain_name(str(inv.args["DomainName"]))
    domain_type = str(inv.get("DomainType", "Authoritative"))
    if not await inv.should_process("New accepted domain", domain_name):
        return []
    created = await inv.ctx.org.create_accepted_domain(name, domain_name, domain_type)
    if inv.get("MakeDefault") is True and not created.is_default:
        created = await inv.ctx.org.update_accepted_domain(created.id, make_default=True)
    return [domain_record(created)]


@REGISTRY.cmdlet(
    "Get-AcceptedDomain",
    synopsis="Lists the accepted domains, or shows one.",
    params=(ParamSpec("Identity", position=0, pipeline=True,
                      help="Name or DomainName; wildcards * and ? are allowed."),),
    pipeline_types=(TYPE_NAME,),
    examples=("Get-AcceptedDomain", "Get-AcceptedDomain example | Format-List"),
)
async def get_accepted_domain(inv: Invocation) -> list[Output]:
    identity = inv.get("Identity")
    found = await lookup.accepted_domains(inv.ctx.org, None if identity is None else str(identity))
    return [domain_record(d) for d in found]


@REGISTRY.cmdlet(
    "Set-AcceptedDomain",
    synopsis="Changes the name or type of an accepted domain, or makes it the default.",
    params=(
        _IDENTITY,
        ParamSpec("Name", help="The new name of the accepted domain."),
        _DOMAIN_TYPE,
        ParamSpec("MakeDefault", "switch",
                  help="Makes this the default accepted domain. -MakeDefault:$false is "
                       "refused: make another domain the default instead."),
        *SHOULD_PROCESS,
    ),
    pipeline_types=(TYPE_NAME,),
    examples=("Set-AcceptedDomain example -DomainType InternalRelay",
              "Set-AcceptedDomain example2 -MakeDefault"),
)
async def set_accepted_domain(inv: Invocation) -> list[Output]:
    current = await lookup.accepted_domain(inv.ctx.org, str(inv.args["Identity"]))
    changes: dict[str, object] = {}
    if "Name" in inv.args:
        name = validation.object_name(str(inv.args["Name"]))
        if name != current.name:
            changes["name"] = name
    if "DomainType" in inv.args and inv.args["DomainType"] != current.domain_type:
        changes["domain_type"] = inv.args["DomainType"]
    if "MakeDefault" in inv.args:
        if inv.args["MakeDefault"] is False:
            if current.is_default:
                raise CmdletError(
                    f"Set-AcceptedDomain: '{current.name}' stays the default until another "
                    "domain is made the default (Set-AcceptedDomain <other> -MakeDefault)."
                )
        elif not current.is_default:
            changes["make_default"] = True
    if not changes:
        inv.warn_unchanged(current.name)
        return []
    if not await inv.should_process("Set accepted domain", current.name):
        return []
    await inv.ctx.org.update_accepted_domain(current.id, **changes)
    return []


@REGISTRY.cmdlet(
    "Remove-AcceptedDomain",
    synopsis="Removes an accepted domain.",
    description="The default accepted domain cannot be removed while other domains exist. "
                "In the interactive shell the removal is confirmed first unless "
                "-Confirm:$false is given; gateway exec does not ask.",
    params=(_IDENTITY, *SHOULD_PROCESS),
    pipeline_types=(TYPE_NAME,),
    confirm_impact="High",
    examples=("Remove-AcceptedDomain example2 -Confirm:$false",),
)
async def remove_accepted_domain(inv: Invocation) -> list[Output]:
    current = await lookup.accepted_domain(inv.ctx.org, str(inv.args["Identity"]))
    if not await inv.should_process("Remove accepted domain", current.name):
        return []
    await inv.ctx.org.delete_accepted_domain(current.id)
    await _warn_orphaned_addresses(inv, current)
    return []


async def _warn_orphaned_addresses(inv: Invocation, removed: AcceptedDomainView) -> None:
    """Warn when mailboxes keep addresses no accepted domain covers any more."""
    remaining = [d for d in await inv.ctx.org.list_accepted_domains() if d.id != removed.id]
    orphaned: list[str] = []
    for mb in await inv.ctx.org.list_mailboxes():
        addresses = (mb.primary_smtp_address, *mb.email_addresses)
        if any(validation.covering_domain(a, [removed]) is not None
               and validation.covering_domain(a, remaining) is None for a in addresses):
            orphaned.append(mb.name)
    if orphaned:
        shown = ", ".join(orphaned[:MAX_LISTED]) + (", ..." if len(orphaned) > MAX_LISTED else "")
        inv.warn(f"{len(orphaned)} mailbox(es) still have addresses in {removed.domain_name}, "
                 f"which is no longer accepted: {shown}.")


MAX_LISTED = 10
"""Most mailbox names a warning lists."""
