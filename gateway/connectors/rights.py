"""Receive connector rights: permission groups → principals → extended rights, plus
explicit permissions (exchange-semantics.md §3).

Role: compute what a session's principal may do on a connector, and say where each
right came from, for enforcement and for ``Test-SmtpRelay`` alike.

Invariants:
* a principal *is* its name, its login name, its primary SMTP address and each of its
  groups (``NT AUTHORITY\\ANONYMOUS LOGON``, ``NT AUTHORITY\\Authenticated Users``,
  ``Everyone``); names compare case-insensitively;
* an explicit Deny of a right for any identity of the principal beats every Allow,
  whether from a permission group or an explicit entry (Windows ACL order);
* a right nobody grants is not held (fail closed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from auth.principal import ANONYMOUS_LOGON, AUTHENTICATED_USERS, Principal
from gateway.connectors.model import ReceiveConnector

SUBMIT: Final = "ms-Exch-SMTP-Submit"
ACCEPT_ANY_RECIPIENT: Final = "ms-Exch-SMTP-Accept-Any-Recipient"
ACCEPT_ANY_SENDER: Final = "ms-Exch-SMTP-Accept-Any-Sender"
ACCEPT_AUTHORITATIVE_DOMAIN_SENDER: Final = "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender"
ACCEPT_AUTHENTICATION_FLAG: Final = "ms-Exch-SMTP-Accept-Authentication-Flag"
ACCEPT_EXCH50: Final = "ms-Exch-SMTP-Accept-Exch50"
BYPASS_ANTI_SPAM: Final = "ms-Exch-Bypass-Anti-Spam"
BYPASS_MESSAGE_SIZE_LIMIT: Final = "ms-Exch-Bypass-Message-Size-Limit"
ACCEPT_ROUTING_HEADERS: Final = "ms-Exch-Accept-Headers-Routing"
ACCEPT_ORGANIZATION_HEADERS: Final = "ms-Exch-Accept-Headers-Organization"
ACCEPT_FOREST_HEADERS: Final = "ms-Exch-Accept-Headers-Forest"

ALL_RIGHTS: Final = (SUBMIT, ACCEPT_ANY_RECIPIENT, ACCEPT_ANY_SENDER,
                     ACCEPT_AUTHORITATIVE_DOMAIN_SENDER, ACCEPT_AUTHENTICATION_FLAG,
                     ACCEPT_EXCH50, BYPASS_ANTI_SPAM, BYPASS_MESSAGE_SIZE_LIMIT,
                     ACCEPT_ROUTING_HEADERS, ACCEPT_ORGANIZATION_HEADERS,
                     ACCEPT_FOREST_HEADERS)
_BY_KEY: Final = {r.casefold(): r for r in ALL_RIGHTS}
_ALL_BUT_HEADERS: Final = frozenset(ALL_RIGHTS) - {ACCEPT_ORGANIZATION_HEADERS,
                                                   ACCEPT_FOREST_HEADERS}

EXCHANGE_SERVERS: Final = "*\\Exchange Servers"      # <Domain>\Exchange Servers
EDGE_SERVERS: Final = "MS Exchange\\Edge Transport Servers"
HUB_SERVERS: Final = "MS Exchange\\Hub Transport Servers"
EXTERNALLY_SECURED: Final = "MS Exchange\\Externally Secured Servers"
LEGACY_INTEROP: Final = "*\\ExchangeLegacyInterop"   # <Domain>\ExchangeLegacyInterop
PARTNER_SERVERS: Final = "MS Exchange\\Partner Servers"

WELL_KNOWN_PRINCIPALS: Final = (ANONYMOUS_LOGON, AUTHENTICATED_USERS, "Everyone",
                                EDGE_SERVERS, HUB_SERVERS, EXTERNALLY_SECURED,
                                PARTNER_SERVERS)

# §3.1: permission group -> ((principal, rights), ...)
GROUP_GRANTS: Final[dict[str, tuple[tuple[str, frozenset[str]], ...]]] = {
    "AnonymousUsers": ((ANONYMOUS_LOGON, frozenset({
        SUBMIT, ACCEPT_ANY_SENDER, ACCEPT_AUTHORITATIVE_DOMAIN_SENDER,
        ACCEPT_ROUTING_HEADERS})),),
    "ExchangeUsers": ((AUTHENTICATED_USERS, frozenset({
        SUBMIT, ACCEPT_ANY_RECIPIENT, BYPASS_ANTI_SPAM, ACCEPT_ROUTING_HEADERS})),),
    "ExchangeServers": ((EXCHANGE_SERVERS, frozenset(ALL_RIGHTS)),
                        (EDGE_SERVERS, frozenset(ALL_RIGHTS)),
                        (HUB_SERVERS, frozenset(ALL_RIGHTS))),
    "ExchangeLegacyServers": ((LEGACY_INTEROP, _ALL_BUT_HEADERS),),
    "Partners": ((PARTNER_SERVERS, frozenset({SUBMIT, ACCEPT_ROUTING_HEADERS})),),
    "Custom": (),
    "None": (),
}


def canonical_right(value: str) -> str:
    """The canonical spelling of an extended right; ValueError for an unknown one."""
    right = _BY_KEY.get(value.strip().casefold())
    if right is None:
        raise ValueError(f"{value!r} is not a receive connector extended right "
                         f"(one of {', '.join(ALL_RIGHTS)})")
    return right


def canonical_principal(value: str) -> str:
    """Well-known principal names in their canonical spelling; others trimmed."""
    text = value.strip()
    for name in WELL_KNOWN_PRINCIPALS:
        if name.casefold() == text.casefold():
            return name
    return text


def principal_identities(principal: Principal) -> frozenset[str]:
    """Every name the principal answers to, case-folded."""
    names = {principal.name, *principal.groups}
    if principal.login_name:
        names.add(principal.login_name)
    if principal.primary_smtp_address:
        names.add(principal.primary_smtp_address)
    return frozenset(n.casefold() for n in names if n)


def _matches(pattern: str, identities: frozenset[str]) -> bool:
    key = pattern.casefold()
    if key.startswith("*\\"):
        suffix = key[1:]
        return any(i.endswith(suffix) for i in identities)
    return key in identities


@dataclass(frozen=True)
class RightCheck:
    """One right consulted by a decision, and why it is or is not held."""

    right: str
    granted: bool
    explanation: str


@dataclass(frozen=True)
class EffectiveRights:
    """The rights of one principal on one connector, with their provenance."""

    principal: str
    connector: str
    allows: dict[str, tuple[str, ...]]     # right -> sources of Allow
    denies: dict[str, tuple[str, ...]]     # right -> sources of Deny

    @property
    def granted(self) -> frozenset[str]:
        return frozenset(r for r in self.allows if r not in self.denies)

    def has(self, right: str) -> bool:
        right = canonical_right(right)
        return right in self.allows and right not in self.denies

    def check(self, right: str) -> RightCheck:
        right = canonical_right(right)
        if right in self.denies:
            return RightCheck(right, False, "denied by " + "; ".join(self.denies[right])
                              + " (a Deny beats every Allow)")
        if right in self.allows:
            return RightCheck(right, True, "allowed by " + "; ".join(self.allows[right]))
        return RightCheck(right, False, f"not granted to {self.principal} on connector "
                          f"{self.connector!r} (no permission group or explicit "
                          "permission gives it)")


def effective_rights(connector: ReceiveConnector, principal: Principal) -> EffectiveRights:
    """Compute the principal's rights on ``connector`` (§3.1 table + explicit ACEs)."""
    identities = principal_identities(principal)
    allows: dict[str, list[str]] = {}
    denies: dict[str, list[str]] = {}
    for group in sorted(connector.permission_groups):
        for grantee, rights in GROUP_GRANTS.get(group, ()):
            if not _matches(grantee, identities):
                continue
            for right in rights:
                allows.setdefault(right, []).append(f"permission group {group} ({grantee})")
        if group == "ExchangeServers" and "ExternalAuthoritative" in connector.auth_mechanism \
                and _matches(EXTERNALLY_SECURED, identities):
            for right in _ALL_BUT_HEADERS:
                allows.setdefault(right, []).append(
                    f"permission group ExchangeServers with ExternalAuthoritative "
                    f"({EXTERNALLY_SECURED})")
    for ace in connector.permissions:
        if not _matches(ace.user, identities):
            continue
        try:
            right = canonical_right(ace.extended_rights)
        except ValueError:
            continue
        target = denies if ace.deny else allows
        kind = "explicit Deny" if ace.deny else "explicit permission"
        target.setdefault(right, []).append(f"{kind} for {ace.user}")
    return EffectiveRights(principal=principal.name, connector=connector.name,
                           allows={k: tuple(v) for k, v in allows.items()},
                           denies={k: tuple(v) for k, v in denies.items()})
