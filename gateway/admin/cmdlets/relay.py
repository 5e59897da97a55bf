"""Relay cmdlets: send connectors, queues and messages, and the message tracking log.

Semantics follow Exchange (reference exchange-semantics.md §7-8):

* New/Get/Set/Remove-SendConnector: ``-AddressSpaces`` ``domain[;cost]`` (``*``,
  ``example.test``, ``*.example.test``; the most specific match wins, then the lowest
  cost), ``-SmartHosts`` (``host``, ``host:port``, ``[192.0.2.1]``) or
  ``-DNSRoutingEnabled`` (MX), ``-Port``, ``-RequireTLS``, ``-SmartHostAuthMechanism
  BasicAuth|BasicAuthRequireTLS`` with ``-AuthenticationUserName`` and
  ``-AuthenticationPassword`` (never shown), ``-Enabled``;
* Get-Queue groups waiting recipients by next hop (``mailbox`` for local delivery,
  the domain for remote); Retry-Queue makes retrying recipients due now;
* Get-Message, Suspend-Message, Resume-Message, Remove-Message ``-WithNDR`` act on
  one queued message by its queue id (``123`` or Exchange's ``server\\queue\\123``);
* Get-MessageTrackingLog reads ``store.tracking`` (-Sender, -Recipients, -MessageId,
  -EventId, -Start, -End, -ResultSize; default 1000 as in Exchange).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.admin.cmdlets import lookup
from gateway.admin.errors import CmdletError
from gateway.admin.registry import REGISTRY, SHOULD_PROCESS, Invocation, Output, ParamSpec, Record
from gateway.errors import GatewayError, NotFound, ValidationError

SC_TYPE = "SendConnector"
AUTH_CHOICES = ("None", "BasicAuth", "BasicAuthRequireTLS")
EVENT_CHOICES = ("RECEIVE", "SEND", "DELIVER", "DEFER", "FAIL", "DSN", "DROP", "EXPAND",
                 "RESOLVE", "REDIRECT", "SUBMIT", "POISONMESSAGE")
MAX_RESULT_SIZE = 10_000


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def connector_record(c: Any) -> Record:
    return Record(SC_TYPE, c.name, {
        "Name": c.name,
        "AddressSpaces": [f"SMTP:{s.domain};{s.cost}" for s in c.address_spaces],
        "SmartHosts": list(c.smart_hosts),
        "DNSRoutingEnabled": c.dns_routing_enabled,
        "Port": c.port,
        "RequireTLS": c.require_tls,
        "SmartHostAuthMechanism": c.auth_mechanism,
        "AuthenticationUserName": c.auth_username,
        "MaxPerDomainOutboundConnections": c.max_per_domain,
        "Enabled": c.enabled,
        "Identity": c.name,
        "Id": c.id,
    }, ("Identity", "AddressSpaces", "Enabled"))


def _part(inv: Invocation, name: str) -> Any:
    """``store.queue`` / ``store.send_connectors`` / ``store.tracking``, or a clear
    error when the context's store has none (a store without the relay engine)."""
    part = getattr(inv.ctx.store, name, None)
    if part is None:
        raise CmdletError(f"{inv.cmdlet.name}: this store has no relay {name}.")
    return part


def _fail(inv: Invocation, exc: Exception) -> CmdletError:
    return CmdletError(f"{inv.cmdlet.name}: {exc}")


def _strings(value: object) -> list[str]:
    items = value if isinstance(value, list | tuple) else [value]
    return [p.strip() for item in items for p in str(item).split(",") if p.strip()]


def _connector_changes(inv: Invocation) -> dict[str, object]:
    from gateway.relay.routing import parse_address_space, parse_smart_host

    changes: dict[str, object] = {}
    try:
        if inv.has("AddressSpaces"):
            changes["address_spaces"] = tuple(
                parse_address_space(s) for s in _strings(inv.args["AddressSpaces"]))
        if inv.has("SmartHosts"):
            hosts = tuple(_strings(inv.args["SmartHosts"]))
            for h in hosts:
                parse_smart_host(h, 25)
            changes["smart_hosts"] = hosts
    except ValidationError as exc:
        raise _fail(inv, exc) from None
    simple = {"DNSRoutingEnabled": "dns_routing_enabled", "Port": "port",
              "RequireTLS": "require_tls", "SmartHostAuthMechanism": "auth_mechanism",
              "AuthenticationUserName": "auth_username",
              "AuthenticationPassword": "auth_password", "Enabled": "enabled",
              "MaxPerDomainOutboundConnections": "max_per_domain"}
    for param, field in simple.items():
        if inv.has(param):
            changes[field] = inv.args[param] if inv.args[param] is not None else ""
    return changes


