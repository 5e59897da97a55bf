"""Validation of receive connectors as Exchange validates them (exchange-semantics.md
§1.1, §2).

Role: ``validate_connector`` checks one connector's properties; ``check_conflicts``
checks it against the other connectors of the same server. Both raise
``gateway.errors.ValidationError`` with a message fit for the operator. The store runs
both inside the write transaction (after bumping the org version, which serialises org
writers), so two concurrent ``New-ReceiveConnector`` cannot both pass.

Rules:
* AuthMechanism: ``None`` stands alone; ``BasicAuthRequireTLS`` needs ``BasicAuth`` and
  ``Tls``; ``ExternalAuthoritative`` allows only ``Tls`` beside it and needs the
  permission group ``ExchangeServers``; ``RequireTLS`` and implicit TLS need ``Tls``.
* PermissionGroups: ``None`` stands alone.
* ranges of every numeric property as §1.1; ConnectionTimeout > ConnectionInactivityTimeout;
  a Banner starts with ``220 `` and is one line.
* §2 uniqueness: connectors with the same IP:port must have remote ranges that are
  disjoint or strictly nested (an equal range is a duplicate); connectors of different
  TransportRoles must not share an IP:port (a wildcard shares it with every address);
  connectors sharing an IP:port (or a wildcard covering it) agree on implicit TLS, as one
  socket serves them.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.connectors import model as M
from gateway.connectors.model import ReceiveConnector
from gateway.errors import ValidationError
from gateway.store.validate import check_domain


def _range(value: float | int | None, lo: float, hi: float, what: str,
           allow_none: bool = False) -> None:
    if value is None:
        if not allow_none:
            raise ValidationError(f"{what} must be set")
        return
    if isinstance(value, bool) or not lo <= value <= hi:
        raise ValidationError(f"{what} must be between {lo:g} and {hi:g}"
                              + (" or unlimited" if allow_none else ""))


def check_connector_name(name: str) -> str:
    text = name.strip() if isinstance(name, str) else ""
    if not text:
        raise ValidationError("Name must not be empty")
    if len(text) > M.MAX_NAME_LENGTH:
        raise ValidationError(f"Name is longer than {M.MAX_NAME_LENGTH} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text) or "\\" in text:
        raise ValidationError("Name must not contain control characters or a backslash")
    return text


def validate_connector(c: ReceiveConnector) -> None:
    """Check one connector's properties (§1.1)."""
    check_connector_name(c.name)
    if c.transport_role not in M.TRANSPORT_ROLES:
        raise ValidationError(f"TransportRole must be one of {', '.join(M.TRANSPORT_ROLES)}")
    if c.usage not in M.USAGES:
        raise ValidationError(f"Usage must be one of {', '.join(M.USAGES)}")
    if not c.bindings:
        raise ValidationError("Bindings must name at least one IP:port")
    if not c.remote_ip_ranges:
        raise ValidationError("RemoteIPRanges must name at least one address or range")
    mech = c.auth_mechanism
    if any(m not in M.AUTH_MECHANISMS for m in mech):
        raise ValidationError(f"AuthMechanism values are {', '.join(M.AUTH_MECHANISMS)}")
    if "None" in mech and len(mech) > 1:
        raise ValidationError("AuthMechanism None cannot be combined with other values")
    if "BasicAuthRequireTLS" in mech and not {"BasicAuth", "Tls"} <= mech:
        raise ValidationError("AuthMechanism BasicAuthRequireTLS requires BasicAuth and Tls")
    if "ExternalAuthoritative" in mech:
        if mech - {"ExternalAuthoritative", "Tls"}:
            raise ValidationError("AuthMechanism ExternalAuthoritative can only be "
                                  "combined with Tls")
        if "ExchangeServers" not in c.permission_groups:
            raise ValidationError("AuthMechanism ExternalAuthoritative requires the "
                                  "permission group ExchangeServers")
    if c.require_tls and "Tls" not in mech:
        raise ValidationError("RequireTLS requires Tls in AuthMechanism")
    if c.implicit_tls and "Tls" not in mech:
        raise ValidationError("ImplicitTls requires Tls in AuthMechanism")
    groups = c.permission_groups
    if any(g not in M.PERMISSION_GROUPS for g in groups):
        raise ValidationError(f"PermissionGroups values are {', '.join(M.PERMISSION_GROUPS)}")
    if "None" in groups and len(groups) > 1:
        raise ValidationError("PermissionGroups None cannot be combined with other values")
    _range(c.max_message_size, M.MIN_MAX_MESSAGE_SIZE, M.MAX_MAX_MESSAGE_SIZE,
           "MaxMessageSize (64KB to 2GB)")
    _range(c.max_recipients_per_message, 1, M.MAX_MAX_RECIPIENTS, "MaxRecipientsPerMessage")
    _range(c.max_inbound_connection, 1, M.MAX_INBOUND_CONNECTION, "MaxInboundConnection",
           allow_none=True)
    _range(c.max_inbound_connection_per_source, 1, M.MAX_INBOUND_PER_SOURCE,
           "MaxInboundConnectionPerSource", allow_none=True)
    _range(c.connection_timeout, M.MIN_TIMEOUT, M.MAX_TIMEOUT, "ConnectionTimeout (seconds)")
    _range(c.connection_inactivity_timeout, M.MIN_TIMEOUT, M.MAX_TIMEOUT,
           "ConnectionInactivityTimeout (seconds)")
    if c.connection_timeout <= c.connection_inactivity_timeout:
        raise ValidationError("ConnectionTimeout must be greater than "
                              "ConnectionInactivityTimeout")
    _range(c.max_logon_failures, 0, M.MAX_MAX_LOGON_FAILURES, "MaxLogonFailures")
    _range(c.max_protocol_errors, 0, M.MAX_MAX_PROTOCOL_ERRORS, "MaxProtocolErrors")
    _range(c.tarpit_interval, 0, M.MAX_TARPIT_INTERVAL, "TarpitInterval (seconds)")
    _range(c.message_rate_limit, 1, M.MAX_MESSAGE_RATE_LIMIT, "MessageRateLimit",
           allow_none=True)
    _range(c.max_hop_count, 1, 500, "MaxHopCount")
    if c.banner is not None:
        if not c.banner.startswith("220 ") or len(c.banner) > M.MAX_BANNER_LENGTH \
                or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in c.banner):
            raise ValidationError("Banner must be one line starting with '220 ' (at most "
                                  f"{M.MAX_BANNER_LENGTH} characters)")
    if c.fqdn is not None:
        check_domain(c.fqdn, what="Fqdn")
    if c.protocol_logging_level not in M.LOGGING_LEVELS:
        raise ValidationError("ProtocolLoggingLevel must be None or Verbose")


