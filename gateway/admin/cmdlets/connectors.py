"""Receive connector cmdlets: New/Get/Set/Remove-ReceiveConnector,
Add/Get/Remove-ADPermission and Test-SmtpRelay (exchange-semantics.md §1-3).

Semantics:

* ``-Usage`` (set only at creation) fills in PermissionGroups and AuthMechanism when
  they are not given (§1.2); Client and Internal usage have default bindings
  (0.0.0.0:587, 0.0.0.0:25); Custom, Internet and Partner need ``-Bindings``; Internet
  usage cannot set RemoteIPRanges at creation (every IPv4 address);
* multi-valued properties take a comma list, or Exchange's ``@{Add=...; Remove=...}``
  on Set-ReceiveConnector;
* a connector's identity is ``Server\\Name``; a bare name means this server's
  connector (or the only one of that name);
* ``Add-ADPermission`` on a receive connector grants (or with ``-Deny`` refuses) an
  extended right to a user or group; a Deny beats every Allow;
* ``Test-SmtpRelay`` replays a conversation through the SMTP policy itself.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from auth.principal import Principal
from gateway.admin.cmdlets import lookup
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
from gateway.connectors import model as M
from gateway.connectors.explain import explain_relay
from gateway.connectors.model import ReceiveConnector
from gateway.connectors.policy import SmtpPolicy
from gateway.connectors.ranges import parse_binding, parse_ip_range
from gateway.connectors.rights import GROUP_GRANTS, canonical_principal, canonical_right
from gateway.connectors.values import (
    format_size,
    format_timespan,
    format_unlimited,
    parse_size,
    parse_timespan,
    parse_unlimited,
)
from gateway.errors import NotFound, ValidationError

TYPE_NAME = "ReceiveConnector"
PERMISSION_TYPE = "ADPermission"


# -- records ---------------------------------------------------------------------------
def connector_record(c: ReceiveConnector) -> Record:
    return Record(TYPE_NAME, c.identity, {
        "Identity": c.identity,
        "Name": c.name,
        "Server": c.server,
        "TransportRole": c.transport_role,
        "Bindings": [str(b) for b in c.bindings],
        "RemoteIPRanges": [r.text for r in c.remote_ip_ranges],
        "PermissionGroups": ", ".join(sorted(c.permission_groups)) or "None",
        "AuthMechanism": ", ".join(sorted(c.auth_mechanism)) or "None",
        "RequireTLS": c.require_tls,
        "ImplicitTls": c.implicit_tls,
        "MaxMessageSize": format_size(c.max_message_size),
        "MaxRecipientsPerMessage": c.max_recipients_per_message,
        "MaxInboundConnection": format_unlimited(c.max_inbound_connection),
        "MaxInboundConnectionPerSource": format_unlimited(c.max_inbound_connection_per_source),
        "ConnectionTimeout": format_timespan(c.connection_timeout),
        "ConnectionInactivityTimeout": format_timespan(c.connection_inactivity_timeout),
        "MaxLogonFailures": c.max_logon_failures,
        "MaxProtocolErrors": c.max_protocol_errors,
        "TarpitInterval": format_timespan(c.tarpit_interval),
        "MaxHopCount": c.max_hop_count,
        "Banner": c.banner,
        "Fqdn": c.fqdn,
        "ProtocolLoggingLevel": c.protocol_logging_level,
        "MessageRateLimit": format_unlimited(c.message_rate_limit),
        "Enabled": c.enabled,
        "Comment": c.comment,
        "Id": c.id,
    }, ("Identity", "Bindings", "Enabled"))


def _permission_record(c: ReceiveConnector, user: str, right: str, deny: bool,
                       source: str) -> Record:
    return Record(PERMISSION_TYPE, c.identity, {
        "Identity": c.identity,
        "User": user,
        "Deny": deny,
        "Inherited": False,
        "ExtendedRights": right,
        "Source": source,
    }, ("Identity", "User", "Deny", "ExtendedRights"))


# -- parameters ------------------------------------------------------------------------
_IDENTITY = ParamSpec("Identity", mandatory=True, position=0, pipeline=True,
                      help="The receive connector: Server\\Name, or Name on this server.")

_PROPS: tuple[ParamSpec, ...] = (
    ParamSpec("Bindings", "list", edit=True,
              help="Local IP:port pairs the connector listens on: IPv4:port or "
                   "[IPv6]:port; 0.0.0.0 and [::] mean every address."),
    ParamSpec("RemoteIPRanges", "list", edit=True,
              help="Remote addresses the connector serves: single addresses, a-b ranges "
                   "or CIDR networks, IPv4 or IPv6. Connectors sharing a binding need "
                   "disjoint or nested ranges; the most specific range wins."),
    ParamSpec("PermissionGroups", "list", edit=True,
              help="None, AnonymousUsers, ExchangeUsers, ExchangeServers, "
                   "ExchangeLegacyServers, Partners or Custom."),
    ParamSpec("AuthMechanism", "list", edit=True,
              help="None, Tls, Integrated, BasicAuth, BasicAuthRequireTLS, ExchangeServer, "
                   "ExternalAuthoritative."),
    ParamSpec("RequireTLS", "bool", help="Refuses MAIL FROM until STARTTLS (451 5.7.3)."),
    ParamSpec("ImplicitTls", "bool",
              help="Gateway extension: TLS starts at connect (SMTPS, port 465)."),
    ParamSpec("MaxMessageSize", help="64KB to 2GB (default 36MB); advertised as SIZE."),
    ParamSpec("MaxRecipientsPerMessage", "int", minimum=1, maximum=M.MAX_MAX_RECIPIENTS,
              help="RCPT commands accepted per message (default 200); more get 452 4.5.3."),
    ParamSpec("MaxInboundConnection", help="Concurrent connections, or Unlimited "
                                           "(default 5000)."),
    ParamSpec("MaxInboundConnectionPerSource",
              help="Concurrent connections per remote address, or Unlimited (default 20)."),
    ParamSpec("ConnectionTimeout", help="Longest connection (default 00:10:00)."),
    ParamSpec("ConnectionInactivityTimeout", help="Longest idle time (default 00:05:00)."),
    ParamSpec("MaxLogonFailures", "int", minimum=0, maximum=M.MAX_MAX_LOGON_FAILURES,
              help="Failed AUTH attempts before the connection closes (default 3)."),
    ParamSpec("MaxProtocolErrors", "int", minimum=0, maximum=M.MAX_MAX_PROTOCOL_ERRORS,
              help="Protocol errors before the connection closes (default 5)."),
    ParamSpec("TarpitInterval", help="Delay of failure replies to unauthenticated "
                                     "sessions (default 00:00:05)."),
    ParamSpec("MaxHopCount", "int", minimum=1, maximum=500,
              help="Received header fields allowed before 554 5.4.6 (default 30)."),
    ParamSpec("Banner", nullable=True, max_length=M.MAX_BANNER_LENGTH,
              help="The 220 greeting; must start with '220 '. $null restores the default."),
    ParamSpec("Fqdn", nullable=True, help="The name in the banner, EHLO reply and Received "
                                          "header; $null means the server name."),
    ParamSpec("ProtocolLoggingLevel", "enum", choices=M.LOGGING_LEVELS,
              help="Verbose writes the SMTP protocol log of this connector."),
    ParamSpec("MessageRateLimit", help="Messages per minute per source, or Unlimited."),
    ParamSpec("Enabled", "bool", help="Disabled connectors are left out of selection."),
    ParamSpec("TransportRole", "enum", choices=M.TRANSPORT_ROLES,
              help="FrontendTransport (default) or HubTransport."),
    ParamSpec("Comment", max_length=1024, help="Free text."),
)

_LIST_FIELDS = {"Bindings": "bindings", "RemoteIPRanges": "remote_ip_ranges",
                "PermissionGroups": "permission_groups", "AuthMechanism": "auth_mechanism"}


def _fail(inv: Invocation, message: str) -> CmdletError:
    return CmdletError(f"{inv.cmdlet.name}: {message}")


def _parse_item(field: str, text: str) -> Any:
    if field == "bindings":
        return parse_binding(text)
    if field == "remote_ip_ranges":
        return parse_ip_range(text)
    if field == "permission_groups":
        return M.canonical_group(text)
    return M.canonical_mechanism(text)


def _list_value(inv: Invocation, param: str, current: tuple[Any, ...] | frozenset[Any]
                ) -> Any:
    """A full list or an @{Add/Remove} edit applied to ``current``."""
    field = _LIST_FIELDS[param]
    raw = inv.args[param]
    try:
        if isinstance(raw, ListEdit):
            items = list(current)
            for text in raw.add:
                for part in text.split(","):
                    if part.strip():
                        value = _parse_item(field, part.strip())
                        if value not in items:
                            items.append(value)
            for text in raw.remove:
                for part in text.split(","):
                    if part.strip():
                        value = _parse_item(field, part.strip())
                        items = [i for i in items if _differs(i, value)]
            result: list[Any] = items
        else:
            result = [_parse_item(field, part.strip()) for text in raw  # type: ignore[attr-defined]
                      for part in str(text).split(",") if part.strip()]
    except ValueError as exc:
        raise _fail(inv, f"-{param}: {exc}") from None
    if field in ("permission_groups", "auth_mechanism"):
        return frozenset(result)
    return tuple(dict.fromkeys(result))


def _differs(a: Any, b: Any) -> bool:
    """True when ``a`` is not the item being removed (ranges compare by span)."""
    if hasattr(a, "first") and hasattr(b, "first"):
        return not (a.first == b.first and a.last == b.last)
    return bool(a != b)


def _scalar_changes(inv: Invocation) -> dict[str, Any]:
    out: dict[str, Any] = {}
    a = inv.args
    try:
        if "RequireTLS" in a:
            out["require_tls"] = bool(a["RequireTLS"])
        if "ImplicitTls" in a:
            out["implicit_tls"] = bool(a["ImplicitTls"])
        if "MaxMessageSize" in a:
            out["max_message_size"] = parse_size(str(a["MaxMessageSize"]))
        if "MaxRecipientsPerMessage" in a:
            out["max_recipients_per_message"] = int(a["MaxRecipientsPerMessage"])  # type: ignore[call-overload]
        if "MaxInboundConnection" in a:
            out["max_inbound_connection"] = parse_unlimited(str(a["MaxInboundConnection"]))
        if "MaxInboundConnectionPerSource" in a:
            out["max_inbound_connection_per_source"] = parse_unlimited(
                str(a["MaxInboundConnectionPerSource"]))
        if "ConnectionTimeout" in a:
            out["connection_timeout"] = parse_timespan(str(a["ConnectionTimeout"]))
        if "ConnectionInactivityTimeout" in a:
            out["connection_inactivity_timeout"] = parse_timespan(
                str(a["ConnectionInactivityTimeout"]))
        if "MaxLogonFailures" in a:
            out["max_logon_failures"] = int(a["MaxLogonFailures"])  # type: ignore[call-overload]
        if "MaxProtocolErrors" in a:
            out["max_protocol_errors"] = int(a["MaxProtocolErrors"])  # type: ignore[call-overload]
        if "TarpitInterval" in a:
            out["tarpit_interval"] = parse_timespan(str(a["TarpitInterval"]))
        if "MaxHopCount" in a:
            out["max_hop_count"] = int(a["MaxHopCount"])  # type: ignore[call-overload]
        if "Banner" in a:
            out["banner"] = None if a["Banner"] is None else str(a["Banner"])
        if "Fqdn" in a:
            out["fqdn"] = None if a["Fqdn"] is None else str(a["Fqdn"]).strip().lower()
        if "ProtocolLoggingLevel" in a:
            out["protocol_logging_level"] = str(a["ProtocolLoggingLevel"])
        if "MessageRateLimit" in a:
            out["message_rate_limit"] = parse_unlimited(str(a["MessageRateLimit"]))
        if "Enabled" in a:
            out["enabled"] = bool(a["Enabled"])
        if "TransportRole" in a:
            out["transport_role"] = str(a["TransportRole"])
        if "Comment" in a:
            out["comment"] = str(a["Comment"])
    except ValueError as exc:
        raise _fail(inv, str(exc)) from None
    return out


def _store(inv: Invocation) -> Any:
    """``store.connectors``; a store without it (an admin test double) is refused."""
    repo = getattr(inv.ctx.store, "connectors", None)
    if repo is None:
        raise _fail(inv, "this store holds no receive connectors.")
    return repo


async def _find(inv: Invocation, identity: str) -> ReceiveConnector:
    store = _store(inv)
    try:
        return await store.get_receive_connector(identity)
    except ValidationError:
        try:
            return await store.get_receive_connector(
                identity, server=inv.ctx.server_name)
        except NotFound:
            pass
    except NotFound:
        pass
    raise _fail(inv, f"The operation couldn't be performed because object '{identity}' "
                     "couldn't be found.")


# -- New/Get/Set/Remove-ReceiveConnector ------------------------------------------------
@REGISTRY.cmdlet(
    "New-ReceiveConnector",
    synopsis="Creates a receive connector: who may send mail to this server, how, and "
             "on which address.",
    description="-Usage fills in PermissionGroups and AuthMechanism unless given: Client "
                "(ExchangeUsers; Tls, BasicAuth, BasicAuthRequireTLS, Integrated; "
                "0.0.0.0:587), Internal (ExchangeLegacyServers, ExchangeServers; Tls, "
                "ExchangeServer; 0.0.0.0:25), Internet (AnonymousUsers; Tls; every IPv4 "
                "address), Partner (Partners; Tls), Custom (no group; Tls; the default). "
                "Without -RemoteIPRanges the connector serves every remote address. "
                "Connectors sharing an IP:port need disjoint or nested remote ranges; the "
                "most specific range that contains the client wins.",
    params=(
        ParamSpec("Name", mandatory=True, position=0, max_length=M.MAX_NAME_LENGTH,
                  help="A name unique on the server (up to 64 characters)."),
        ParamSpec("Usage", "enum", choices=M.USAGES,
                  help="Client, Custom, Internal, Internet or Partner (default Custom)."),
        ParamSpec("Server", help="The server the connector belongs to (default: this one)."),
        *_PROPS, *SHOULD_PROCESS,
    ),
    examples=(
        'New-ReceiveConnector -Name "Anonymous Relay" -Usage Custom -PermissionGroups '
        "AnonymousUsers -Bindings 10.0.0.50:25 -RemoteIpRanges 10.0.0.80",
        'New-ReceiveConnector -Name "Partners" -Usage Partner -Bindings 0.0.0.0:25 '
        "-RemoteIPRanges 192.0.2.0/24",
    ),
)
async def new_receive_connector(inv: Invocation) -> list[Output]:
    usage = str(inv.get("Usage", "Custom"))
    defaults = M.USAGE_DEFAULTS[usage]
    server = str(inv.get("Server") or inv.ctx.server_name).strip()
    base = ReceiveConnector(id=0, server=server, name=str(inv.args["Name"]).strip(),
                            usage=usage, permission_groups=defaults.permission_groups,
                            auth_mechanism=defaults.auth_mechanism,
                            remote_ip_ranges=M.default_remote_ranges(usage))
    if defaults.default_port is not None:
        base = dataclasses.replace(base, bindings=(parse_binding(
            f"0.0.0.0:{defaults.default_port}"),))
    changes: dict[str, Any] = {}
    for param, field in _LIST_FIELDS.items():
        if param in inv.args:
            if isinstance(inv.args[param], ListEdit):
                raise _fail(inv, f"-{param} takes a list here; @{{Add=...}} is for "
                                 "Set-ReceiveConnector.")
            changes[field] = _list_value(inv, param, getattr(base, field))
    if "remote_ip_ranges" in changes and not defaults.remote_ranges_settable:
        raise _fail(inv, "RemoteIPRanges cannot be set when Usage is Internet; create the "
                         "connector, then use Set-ReceiveConnector.")
    if defaults.default_port is None and "bindings" not in changes:
        raise _fail(inv, f"-Bindings is required when Usage is {usage}.")
    changes.update(_scalar_changes(inv))
    connector = dataclasses.replace(base, **changes)
    if not await inv.should_process("New receive connector", connector.identity):
        return []
    created = await _store(inv).create_receive_connector(connector)
    return [connector_record(created)]


@REGISTRY.cmdlet(
    "Get-ReceiveConnector",
    synopsis="Lists the receive connectors, or shows one.",
    params=(ParamSpec("Identity", position=0, pipeline=True,
                      help="Server\\Name or Name; wildcards * and ? are allowed."),
            ParamSpec("Server", help="Only this server's connectors.")),
    pipeline_types=(TYPE_NAME,),
    examples=("Get-ReceiveConnector", 'Get-ReceiveConnector "Anonymous Relay" | Format-List'),
)
async def get_receive_connector(inv: Invocation) -> list[Output]:
    identity = inv.get("Identity")
    server = inv.get("Server")
    if identity is not None and not lookup.is_wildcard(str(identity)):
        found = [await _find(inv, str(identity))]
    else:
        found = await _store(inv).list_receive_connectors(
            server=None if server is None else str(server))
        if identity is not None:
            found = [c for c in found if lookup.matches(str(identity), c.name, c.identity)]
    if server is not None:
        found = [c for c in found if c.server.casefold() == str(server).casefold()]
    return [connector_record(c) for c in found]


@REGISTRY.cmdlet(
    "Set-ReceiveConnector",
    synopsis="Changes a receive connector.",
    description="Multi-valued properties take a full list, or @{Add=...; Remove=...}. "
                "Usage is fixed at creation. The change applies on every node within "
                "a second, without a restart.",
    params=(_IDENTITY,
            ParamSpec("Name", max_length=M.MAX_NAME_LENGTH, help="A new name."),
            *_PROPS, *SHOULD_PROCESS),
    pipeline_types=(TYPE_NAME,),
    examples=('Set-ReceiveConnector "Anonymous Relay" -RemoteIPRanges '
              '@{Add="10.0.0.81"}',
              'Set-ReceiveConnector "Client Frontend mail1" -MaxMessageSize 50MB'),
)
async def set_receive_connector(inv: Invocation) -> list[Output]:
    current = await _find(inv, str(inv.args["Identity"]))
    changes: dict[str, Any] = {}
    if "Name" in inv.args:
        changes["name"] = str(inv.args["Name"]).strip()
    for param, field in _LIST_FIELDS.items():
        if param in inv.args:
            changes[field] = _list_value(inv, param, getattr(current, field))
    changes.update(_scalar_changes(inv))
    changes = {k: v for k, v in changes.items() if getattr(current, k) != v}
    if not changes:
        inv.warn_unchanged(current.identity)
        return []
    if not await inv.should_process("Set receive connector", current.identity):
        return []
    await _store(inv).update_receive_connector(current.id, **changes)
    return []


@REGISTRY.cmdlet(
    "Remove-ReceiveConnector",
    synopsis="Removes a receive connector and its permissions.",
    params=(_IDENTITY, *SHOULD_PROCESS),
    pipeline_types=(TYPE_NAME,),
    confirm_impact="High",
    examples=('Remove-ReceiveConnector "Anonymous Relay" -Confirm:$false',),
)
async def remove_receive_connector(inv: Invocation) -> list[Output]:
    current = await _find(inv, str(inv.args["Identity"]))
    if not await inv.should_process("Remove receive connector", current.identity):
        return []
    await _store(inv).delete_receive_connector(current.id)
    return []


# -- ADPermission -----------------------------------------------------------------------
_RIGHTS_PARAM = ParamSpec(
    "ExtendedRights", "list", mandatory=True,
    help="Extended rights, e.g. ms-Exch-SMTP-Accept-Any-Recipient, ms-Exch-SMTP-Submit, "
         "ms-Exch-SMTP-Accept-Any-Sender, ms-Exch-SMTP-Accept-Authoritative-Domain-Sender.")
_USER_PARAM = ParamSpec(
    "User", mandatory=True,
    help='The user or group, e.g. "NT AUTHORITY\\ANONYMOUS LOGON", '
         '"NT AUTHORITY\\Authenticated Users", or a mailbox\'s DOMAIN\\user or address.')
_DENY = ParamSpec("Deny", "switch", help="Refuses the rights; a Deny beats every Allow.")
_ACCESS = ParamSpec("AccessRights", "enum", choices=("ExtendedRight",),
                    help="Accepted for compatibility; only ExtendedRight applies.")


def _rights(inv: Invocation) -> list[str]:
    try:
        return [canonical_right(part) for text in inv.args["ExtendedRights"]  # type: ignore[attr-defined]
                for part in str(text).split(",") if part.strip()]
    except ValueError as exc:
        raise _fail(inv, str(exc)) from None


@REGISTRY.cmdlet(
    "Add-ADPermission",
    synopsis="Grants (or with -Deny refuses) extended rights on a receive connector.",
    description="The typical use gives one host relay rights: a Custom connector scoped "
                "to its address with AnonymousUsers, plus ms-Exch-SMTP-Accept-Any-Recipient "
                "for NT AUTHORITY\\ANONYMOUS LOGON.",
    params=(_IDENTITY, _USER_PARAM, _RIGHTS_PARAM, _DENY, _ACCESS, *SHOULD_PROCESS),
    pipeline_types=(TYPE_NAME,),
    examples=('Get-ReceiveConnector "Anonymous Relay" | Add-ADPermission -User '
              '"NT AUTHORITY\\ANONYMOUS LOGON" -ExtendedRights '
              '"Ms-Exch-SMTP-Accept-Any-Recipient"',),
)
async def add_ad_permission(inv: Invocation) -> list[Output]:
    current = await _find(inv, str(inv.args["Identity"]))
    user = canonical_principal(str(inv.args["User"]))
    deny = inv.get("Deny") is True
    rights = _rights(inv)
    if not await inv.should_process("Add AD permission", f"{current.identity} {user}"):
        return []
    out: list[Output] = []
    for right in rights:
        current = await _store(inv).add_permission(current.id, user, right,
                                                                deny=deny)
        out.append(_permission_record(current, user, right, deny, "Explicit"))
    return out


@REGISTRY.cmdlet(
    "Get-ADPermission",
    synopsis="Lists the permissions of a receive connector: those its permission groups "
             "give and the explicit ones.",
    params=(_IDENTITY, ParamSpec("User", help="Only the entries of this user or group.")),
    pipeline_types=(TYPE_NAME,),
    examples=('Get-ReceiveConnector "Anonymous Relay" | Get-ADPermission',),
)
async def get_ad_permission(inv: Invocation) -> list[Output]:
    current = await _find(inv, str(inv.args["Identity"]))
    wanted = inv.get("User")
    out: list[Output] = []
    for group in sorted(current.permission_groups):
        for grantee, rights in GROUP_GRANTS.get(group, ()):
            shown = grantee.replace("*\\", "<Domain>\\")
            for right in sorted(rights):
                out.append(_permission_record(current, shown, right, False,
                                              f"PermissionGroup {group}"))
    for ace in current.permissions:
        out.append(_permission_record(current, ace.user, ace.extended_rights, ace.deny,
                                      "Explicit"))
    if wanted is not None:
        key = str(wanted).strip().casefold()
        out = [r for r in out if isinstance(r, Record)
               and str(r.properties["User"]).casefold() == key]
    return out


@REGISTRY.cmdlet(
    "Remove-ADPermission",
    synopsis="Removes explicit extended rights (or Deny entries) from a receive connector.",
    params=(_IDENTITY, _USER_PARAM, _RIGHTS_PARAM, _DENY, _ACCESS, *SHOULD_PROCESS),
    pipeline_types=(TYPE_NAME,),
    confirm_impact="High",
    examples=('Remove-ADPermission "Anonymous Relay" -User "NT AUTHORITY\\ANONYMOUS LOGON" '
              '-ExtendedRights ms-Exch-SMTP-Accept-Any-Recipient -Confirm:$false',),
)
async def remove_ad_permission(inv: Invocation) -> list[Output]:
    current = await _find(inv, str(inv.args["Identity"]))
    user = canonical_principal(str(inv.args["User"]))
    deny = inv.get("Deny") is True
    rights = _rights(inv)
    if not await inv.should_process("Remove AD permission", f"{current.identity} {user}"):
        return []
    for right in rights:
        await _store(inv).remove_permission(current.id, user, right, deny=deny)
    return []


# -- Test-SmtpRelay ---------------------------------------------------------------------
async def _principal_for(inv: Invocation, identity: str) -> Principal:
    mb = await lookup.mailbox(inv.ctx.org, identity)
    settings = await inv.ctx.org.get_settings("organization")
    netbios = settings.get("netbios_domain")
    if not isinstance(netbios, str) or not netbios:
        domains = await inv.ctx.org.list_accepted_domains()
        default = next((d.domain_name for d in domains if d.is_default), None)
        netbios = default.split(".")[0].upper()[:15] if default else None
    name = f"{netbios}\\{mb.sam_account_name}" if netbios else mb.user_principal_name
    return Principal.for_mailbox(mailbox_id=mb.id, name=name,
                                 login_name=mb.user_principal_name,
                                 primary_smtp_address=mb.primary_smtp_address,
                                 display_name=mb.display_name)


@REGISTRY.cmdlet(
    "Test-SmtpRelay",
    synopsis="Explains what the SMTP server would do with one client: the connector "
             "chosen and why, each right and where it comes from, and the reply at each "
             "command.",
    description="Computed by the same policy code the SMTP server enforces, against the "
                "organisation configuration as it is now. With -User the client is "
                "assumed to authenticate (after STARTTLS when offered) as that mailbox; "
                "without it the client stays anonymous.",
    params=(
        ParamSpec("LocalEndPoint", mandatory=True,
                  help="The address and port the client connects to, e.g. 10.0.0.50:25."),
        ParamSpec("RemoteIPAddress", mandatory=True, help="The client's address."),
        ParamSpec("Sender", mandatory=True, help="The MAIL FROM address (<> for none)."),
        ParamSpec("Recipient", "list", mandatory=True, help="One or more RCPT TO addresses."),
        ParamSpec("User", help="Authenticate as this mailbox (name, address or UPN)."),
        ParamSpec("Tls", "switch", help="The connection is already in TLS."),
        ParamSpec("Size", "int", minimum=0, help="A SIZE= value for MAIL FROM."),
    ),
    examples=("Test-SmtpRelay -LocalEndPoint 10.0.0.50:25 -RemoteIPAddress 10.0.0.80 "
              "-Sender printer@example.test -Recipient alice@outlook.test",),
)
async def test_smtp_relay(inv: Invocation) -> list[Output]:
    principal = None
    if inv.get("User") is not None:
        principal = await _principal_for(inv, str(inv.args["User"]))
    _store(inv)
    policy = SmtpPolicy(inv.ctx.store, server_name=inv.ctx.server_name, refresh_interval=0)
    recipients = [str(text) for text in inv.args["Recipient"]  # type: ignore[attr-defined]
                  if str(text)]
    size = inv.get("Size")
    try:
        report = await explain_relay(
            policy, local_endpoint=str(inv.args["LocalEndPoint"]),
            remote_ip=str(inv.args["RemoteIPAddress"]), sender=str(inv.args["Sender"]),
            recipients=recipients, principal=principal, tls=inv.get("Tls") is True,
            size=None if size is None else int(size))  # type: ignore[call-overload]
    except ValueError as exc:
        raise _fail(inv, str(exc)) from None
    return ["\n".join(report.lines)]