_SC_PARAMS = (
    ParamSpec("AddressSpaces", "list",
              help="Domains this connector sends to: *, example.test or *.example.test, "
                   "each optionally ;cost (1-100, default 1)."),
    ParamSpec("SmartHosts", "list",
              help="Relay through these hosts (host, host:port or [IP]) instead of MX."),
    ParamSpec("DNSRoutingEnabled", "bool",
              help="Route by MX records (default: true unless -SmartHosts is given)."),
    ParamSpec("Port", "int", minimum=1, maximum=65535, help="Destination port (25)."),
    ParamSpec("RequireTLS", "bool",
              help="Send only over TLS (STARTTLS); otherwise TLS is opportunistic."),
    ParamSpec("SmartHostAuthMechanism", "enum", choices=AUTH_CHOICES,
              help="Authenticate to the smart host: BasicAuth (AUTH PLAIN/LOGIN) or "
                   "BasicAuthRequireTLS (only after STARTTLS)."),
    ParamSpec("AuthenticationUserName", max_length=256,
              help="User name for smart-host BasicAuth."),
    ParamSpec("AuthenticationPassword", secret=True, max_length=1024, nullable=True,
              help="Password for smart-host BasicAuth (stored, never shown)."),
    ParamSpec("MaxPerDomainOutboundConnections", "int", minimum=1, maximum=1000,
              help="Concurrent connections per destination domain (20)."),
    ParamSpec("Enabled", "bool", help="Whether the connector is used ($true)."),
)


@REGISTRY.cmdlet(
    "New-SendConnector",
    synopsis="Creates a send connector: how mail for some domains leaves the organisation.",
    params=(ParamSpec("Name", mandatory=True, position=0,
                      help="A unique name (up to 64 characters)."),
            *_SC_PARAMS, *SHOULD_PROCESS),
    examples=("New-SendConnector Internet -AddressSpaces * -DNSRoutingEnabled $true",
              "New-SendConnector Relay -AddressSpaces 'outlook.test;1' "
              "-SmartHosts relay.example.test:587 -RequireTLS $true "
              "-SmartHostAuthMechanism BasicAuthRequireTLS -AuthenticationUserName relay "
              "-AuthenticationPassword (ConvertTo-SecureString 'x' -AsPlainText -Force)"),
)
async def new_send_connector(inv: Invocation) -> list[Output]:
    changes = _connector_changes(inv)
    if "address_spaces" not in changes:
        raise CmdletError("New-SendConnector: -AddressSpaces is required.")
    changes.setdefault("dns_routing_enabled", not changes.get("smart_hosts"))
    name = str(inv.args["Name"]).strip()
    if not await inv.should_process("New send connector", name):
        return []
    try:
        created = await _part(inv, "send_connectors").create(name=name, **changes)
    except GatewayError as exc:
        raise _fail(inv, exc) from None
    return [connector_record(created)]


async def _connectors(inv: Invocation, identity: str | None) -> list[Any]:
    found = await _part(inv, "send_connectors").list()
    if identity is None:
        return list(found)
    chosen = [c for c in found if lookup.matches(identity, c.name) or str(c.id) == identity]
    if not chosen and not any(ch in identity for ch in "*?"):
        raise CmdletError(f"{inv.cmdlet.name}: the send connector '{identity}' was not found.")
    return chosen


async def _one_connector(inv: Invocation) -> Any:
    identity = str(inv.args["Identity"])
    try:
        return await _part(inv, "send_connectors").get(identity)
    except NotFound:
        raise CmdletError(f"{inv.cmdlet.name}: the send connector '{identity}' was not "
                          "found.") from None


_SC_IDENTITY = ParamSpec("Identity", mandatory=True, position=0, pipeline=True,
                         help="The send connector's name.")


@REGISTRY.cmdlet(
    "Get-SendConnector",
    synopsis="Lists the send connectors, or shows one.",
    params=(ParamSpec("Identity", position=0, pipeline=True,
                      help="Name; wildcards * and ? are allowed."),),
    pipeline_types=(SC_TYPE,),
    examples=("Get-SendConnector", "Get-SendConnector Internet | Format-List"),
)
async def get_send_connector(inv: Invocation) -> list[Output]:
    identity = inv.get("Identity")
    return [connector_record(c) for c in
            await _connectors(inv, None if identity is None else str(identity))]