def _conflict(c: ReceiveConnector, other: ReceiveConnector, why: str) -> ValidationError:
    return ValidationError(
        f"The values that you specified for the Bindings and RemoteIPRanges parameters "
        f"conflict with the settings on Receive connector \"{other.identity}\": {why}")


def check_conflicts(c: ReceiveConnector, others: Iterable[ReceiveConnector]) -> None:
    """Check ``c`` against the other connectors of its server (§2)."""
    for other in others:
        if other.id == c.id or other.server.casefold() != c.server.casefold():
            continue
        for b in c.bindings:
            for ob in other.bindings:
                if not b.overlaps(ob):
                    continue
                if other.transport_role != c.transport_role:
                    raise _conflict(c, other, "Receive connectors assigned to different "
                                    "Transport roles on a single server must listen on "
                                    "unique local IP address & port bindings")
                if other.implicit_tls != c.implicit_tls:
                    raise _conflict(c, other, f"binding {b} overlaps {ob}, which "
                                    f"{'uses' if other.implicit_tls else 'does not use'} "
                                    "implicit TLS")
                if b != ob:
                    continue
                for r in c.remote_ip_ranges:
                    for orr in other.remote_ip_ranges:
                        if not r.overlaps(orr):
                            continue
                        if r.same_span(orr):
                            raise _conflict(c, other, f"binding {b} with remote range "
                                            f"{r} is already used")
                        if not (r.contains_range(orr) or orr.contains_range(r)):
                            raise _conflict(c, other, f"on binding {b} the remote range "
                                            f"{r} partly overlaps {orr}; ranges on one "
                                            "binding must be disjoint or nested")
