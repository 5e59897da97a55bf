"""Mailbox cmdlets: New/Get/Set/Remove-Mailbox.

Semantics follow Exchange's cmdlets of the same names:

* every SMTP address of a mailbox must be in an accepted domain of type Authoritative
  or InternalRelay; ``-PrimarySmtpAddress`` defaults to ``<Name>@<default domain>``
  (the default email address policy) and the UPN to the primary address;
* ``-EmailAddresses`` is Exchange's proxy address list: ``SMTP:x`` (upper case) makes
  ``x`` the primary address, ``smtp:x`` or a bare ``x`` is a further address. A list
  replaces the further addresses; ``@{Add=...; Remove=...}`` edits them; ``$null``
  clears them. Changing the primary address keeps the old one as a further address
  (unless a full list was given), as Exchange does;
* ``-Password`` is hashed (argon2id) off the event loop and never shown; ``-NtlmEnabled
  $true`` needs ``-Password`` in the same command because the NT hash derives from the
  password, which is not stored; ``-Password $null`` removes password logins (and so
  NTLM); mailboxes from a directory (source "ldap") keep their password there;
* Remove-Mailbox deletes the mailbox with its folders and messages.
"""

from __future__ import annotations

from gateway.admin import validation
from gateway.admin.cmdlets import credentials, lookup
from gateway.admin.errors import CmdletError
from gateway.admin.registry import (
    REGISTRY,
    SHOULD_PROCESS,
    Invocation,
    ListEdit,
    Output,
    ParamSpec,
    Record,
)
from gateway.admin.storeapi import AcceptedDomainView, MailboxView

TYPE_NAME = "Mailbox"
MAILBOX_TYPES = ("Mailbox", "CASMailbox")


def proxy_addresses(m: MailboxView) -> list[str]:
    """Exchange's EmailAddresses view: ``SMTP:`` marks the primary address."""
    return [f"SMTP:{m.primary_smtp_address}", *(f"smtp:{a}" for a in m.email_addresses)]


def mailbox_record(m: MailboxView) -> Record:
    # Never a password or hash: only whether NTLM is enabled.
    return Record(TYPE_NAME, m.name, {
        "Name": m.name,
        "Alias": m.name,
        "DisplayName": m.display_name,
        "PrimarySmtpAddress": m.primary_smtp_address,
        "EmailAddresses": proxy_addresses(m),
        "UserPrincipalName": m.user_principal_name,
        "SamAccountName": m.sam_account_name,
        "RecipientTypeDetails": "UserMailbox",
        "NtlmEnabled": m.ntlm_enabled,
        "Source": m.source,
        "WhenCreatedUTC": m.created_at,
        "Identity": m.name,
        "Id": m.id,
    }, ("Name", "DisplayName", "PrimarySmtpAddress"))


def _key(address: str) -> str:
    return address.casefold()


def _proxy(text: str) -> tuple[bool, str]:
    """``(is_primary, address)`` of one -EmailAddresses entry."""
    raw = text.strip()
    prefix, colon, rest = raw.partition(":")
    if colon and "@" not in prefix:
        if prefix.lower() != "smtp":
            raise CmdletError(
                f"The proxy address type '{validation._clip(prefix)}:' is not supported; "
                "only SMTP addresses are."
            )
        return prefix == "SMTP", validation.smtp_address(rest)
    return False, validation.smtp_address(raw)


class _Addresses:
    """The primary and further addresses of a mailbox being created or changed."""

    def __init__(self, primary: str | None, further: list[str]) -> None:
        self.primary = primary
        self.further = further

    def apply_list(self, entries: list[str], *, replace: bool) -> None:
        primaries: list[str] = []
        further: list[str] = [] if replace else list(self.further)
        for entry in entries:
            is_primary, address = _proxy(entry)
            (primaries if is_primary else further).append(address)
        if len(primaries) > 1:
            raise CmdletError("Only one address can be the primary one (SMTP: in upper case).")
        self.further = further
        if primaries:
            self.set_primary(primaries[0], keep_old=not replace)

    def remove(self, entries: tuple[str, ...]) -> None:
        for entry in entries:
            _, address = _proxy(entry)
            if self.primary is not None and _key(address) == _key(self.primary):
                raise CmdletError(
                    f"The primary address '{address}' cannot be removed; make another address "
                    "the primary one first."
                )
            self.further = [a for a in self.further if _key(a) != _key(address)]

    def set_primary(self, address: str, *, keep_old: bool) -> None:
        old = self.primary
        if old is not None and _key(old) != _key(address) and keep_old:
            self.further.append(old)
        self.primary = address

    def normalised(self) -> tuple[str, list[str]]:
        assert self.primary is not None
        seen = {_key(self.primary)}
        out: list[str] = []
        for a in self.further:
            if _key(a) not in seen:
                seen.add(_key(a))
                out.append(a)
        return self.primary, out