@REGISTRY.cmdlet(
    "Set-SendConnector",
    synopsis="Changes a send connector.",
    params=(_SC_IDENTITY, ParamSpec("Name", help="A new name."), *_SC_PARAMS,
            *SHOULD_PROCESS),
    pipeline_types=(SC_TYPE,),
    examples=("Set-SendConnector Internet -SmartHosts relay.example.test "
              "-DNSRoutingEnabled $false", "Set-SendConnector Internet -Enabled $false"),
)
async def set_send_connector(inv: Invocation) -> list[Output]:
    current = await _one_connector(inv)
    changes = _connector_changes(inv)
    if inv.has("Name"):
        changes["name"] = str(inv.args["Name"]).strip()
    changes = {k: v for k, v in changes.items() if getattr(current, k) != v}
    if not changes:
        inv.warn_unchanged(current.name)
        return []
    if not await inv.should_process("Set send connector", current.name):
        return []
    try:
        await _part(inv, "send_connectors").update(current.id, **changes)
    except GatewayError as exc:
        raise _fail(inv, exc) from None
    return []


@REGISTRY.cmdlet(
    "Remove-SendConnector",
    synopsis="Removes a send connector.",
    params=(_SC_IDENTITY, *SHOULD_PROCESS),
    pipeline_types=(SC_TYPE,),
    confirm_impact="High",
    examples=("Remove-SendConnector Internet -Confirm:$false",),
)
async def remove_send_connector(inv: Invocation) -> list[Output]:
    current = await _one_connector(inv)
    if not await inv.should_process("Remove send connector", current.name):
        return []
    await _part(inv, "send_connectors").delete(current.id)
    return []


# -- queues and messages ------------------------------------------------------------------

def _recipient_status(r: Any, now: float) -> str:
    if r.status in ("ready", "retry") and r.lease_until > now:
        return "Active"
    return r.status.capitalize()


def _queue_name(inv: Invocation, next_hop: str) -> str:
    return f"{inv.ctx.server_name}\\{next_hop}"


def message_record(inv: Invocation, m: Any) -> Record:
    now = datetime.now(UTC).timestamp()
    waiting = [r for r in m.recipients if r.status not in ("delivered", "failed")]
    statuses = {_recipient_status(r, now) for r in waiting}
    status = next((s for s in ("Active", "Retry", "Ready", "Suspended") if s in statuses),
                  "PendingRemove")
    hops = sorted({r.next_hop for r in waiting}) or sorted({r.next_hop for r in m.recipients})
    last_error = next((r.last_error for r in waiting if r.last_error), "")
    return Record("Message", str(m.id), {
        "Identity": f"{_queue_name(inv, hops[0] if hops else '')}\\{m.id}",
        "FromAddress": m.sender or "<>",
        "Status": status,
        "Size": m.size,
        "Subject": m.subject,
        "InternetMessageId": m.message_id,
        "Recipients": [f"{r.address};{r.status.capitalize()};{r.last_error}".rstrip(";")
                       for r in m.recipients],
        "Queue": [_queue_name(inv, h) for h in hops],
        "RetryCount": max((r.attempts for r in m.recipients), default=0),
        "LastError": last_error,
        "DateReceived": _iso(m.created_at),
        "ExpirationTime": _iso(m.expires_at),
        "Source": m.source,
        "SourceIP": m.client_ip,
        "QueueId": m.id,
    }, ("Identity", "FromAddress", "Status", "Size", "Subject"))


def _queue_id(inv: Invocation) -> int:
    text = str(inv.args["Identity"]).strip().rsplit("\\", 1)[-1]
    if not text.isdigit() or len(text) > 18:
        raise CmdletError(f"{inv.cmdlet.name}: '{inv.args['Identity']}' is not a message "
                          "identity (the queue id, e.g. 123, or server\\queue\\123).")
    return int(text)


async def _message(inv: Invocation) -> Any:
    qid = _queue_id(inv)
    try:
        return await _part(inv, "queue").get_message(qid)
    except NotFound:
        raise CmdletError(f"{inv.cmdlet.name}: the message '{qid}' is not in any queue."
                          ) from None


_MSG_IDENTITY = ParamSpec("Identity", mandatory=True, position=0, pipeline=True,
                          help="The queued message: its id (Get-Message shows it).")


