"""The receive connector model (exchange-semantics.md §1.1, §1.2, §3).

Role: the frozen value the store returns and every policy function reads; the
constants naming usages, permission groups and authentication mechanisms; the
defaults Exchange fills in from ``Usage`` (§1.2).

Invariants: a ``ReceiveConnector`` is immutable; its sets hold the canonical spelling
of every group and mechanism (``canonical_*`` maps any case to it); explicit
permissions are one (user, right, deny) triple each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from gateway.connectors.ranges import Binding, IPRange, all_ipv4, all_ipv6

TRANSPORT_ROLES: Final = ("FrontendTransport", "HubTransport")
USAGES: Final = ("Client", "Custom", "Internal", "Internet", "Partner")
PERMISSION_GROUPS: Final = ("None", "AnonymousUsers", "ExchangeUsers", "ExchangeServers",
                            "ExchangeLegacyServers", "Partners", "Custom")
AUTH_MECHANISMS: Final = ("None", "Tls", "Integrated", "BasicAuth", "BasicAuthRequireTLS",
                          "ExchangeServer", "ExternalAuthoritative")
LOGGING_LEVELS: Final = ("None", "Verbose")

# §1.1 defaults and limits.
DEFAULT_MAX_MESSAGE_SIZE: Final = 36 * 1024 * 1024          # "SIZE 37748736"
MIN_MAX_MESSAGE_SIZE: Final = 64 * 1024
MAX_MAX_MESSAGE_SIZE: Final = 2 * 1024 * 1024 * 1024
DEFAULT_MAX_RECIPIENTS: Final = 200
MAX_MAX_RECIPIENTS: Final = 512_000
DEFAULT_MAX_INBOUND_CONNECTION: Final = 5000
DEFAULT_MAX_INBOUND_PER_SOURCE: Final = 20
MAX_INBOUND_PER_SOURCE: Final = 10_000
MAX_INBOUND_CONNECTION: Final = 1_000_000
DEFAULT_CONNECTION_TIMEOUT: Final = 600.0
DEFAULT_INACTIVITY_TIMEOUT: Final = 300.0
MIN_TIMEOUT: Final = 1.0
MAX_TIMEOUT: Final = 86_400.0
DEFAULT_MAX_LOGON_FAILURES: Final = 3
MAX_MAX_LOGON_FAILURES: Final = 10
DEFAULT_MAX_PROTOCOL_ERRORS: Final = 5
MAX_MAX_PROTOCOL_ERRORS: Final = 1000
DEFAULT_TARPIT_INTERVAL: Final = 5.0
MAX_TARPIT_INTERVAL: Final = 600.0
DEFAULT_MAX_HOP_COUNT: Final = 30
MAX_MESSAGE_RATE_LIMIT: Final = 1_000_000
MAX_NAME_LENGTH: Final = 64
MAX_BANNER_LENGTH: Final = 512
MAX_FQDN_LENGTH: Final = 255


def _canonical(value: str, allowed: tuple[str, ...], what: str) -> str:
    key = value.strip().casefold()
    for name in allowed:
        if name.casefold() == key:
            return name
    raise ValueError(f"{value!r} is not a valid {what} (one of {', '.join(allowed)})")


def canonical_usage(value: str) -> str:
    return _canonical(value, USAGES, "Usage")


def canonical_group(value: str) -> str:
    return _canonical(value, PERMISSION_GROUPS, "permission group")


def canonical_mechanism(value: str) -> str:
    return _canonical(value, AUTH_MECHANISMS, "authentication mechanism")


def canonical_role(value: str) -> str:
    return _canonical(value, TRANSPORT_ROLES, "transport role")


def canonical_logging(value: str) -> str:
    return _canonical(value, LOGGING_LEVELS, "protocol logging level")


@dataclass(frozen=True)
class UsageDefaults:
    """What ``-Usage`` fills in at creation (§1.2)."""

    permission_groups: frozenset[str]
    auth_mechanism: frozenset[str]
    default_port: int | None          # Client: 587, Internal: 25; else bindings required
    remote_ranges_settable: bool      # Internet: ranges cannot be set at creation


USAGE_DEFAULTS: Final[dict[str, UsageDefaults]] = {
    "Client": UsageDefaults(frozenset({"ExchangeUsers"}),
                            frozenset({"Tls", "BasicAuth", "BasicAuthRequireTLS",
                                       "Integrated"}), 587, True),
    "Custom": UsageDefaults(frozenset(), frozenset({"Tls"}), None, True),
    "Internal": UsageDefaults(frozenset({"ExchangeLegacyServers", "ExchangeServers"}),
                              frozenset({"Tls", "ExchangeServer"}), 25, True),
    "Internet": UsageDefaults(frozenset({"AnonymousUsers"}), frozenset({"Tls"}), None,
                              False),
    "Partner": UsageDefaults(frozenset({"Partners"}), frozenset({"Tls"}), None, True),
}


def default_remote_ranges(usage: str) -> tuple[IPRange, ...]:
    """Every remote address: IPv4 only for Internet usage (§1.1), both families else."""
    if usage == "Internet":
        return (all_ipv4(),)
    return (all_ipv4(), all_ipv6())


@dataclass(frozen=True)
class ADPermission:
    """One explicit permission entry on a connector (``Add-ADPermission``)."""

    user: str
    extended_rights: str
    deny: bool = False


@dataclass(frozen=True)
class ReceiveConnector:
    """A receive connector as stored (see docs/dev/smtp-policy.md)."""

    id: int
    server: str
    name: str
    transport_role: str = "FrontendTransport"
    usage: str = "Custom"
    bindings: tuple[Binding, ...] = ()
    remote_ip_ranges: tuple[IPRange, ...] = ()
    permission_groups: frozenset[str] = frozenset()
    auth_mechanism: frozenset[str] = frozenset({"Tls"})
    require_tls: bool = False
    implicit_tls: bool = False
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    max_recipients_per_message: int = DEFAULT_MAX_RECIPIENTS
    max_inbound_connection: int | None = DEFAULT_MAX_INBOUND_CONNECTION
    max_inbound_connection_per_source: int | None = DEFAULT_MAX_INBOUND_PER_SOURCE
    connection_timeout: float = DEFAULT_CONNECTION_TIMEOUT
    connection_inactivity_timeout: float = DEFAULT_INACTIVITY_TIMEOUT
    max_logon_failures: int = DEFAULT_MAX_LOGON_FAILURES
    max_protocol_errors: int = DEFAULT_MAX_PROTOCOL_ERRORS
    tarpit_interval: float = DEFAULT_TARPIT_INTERVAL
    banner: str | None = None
    fqdn: str | None = None
    protocol_logging_level: str = "None"
    message_rate_limit: int | None = None
    max_hop_count: int = DEFAULT_MAX_HOP_COUNT
    enabled: bool = True
    comment: str = ""
    permissions: tuple[ADPermission, ...] = field(default=())

    @property
    def identity(self) -> str:
        return f"{self.server}\\{self.name}"

    def __str__(self) -> str:
        return self.identity