def _check_domains(addresses: list[str], domains: list[AcceptedDomainView]) -> None:
    for address in addresses:
        validation.require_recipient_domain(address, domains)


def _default_primary(name: str, domains: list[AcceptedDomainView]) -> str:
    default = next((d for d in domains if d.is_default), None)
    if default is None or default.domain_name.startswith("*.") or not validation.is_local_part(
            name):
        raise CmdletError(
            "New-Mailbox: give -PrimarySmtpAddress (no address can be derived from the Name "
            "and the default accepted domain)."
        )
    return f"{name}@{default.domain_name}"


_HASHED_HELP = (
    "The password (at least 8 characters). It is stored as an argon2id hash and never "
    "shown.")
_NTLM_HELP = ("Allows NTLM logins. Enabling it needs -Password in the same command: the NT "
              "hash NTLM uses derives from the password, which is not stored.")
_EMAIL_HELP = ("Further SMTP addresses. SMTP:x (upper case) makes x the primary address. "
               "A list replaces the further addresses; @{Add=\"a\"; Remove=\"b\"} edits them.")


@REGISTRY.cmdlet(
    "New-Mailbox",
    synopsis="Creates a mailbox with its addresses, logon names and password.",
    description="Every SMTP address must be in an Authoritative or InternalRelay accepted "
                "domain and unique in the organisation. Without -PrimarySmtpAddress the "
                "address is <Name>@<default accepted domain>; the UPN defaults to the "
                "primary address and the SamAccountName to the Name. The mailbox gets "
                "the folders Inbox, Drafts, Sent Items, Deleted Items, Junk Email and "
                "Outbox, and every client protocol enabled (see Set-CASMailbox).",
    params=(
        ParamSpec("Name", mandatory=True, position=0,
                  help="A unique name (alias) for the mailbox, up to 64 characters."),
        ParamSpec("DisplayName", help="The name shown in address lists; defaults to Name."),
        ParamSpec("PrimarySmtpAddress",
                  help="The primary SMTP address; its domain must be an Authoritative or "
                       "InternalRelay accepted domain. Defaults to <Name>@<default domain>."),
        ParamSpec("UserPrincipalName",
                  help="The logon name user@suffix; defaults to the primary SMTP address."),
        ParamSpec("SamAccountName",
                  help="The pre-Windows 2000 logon name used as DOMAIN\\user (up to 20 "
                       "characters); derived from Name by default."),
        ParamSpec("Password", secret=True, max_length=validation.MAX_PASSWORD_LENGTH,
                  help=_HASHED_HELP + " Without it the mailbox has no password logon."),
        ParamSpec("EmailAddresses", "list", help=_EMAIL_HELP),
        ParamSpec("NtlmEnabled", "bool", help=_NTLM_HELP),
        *SHOULD_PROCESS,
    ),
    examples=('New-Mailbox -Name alice -PrimarySmtpAddress alice@example.test '
              '-Password "S3cret!pass"',
              "New-Mailbox bob -EmailAddresses SMTP:bob@example.test,b@example.test "
              "-Password 'Pa55word!' -NtlmEnabled $true"),
)
async def new_mailbox(inv: Invocation) -> list[Output]:
    org = inv.ctx.org
    name = validation.object_name(str(inv.args["Name"]))
    display = validation.object_name(str(inv.get("DisplayName", name)), what="DisplayName",
                                     limit=validation.MAX_DISPLAY_NAME_LENGTH, wildcards=True)
    domains = list(await org.list_accepted_domains())
    addresses = _Addresses(None, [])
    if "EmailAddresses" in inv.args:
        addresses.apply_list([str(v) for v in _as_list(inv.args["EmailAddresses"])],
                             replace=True)
    if "PrimarySmtpAddress" in inv.args:
        primary = validation.smtp_address(str(inv.args["PrimarySmtpAddress"]),
                                          what="PrimarySmtpAddress")
        if addresses.primary is not None and _key(addresses.primary) != _key(primary):
            raise CmdletError(
                "New-Mailbox: -PrimarySmtpAddress and the SMTP: entry of -EmailAddresses "
                "name different primary addresses."
            )
        addresses.primary = primary
    if addresses.primary is None:
        addresses.primary = _default_primary(name, domains)
    primary, further = addresses.normalised()
    _check_domains([primary, *further], domains)
    upn = validation.smtp_address(str(inv.get("UserPrincipalName", primary)),
                                  what="UserPrincipalName")
    sam = (validation.sam_account_name(str(inv.args["SamAccountName"]))
           if "SamAccountName" in inv.args else validation.derive_sam_account_name(name))
    ntlm = inv.get("NtlmEnabled") is True
    password = inv.get("Password")
    if ntlm and password is None:
        raise CmdletError("New-Mailbox: -NtlmEnabled $true needs -Password: " + _NTLM_WHY)
    if password is not None:
        validation.password(str(password))
    if not await inv.should_process("New mailbox", name):
        return []
    password_hash: str | None = None
    nt: bytes | None = None
    if password is not None:
        password_hash, nt = await credentials.derive(str(password), ntlm=ntlm)
    created = await org.create_mailbox(
        name=name, display_name=display, primary_smtp_address=primary,
        email_addresses=tuple(further), user_principal_name=upn, sam_account_name=sam,
        password_hash=password_hash, nt_hash=nt, ntlm_enabled=ntlm,
    )
    return [mailbox_record(created)]