@REGISTRY.cmdlet(
    "Get-Queue",
    synopsis="Shows the delivery queues: waiting recipients grouped by next hop.",
    params=(ParamSpec("Identity", position=0,
                      help="A queue: its next hop (a domain, or 'mailbox' for local "
                           "delivery), optionally as server\\nexthop; wildcards allowed."),),
    examples=("Get-Queue", "Get-Queue outlook.test | Format-List"),
)
async def get_queue(inv: Invocation) -> list[Output]:
    now = datetime.now(UTC).timestamp()
    groups: dict[str, list[Any]] = {}
    for m in await _part(inv, "queue").list_messages(limit=MAX_RESULT_SIZE):
        for r in m.recipients:
            if r.status not in ("delivered", "failed"):
                groups.setdefault(r.next_hop, []).append(r)
    identity = inv.get("Identity")
    pattern = None if identity is None else str(identity).rsplit("\\", 1)[-1]
    out: list[Output] = []
    for hop in sorted(groups):
        if pattern is not None and not lookup.matches(pattern, hop):
            continue
        rs = groups[hop]
        statuses = {_recipient_status(r, now) for r in rs}
        status = next(s for s in ("Active", "Retry", "Ready", "Suspended") if s in statuses)
        retrying = [r for r in rs if r.status == "retry"]
        out.append(Record("Queue", _queue_name(inv, hop), {
            "Identity": _queue_name(inv, hop),
            "DeliveryType": "MapiDelivery" if hop == "mailbox" else "SmtpRelay",
            "NextHopDomain": hop,
            "Status": status,
            "MessageCount": len({r.queue_id for r in rs}),
            "RecipientCount": len(rs),
            "LastError": next((r.last_error for r in retrying if r.last_error), ""),
            "NextRetryTime": _iso(min(r.next_attempt for r in retrying)) if retrying else None,
        }, ("Identity", "DeliveryType", "Status", "MessageCount", "NextHopDomain")))
    return out


@REGISTRY.cmdlet(
    "Retry-Queue",
    synopsis="Retries a queue now: every recipient waiting to retry becomes due.",
    params=(ParamSpec("Identity", position=0, pipeline=True,
                      help="The queue (its next hop); every queue when omitted."),
            *SHOULD_PROCESS),
    pipeline_types=("Queue",),
    examples=("Retry-Queue outlook.test", "Get-Queue | Retry-Queue"),
)
async def retry_queue(inv: Invocation) -> list[Output]:
    identity = inv.get("Identity")
    hop = None if identity is None else str(identity).rsplit("\\", 1)[-1].lower()
    if not await inv.should_process("Retry queue", hop or "all queues"):
        return []
    if await _part(inv, "queue").retry_now(hop) == 0:
        inv.warn(f"No recipient is waiting to retry in {hop or 'any queue'}.")
    return []


@REGISTRY.cmdlet(
    "Get-Message",
    synopsis="Lists queued messages, or shows one.",
    params=(ParamSpec("Identity", position=0, help="The message id."),
            ParamSpec("Queue", help="Only messages waiting in this queue (next hop)."),
            ParamSpec("ResultSize", "int", minimum=1, maximum=MAX_RESULT_SIZE,
                      help="At most this many messages (1000).")),
    examples=("Get-Message", "Get-Message -Queue outlook.test", "Get-Message 42 | fl"),
)
async def get_message(inv: Invocation) -> list[Output]:
    if inv.has("Identity"):
        return [message_record(inv, await _message(inv))]
    limit = int(inv.get("ResultSize", 1000))  # type: ignore[call-overload]
    rows = await _part(inv, "queue").list_messages(limit=limit)
    queue = inv.get("Queue")
    if queue is not None:
        hop = str(queue).rsplit("\\", 1)[-1].lower()
        rows = [m for m in rows if any(r.next_hop == hop and r.status not in
                                       ("delivered", "failed") for r in m.recipients)]
    return [message_record(inv, m) for m in rows]


@REGISTRY.cmdlet(
    "Suspend-Message",
    synopsis="Suspends a queued message: it is not delivered until resumed.",
    params=(_MSG_IDENTITY, *SHOULD_PROCESS),
    pipeline_types=("Message",),
    examples=("Suspend-Message 42",),
)
async def suspend_message(inv: Invocation) -> list[Output]:
    m = await _message(inv)
    if await inv.should_process("Suspend message", str(m.id)):
        await _part(inv, "queue").set_suspended(m.id, True)
    return []


