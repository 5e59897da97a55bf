"""Identity resolution shared by the cmdlets: one object, or a wildcard filter.

``Get-*`` cmdlets accept ``*`` and ``?`` wildcards in ``-Identity`` (as Exchange does),
matched case-insensitively against the name and addresses; other cmdlets need exactly
one object and report Exchange's "couldn't be found" message otherwise.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import TypeVar

from gateway.admin.errors import CmdletError
from gateway.admin.registry import Invocation, ParamSpec
from gateway.admin.storeapi import AcceptedDomainView, MailboxView, OrgApi
from gateway.errors import NotFound

T = TypeVar("T")

DEFAULT_RESULT_SIZE = 1000
"""Objects a Get-* listing returns unless -ResultSize says otherwise (Exchange's default)."""

RESULT_SIZE = ParamSpec(
    "ResultSize",
    help=f"The most objects to return: a number, or Unlimited (default {DEFAULT_RESULT_SIZE}).",
)


def limit_results(inv: Invocation, items: Sequence[T]) -> list[T]:
    """Apply -ResultSize; warn (as Exchange does) when the default cut the listing."""
    raw = inv.args.get("ResultSize")
    size: int | None = DEFAULT_RESULT_SIZE
    if raw is not None:
        text = str(raw).strip()
        if text.lower() == "unlimited":
            size = None
        elif text.isdigit() and 0 < len(text) <= 9 and int(text) > 0:
            size = int(text)
        else:
            raise CmdletError(
                f"{inv.cmdlet.name}: -ResultSize takes a positive number or Unlimited, not "
                f"'{text[:40]}'."
            )
    if size is None or len(items) <= size:
        return list(items)
    if raw is None:
        inv.warn(f"By default, only the first {DEFAULT_RESULT_SIZE} items are returned. Use "
                 "the ResultSize parameter to specify the number of items returned. To "
                 'return all items, specify "-ResultSize Unlimited".')
    return list(items[:size])


def is_wildcard(identity: str) -> bool:
    return "*" in identity or "?" in identity


def matches(pattern: str, *values: str) -> bool:
    lowered = pattern.lower()
    return any(fnmatch.fnmatchcase(v.lower(), lowered) for v in values)


def _not_found(identity: str, kind: str) -> CmdletError:
    shown = identity if len(identity) <= 80 else identity[:80] + "..."
    return CmdletError(
        f"The operation couldn't be performed because object '{shown}' couldn't be found "
        f"({kind})."
    )


async def mailbox(org: OrgApi, identity: str) -> MailboxView:
    try:
        return await org.get_mailbox(identity)
    except NotFound:
        raise _not_found(identity, "mailbox") from None


async def mailboxes(org: OrgApi, identity: str | None) -> list[MailboxView]:
    """All mailboxes, those matching a wildcard identity, or the one named."""
    if identity is None:
        return list(await org.list_mailboxes())
    if is_wildcard(identity):
        return [m for m in await org.list_mailboxes()
                if matches(identity, m.name, m.primary_smtp_address, m.user_principal_name)]
    return [await mailbox(org, identity)]


async def accepted_domain(org: OrgApi, identity: str) -> AcceptedDomainView:
    try:
        return await org.get_accepted_domain(identity)
    except NotFound:
        raise _not_found(identity, "accepted domain") from None


async def accepted_domains(org: OrgApi, identity: str | None) -> list[AcceptedDomainView]:
    if identity is None:
        return list(await org.list_accepted_domains())
    if is_wildcard(identity):
        return [d for d in await org.list_accepted_domains()
                if matches(identity, d.name, d.domain_name)]
    return [await accepted_domain(org, identity)]