_NTLM_WHY = "the NT hash derives from the password, which is not stored."


def _as_list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


@REGISTRY.cmdlet(
    "Get-Mailbox",
    synopsis="Lists the mailboxes, or shows one.",
    params=(ParamSpec("Identity", position=0, pipeline=True,
                      help="Name, SMTP address, UPN or id; wildcards * and ? match the name "
                           "and addresses."),
            lookup.RESULT_SIZE),
    pipeline_types=MAILBOX_TYPES,
    examples=("Get-Mailbox", "Get-Mailbox alice", "Get-Mailbox a* | Format-List"),
)
async def get_mailbox(inv: Invocation) -> list[Output]:
    identity = inv.get("Identity")
    found = await lookup.mailboxes(inv.ctx.org, None if identity is None else str(identity))
    return [mailbox_record(m) for m in lookup.limit_results(inv, found)]


@REGISTRY.cmdlet(
    "Set-Mailbox",
    synopsis="Changes a mailbox's names, addresses, password or NTLM logon.",
    description="-EmailAddresses with a list replaces the further addresses (SMTP:x makes "
                "x the primary one); @{Add=...; Remove=...} edits them; $null removes "
                "them. A new -PrimarySmtpAddress keeps the old primary address as a "
                "further one. A new password takes effect at once on every node (cached "
                "logons are invalidated). Passwords of directory (LDAP) mailboxes are "
                "changed in the directory.",
    params=(
        ParamSpec("Identity", mandatory=True, position=0, pipeline=True,
                  help="Name, SMTP address, UPN or id of the mailbox."),
        ParamSpec("Name", help="The new name (alias)."),
        ParamSpec("DisplayName", help="The new display name."),
        ParamSpec("PrimarySmtpAddress",
                  help="The new primary SMTP address; the old one stays as a further "
                       "address."),
        ParamSpec("UserPrincipalName", help="The new logon name user@suffix."),
        ParamSpec("SamAccountName", help="The new pre-Windows 2000 logon name."),
        ParamSpec("Password", secret=True, nullable=True,
                  max_length=validation.MAX_PASSWORD_LENGTH,
                  help=_HASHED_HELP + " $null removes password logons (and NTLM)."),
        ParamSpec("EmailAddresses", "list", nullable=True, edit=True,
                  help=_EMAIL_HELP + " $null removes every further address."),
        ParamSpec("NtlmEnabled", "bool", help=_NTLM_HELP),
        *SHOULD_PROCESS,
    ),
    pipeline_types=MAILBOX_TYPES,
    examples=("Set-Mailbox alice -EmailAddresses @{Add=\"al@example.test\"}",
              "Set-Mailbox alice -Password 'N3w!passw0rd' -NtlmEnabled $true"),
)
async def set_mailbox(inv: Invocation) -> list[Output]:
    org = inv.ctx.org
    mb = await lookup.mailbox(org, str(inv.args["Identity"]))
    changes: dict[str, object] = {}
    if "Name" in inv.args:
        changes["name"] = validation.object_name(str(inv.args["Name"]))
    if "DisplayName" in inv.args:
        changes["display_name"] = validation.object_name(
            str(inv.args["DisplayName"]), what="DisplayName",
            limit=validation.MAX_DISPLAY_NAME_LENGTH, wildcards=True)
    if "UserPrincipalName" in inv.args:
        changes["user_principal_name"] = validation.smtp_address(
            str(inv.args["UserPrincipalName"]), what="UserPrincipalName")
    if "SamAccountName" in inv.args:
        changes["sam_account_name"] = validation.sam_account_name(
            str(inv.args["SamAccountName"]))

    if "EmailAddresses" in inv.args or "PrimarySmtpAddress" in inv.args:
        await _address_changes(inv, mb, changes)

    await _credential_changes(inv, mb, changes)

    changes = {k: v for k, v in changes.items() if getattr(mb, k) != v}
    if not changes:
        inv.warn_unchanged(mb.name)
        return []
    if not await inv.should_process("Set mailbox", mb.name):
        return []
    await org.update_mailbox(mb.id, **changes)
    return []