@REGISTRY.cmdlet(
    "Resume-Message",
    synopsis="Resumes a suspended message: it is delivered at once.",
    params=(_MSG_IDENTITY, *SHOULD_PROCESS),
    pipeline_types=("Message",),
    examples=("Resume-Message 42",),
)
async def resume_message(inv: Invocation) -> list[Output]:
    m = await _message(inv)
    if await inv.should_process("Resume message", str(m.id)):
        await _part(inv, "queue").set_suspended(m.id, False)
    return []


@REGISTRY.cmdlet(
    "Remove-Message",
    synopsis="Removes a queued message, optionally sending its sender an NDR.",
    params=(_MSG_IDENTITY,
            ParamSpec("WithNDR", "bool",
                      help="Send the sender a non-delivery report for the recipients "
                           "not yet delivered ($true by default in Exchange: here too)."),
            *SHOULD_PROCESS),
    pipeline_types=("Message",),
    confirm_impact="High",
    examples=("Remove-Message 42 -WithNDR $false -Confirm:$false",),
)
async def remove_message(inv: Invocation) -> list[Output]:
    from gateway.relay.engine import Relay
    from gateway.relay.routing import StaticResolver

    m = await _message(inv)
    if not await inv.should_process("Remove message", str(m.id)):
        return []
    relay = Relay(inv.ctx.store, server_name=inv.ctx.server_name, resolver=StaticResolver())
    try:
        await relay.remove_message(m.id, with_ndr=inv.get("WithNDR", True) is True)
    except NotFound:
        raise CmdletError(f"Remove-Message: the message '{m.id}' is not in any queue."
                          ) from None
    return []


# -- message tracking -----------------------------------------------------------------------

def _time(inv: Invocation, param: str) -> float | None:
    if not inv.has(param):
        return None
    text = str(inv.args[param]).strip()
    for fmt in ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CmdletError(f"{inv.cmdlet.name}: -{param}: '{text}' is not a date and time "
                          "(use 2026-11-28T10:00:00Z or 11/28/2026 10:00).") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def tracking_record(e: Any) -> Record:
    return Record("MessageTrackingEvent", str(e.id), {
        "Timestamp": _iso(e.at),
        "EventId": e.event_id,
        "Source": e.source,
        "Sender": e.sender_address,
        "Recipients": list(e.recipients),
        "RecipientStatus": list(e.recipient_status),
        "MessageSubject": e.message_subject,
        "MessageId": e.message_id,
        "InternalMessageId": e.internal_message_id,
        "TotalBytes": e.total_bytes,
        "ClientIp": e.client_ip,
        "ClientHostname": e.client_hostname,
        "ServerHostname": e.server_hostname,
        "ConnectorId": e.connector_id,
        "Directionality": e.directionality,
    }, ("Timestamp", "EventId", "Source", "Sender", "Recipients", "MessageSubject"))


@REGISTRY.cmdlet(
    "Get-MessageTrackingLog",
    synopsis="Searches the message tracking log (RECEIVE, DELIVER, SEND, DEFER, FAIL, DSN).",
    params=(
        ParamSpec("Sender", max_length=320, help="The envelope sender address."),
        ParamSpec("Recipients", "list", help="Events for any of these recipients."),
        ParamSpec("MessageId", max_length=998, help="The Message-ID header, with <>."),
        ParamSpec("EventId", "enum", choices=EVENT_CHOICES, help="Only this event."),
        ParamSpec("Start", help="From this time (UTC; ISO 8601 or MM/dd/yyyy HH:mm)."),
        ParamSpec("End", help="Until this time (exclusive)."),
        ParamSpec("ResultSize", "int", minimum=1, maximum=MAX_RESULT_SIZE,
                  help="At most this many events (1000)."),
    ),
    examples=("Get-MessageTrackingLog -Sender bob@example.test -EventId FAIL",
              "Get-MessageTrackingLog -Recipients alice@outlook.test -Start 2026-11-28"),
)
async def get_message_tracking_log(inv: Invocation) -> list[Output]:
    limit = int(inv.get("ResultSize", 1000))  # type: ignore[call-overload]
    start, end = _time(inv, "Start"), _time(inv, "End")
    recipients = _strings(inv.args["Recipients"]) if inv.has("Recipients") else [None]
    seen: dict[int, Any] = {}
    for recipient in recipients:
        try:
            events = await _part(inv, "tracking").search(
                sender=inv.get("Sender"), recipient=recipient,
                message_id=inv.get("MessageId"), event_id=inv.get("EventId"),
                start=start, end=end, limit=limit)
        except ValidationError as exc:
            raise _fail(inv, exc) from None
        seen.update({e.id: e for e in events})
    ordered = sorted(seen.values(), key=lambda e: (e.at, e.id))[:limit]
    return [tracking_record(e) for e in ordered]


