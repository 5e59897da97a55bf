"""Client access settings of a mailbox: Get/Set-CASMailbox.

Exchange's per-mailbox protocol switches: OWAEnabled (web mail), ActiveSyncEnabled,
ImapEnabled, PopEnabled, and SmtpClientAuthenticationDisabled, which is the inverse of
the store's ``smtp_submission_enabled`` (authenticated SMTP submission, Exchange
Online's switch of the same name; ``$true`` blocks submission). All default to enabled.
"""

from __future__ import annotations

from gateway.admin.cmdlets import lookup
from gateway.admin.cmdlets.mailboxes import MAILBOX_TYPES
from gateway.admin.registry import REGISTRY, SHOULD_PROCESS, Invocation, Output, ParamSpec, Record
from gateway.admin.storeapi import MailboxView

TYPE_NAME = "CASMailbox"

# parameter -> (store field, inverted)
_FLAGS: dict[str, tuple[str, bool]] = {
    "OWAEnabled": ("owa_enabled", False),
    "ActiveSyncEnabled": ("activesync_enabled", False),
    "ImapEnabled": ("imap_enabled", False),
    "PopEnabled": ("pop_enabled", False),
    "SmtpClientAuthenticationDisabled": ("smtp_submission_enabled", True),
}


def cas_record(m: MailboxView) -> Record:
    props: dict[str, object] = {
        "Name": m.name,
        "PrimarySmtpAddress": m.primary_smtp_address,
    }
    for param, (field, inverted) in _FLAGS.items():
        props[param] = getattr(m, field) is not inverted
    props["Identity"] = m.name
    return Record(TYPE_NAME, m.name, props, (
        "Name", "ActiveSyncEnabled", "OWAEnabled", "PopEnabled", "ImapEnabled",
        "SmtpClientAuthenticationDisabled",
    ))


@REGISTRY.cmdlet(
    "Get-CASMailbox",
    synopsis="Shows which client protocols each mailbox may use.",
    params=(ParamSpec("Identity", position=0, pipeline=True,
                      help="Name, SMTP address, UPN or id; wildcards * and ? are allowed."),
            lookup.RESULT_SIZE),
    pipeline_types=MAILBOX_TYPES,
    examples=("Get-CASMailbox", "Get-Mailbox alice | Get-CASMailbox"),
)
async def get_cas_mailbox(inv: Invocation) -> list[Output]:
    identity = inv.get("Identity")
    found = await lookup.mailboxes(inv.ctx.org, None if identity is None else str(identity))
    return [cas_record(m) for m in lookup.limit_results(inv, found)]


@REGISTRY.cmdlet(
    "Set-CASMailbox",
    synopsis="Enables or disables client protocols for a mailbox.",
    params=(
        ParamSpec("Identity", mandatory=True, position=0, pipeline=True,
                  help="Name, SMTP address, UPN or id of the mailbox."),
        ParamSpec("OWAEnabled", "bool", help="Allows web mail (Outlook on the web)."),
        ParamSpec("ActiveSyncEnabled", "bool", help="Allows Exchange ActiveSync devices."),
        ParamSpec("ImapEnabled", "bool", help="Allows IMAP4 logons."),
        ParamSpec("PopEnabled", "bool", help="Allows POP3 logons."),
        ParamSpec("SmtpClientAuthenticationDisabled", "bool",
                  help="$true blocks authenticated SMTP submission for this mailbox."),
        *SHOULD_PROCESS,
    ),
    pipeline_types=MAILBOX_TYPES,
    examples=("Set-CASMailbox alice -ImapEnabled $false -PopEnabled $false",
              "Get-Mailbox | Set-CASMailbox -ActiveSyncEnabled $true"),
)
async def set_cas_mailbox(inv: Invocation) -> list[Output]:
    mb = await lookup.mailbox(inv.ctx.org, str(inv.args["Identity"]))
    changes: dict[str, object] = {}
    for param, (field, inverted) in _FLAGS.items():
        if param in inv.args:
            value = bool(inv.args[param]) is not inverted
            if getattr(mb, field) != value:
                changes[field] = value
    if not changes:
        inv.warn_unchanged(mb.name)
        return []
    if not await inv.should_process("Set CAS mailbox", mb.name):
        return []
    await inv.ctx.org.update_mailbox(mb.id, **changes)
    return []