async def _address_changes(inv: Invocation, mb: MailboxView, changes: dict[str, object]) -> None:
    addresses = _Addresses(mb.primary_smtp_address, list(mb.email_addresses))
    value = inv.args.get("EmailAddresses", ...)
    if value is None:
        addresses.further = []
    elif isinstance(value, ListEdit):
        addresses.apply_list(list(value.add), replace=False)
        addresses.remove(value.remove)
    elif isinstance(value, list):
        addresses.apply_list([str(v) for v in value], replace=True)
    if "PrimarySmtpAddress" in inv.args:
        primary = validation.smtp_address(str(inv.args["PrimarySmtpAddress"]),
                                          what="PrimarySmtpAddress")
        chosen = addresses.primary
        if chosen is not None and _key(chosen) != _key(mb.primary_smtp_address) \
                and _key(chosen) != _key(primary):
            raise CmdletError(
                "Set-Mailbox: -PrimarySmtpAddress and the SMTP: entry of -EmailAddresses "
                "name different primary addresses."
            )
        addresses.set_primary(primary, keep_old=not isinstance(value, list))
    primary, further = addresses.normalised()
    existing = {_key(a) for a in (mb.primary_smtp_address, *mb.email_addresses)}
    new = [a for a in (primary, *further) if _key(a) not in existing]
    if new:
        _check_domains(new, list(await inv.ctx.org.list_accepted_domains()))
    changes["primary_smtp_address"] = primary
    changes["email_addresses"] = tuple(further)


async def _credential_changes(
    inv: Invocation, mb: MailboxView, changes: dict[str, object]
) -> None:
    if "Password" not in inv.args and "NtlmEnabled" not in inv.args:
        return
    if mb.source != "local":
        raise CmdletError(
            f"Set-Mailbox: the password of '{mb.name}' is managed by its directory "
            f"({mb.source}); -Password and -NtlmEnabled apply to local mailboxes only."
        )
    want_ntlm = bool(inv.args.get("NtlmEnabled", mb.ntlm_enabled))
    if "Password" in inv.args:
        password = inv.args["Password"]
        if password is None:
            if inv.args.get("NtlmEnabled") is True:
                raise CmdletError("Set-Mailbox: -NtlmEnabled $true needs a password: "
                                  + _NTLM_WHY)
            changes.update(password_hash=None, nt_hash=None, ntlm_enabled=False)
            return
        password_hash, nt = await credentials.derive(str(password), ntlm=want_ntlm)
        changes.update(password_hash=password_hash, nt_hash=nt, ntlm_enabled=want_ntlm)
        return
    if want_ntlm and not mb.ntlm_enabled:
        raise CmdletError("Set-Mailbox: -NtlmEnabled $true needs -Password in the same "
                          "command: " + _NTLM_WHY)
    if not want_ntlm:
        changes.update(ntlm_enabled=False, nt_hash=None)


@REGISTRY.cmdlet(
    "Remove-Mailbox",
    synopsis="Removes a mailbox with all its folders and messages.",
    description="In the interactive shell the removal is confirmed first unless "
                "-Confirm:$false is given; gateway exec does not ask.",
    params=(
        ParamSpec("Identity", mandatory=True, position=0, pipeline=True,
                  help="Name, SMTP address, UPN or id of the mailbox."),
        *SHOULD_PROCESS,
    ),
    pipeline_types=MAILBOX_TYPES,
    confirm_impact="High",
    examples=("Remove-Mailbox alice -Confirm:$false",),
)
async def remove_mailbox(inv: Invocation) -> list[Output]:
    mb = await lookup.mailbox(inv.ctx.org, str(inv.args["Identity"]))
    if not await inv.should_process("Remove mailbox", mb.name):
        return []
    await inv.ctx.org.delete_mailbox(mb.id)
    return []