# -- transport settings (Exchange's Get-/Set-TransportService) ----------------------------

# parameter -> (settings key, is a TimeSpan)
_TRANSPORT_PARAMS: dict[str, tuple[str, bool]] = {
    "MessageExpirationTimeout": ("message_expiration_timeout", True),
    "DelayNotificationTimeout": ("delay_notification_timeout", True),
    "TransientFailureRetryCount": ("transient_failure_retry_count", False),
    "TransientFailureRetryInterval": ("transient_failure_retry_interval", True),
    "MessageRetryInterval": ("message_retry_interval", True),
    "OutboundConnectionFailureRetryInterval": ("outbound_connection_failure_retry_interval",
                                               True),
    "MaxHopCount": ("max_hop_count", False),
}


async def _transport_settings(inv: Invocation) -> tuple[dict[str, Any], Any]:
    from gateway.relay.settings import SECTION, TransportSettings

    stored = await inv.ctx.org.get_settings(SECTION)
    try:
        return dict(stored), TransportSettings.from_values(dict(stored))
    except ValidationError as exc:
        raise _fail(inv, exc) from None


def _transport_record(inv: Invocation, settings: Any) -> Record:
    from gateway.connectors.values import format_timespan

    props: dict[str, object] = {"Identity": inv.ctx.server_name}
    for param, (key, span) in _TRANSPORT_PARAMS.items():
        value = getattr(settings, key)
        props[param] = format_timespan(value) if span else value
    return Record("TransportService", inv.ctx.server_name, props,
                  ("Identity", "MessageExpirationTimeout", "DelayNotificationTimeout"))


@REGISTRY.cmdlet(
    "Get-TransportService",
    synopsis="Shows the relay's retry, expiry and notification intervals.",
    description="The values are organisation-wide (every node uses them), unlike "
                "Exchange's per-server settings.",
    params=(ParamSpec("Identity", position=0, help="Accepted for compatibility."),),
    examples=("Get-TransportService | Format-List",),
)
async def get_transport_service(inv: Invocation) -> list[Output]:
    _, settings = await _transport_settings(inv)
    return [_transport_record(inv, settings)]


@REGISTRY.cmdlet(
    "Set-TransportService",
    synopsis="Changes the relay's retry, expiry and notification intervals.",
    description="TimeSpans are [d.]hh:mm:ss. Defaults (Exchange): MessageExpirationTimeout "
                "2.00:00:00, DelayNotificationTimeout 04:00:00, TransientFailureRetryCount "
                "6, TransientFailureRetryInterval 00:05:00, MessageRetryInterval 00:15:00, "
                "OutboundConnectionFailureRetryInterval 00:10:00, MaxHopCount 50.",
    params=(
        ParamSpec("Identity", position=0, help="Accepted for compatibility."),
        *(ParamSpec(p, "int" if not span else "str", minimum=0 if not span else None,
                    maximum=500 if not span else None,
                    help="A TimeSpan." if span else "A count.")
          for p, (_, span) in _TRANSPORT_PARAMS.items()),
        *SHOULD_PROCESS,
    ),
    examples=("Set-TransportService -MessageExpirationTimeout 1.00:00:00",
              "Set-TransportService -DelayNotificationTimeout 08:00:00"),
)
async def set_transport_service(inv: Invocation) -> list[Output]:
    from gateway.connectors.values import parse_timespan
    from gateway.relay.settings import SECTION, TransportSettings

    stored, _ = await _transport_settings(inv)
    changes: dict[str, object] = {}
    for param, (key, span) in _TRANSPORT_PARAMS.items():
        if not inv.has(param):
            continue
        if span:
            try:
                changes[key] = parse_timespan(str(inv.args[param]))
            except ValueError as exc:
                raise CmdletError(f"Set-TransportService: -{param}: {exc}") from None
        else:
            changes[key] = int(inv.args[param])  # type: ignore[call-overload]
    if not changes:
        inv.warn_unchanged(inv.ctx.server_name)
        return []
    try:
        TransportSettings.from_values({**stored, **changes})
    except ValidationError as exc:
        raise _fail(inv, exc) from None
    if await inv.should_process("Set transport service", inv.ctx.server_name):
        await inv.ctx.org.set_settings(SECTION, changes)
    return []
