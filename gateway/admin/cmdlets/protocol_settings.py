"""IMAP4 and POP3 service settings: Get/Set-ImapSettings and Get/Set-PopSettings.

The settings live in the store's ``"imap"`` and ``"pop"`` sections; the model, its
defaults, valid ranges and the login-type policy are ``gateway.protocol_settings``
(docs/protocol-settings.md). Timeouts take Exchange's TimeSpan form ``[d.]hh:mm:ss``
(e.g. ``00:30:00``); bindings are comma lists of ``IP:port`` / ``[IPv6]:port``.
``$null`` puts a setting back to its default (for bindings: the node's quick-start
bindings). Running services re-read the settings when the organisation changes, so
a change applies on every node without a restart.
"""

from __future__ import annotations

import re

from gateway.admin.errors import CmdletError
from gateway.admin.registry import REGISTRY, SHOULD_PROCESS, Invocation, Output, ParamSpec, Record
from gateway.config import DEFAULT_BINDINGS, Endpoint, parse_endpoint
from gateway.protocol_settings import (
    AUTH_TIMEOUT_RANGE,
    LOGIN_TYPES,
    MAX_CONNECTIONS_PER_USER_LIMIT,
    PRE_AUTH_TIMEOUT_RANGE,
    ProtocolName,
    ProtocolSettings,
    to_section,
)

_TIMESPAN = re.compile(r"^(?:(\d{1,5})\.)?(\d{1,2}):(\d{2}):(\d{2})$")

# parameter -> settings key
_PARAMS: dict[str, str] = {
    "LoginType": "login_type",
    "UnencryptedOrTLSBindings": "unencrypted_or_tls_bindings",
    "SSLBindings": "ssl_bindings",
    "MaxConnectionsPerUser": "max_connections_per_user",
    "PreAuthenticatedConnectionTimeout": "pre_authenticated_connection_timeout",
    "AuthenticatedConnectionTimeout": "authenticated_connection_timeout",
    "Banner": "banner",
}
_LABELS: dict[ProtocolName, tuple[str, str]] = {
    "imap": ("IMAP4", "ImapSettings"),
    "pop": ("POP3", "PopSettings"),
}


def parse_timespan(text: str, where: str) -> float:
    """Exchange TimeSpan ``[d.]hh:mm:ss`` to seconds."""
    m = _TIMESPAN.match(text.strip())
    if not m or int(m.group(3)) > 59 or int(m.group(4)) > 59 or int(m.group(2)) > 23:
        raise CmdletError(f"{where}: '{text[:40]}' is not a TimeSpan such as 00:30:00 "
                          "([d.]hh:mm:ss).")
    days, hours, minutes, seconds = (int(g or 0) for g in m.groups())
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def format_timespan(seconds: float) -> str:
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}.{text}" if days else text


def _quick_start_bindings() -> dict[str, tuple[Endpoint, ...]]:
    """The node defaults the admin shell can know: the quick-start bindings (a node
    with its own ``bindings`` in its settings file uses those instead)."""
    return {name: tuple(parse_endpoint(e) for e in endpoints)
            for name, endpoints in DEFAULT_BINDINGS.items()}


async def _current(inv: Invocation, protocol: ProtocolName) -> ProtocolSettings:
    values = await inv.ctx.org.get_settings(protocol)
    settings, _problems = ProtocolSettings.from_section(protocol, values,
                                                        _quick_start_bindings())
    return settings


def settings_record(settings: ProtocolSettings, server: str) -> Record:
    protocol_name, type_name = _LABELS[settings.protocol]
    props: dict[str, object] = {
        "Name": protocol_name,
        "Server": server,
        "ProtocolName": protocol_name,
        "LoginType": settings.login_type,
        "UnencryptedOrTLSBindings": [str(e) for e in settings.unencrypted_or_tls_bindings],
        "SSLBindings": [str(e) for e in settings.ssl_bindings],
        "MaxConnectionsPerUser": settings.max_connections_per_user,
        "PreAuthenticatedConnectionTimeout": format_timespan(
            settings.pre_authenticated_connection_timeout),
        "AuthenticatedConnectionTimeout": format_timespan(
            settings.authenticated_connection_timeout),
        "Banner": settings.banner,
    }
    return Record(type_name, server, props,
                  ("UnencryptedOrTLSBindings", "SSLBindings", "LoginType"))


def _changes(inv: Invocation, cmdlet: str) -> dict[str, object]:
    """Validated changes keyed by settings key (None: back to the default)."""
    raw: dict[str, object] = {}
    for param, key in _PARAMS.items():
        if param not in inv.args:
            continue
        value = inv.args[param]
        where = f"{cmdlet}: parameter '{param}'"
        if value is not None and key.endswith("_timeout"):
            value = parse_timespan(str(value), where)
        try:
            raw.update(to_section({key: value}))
        except ValueError as exc:
            raise CmdletError(f"{where}: {exc}.") from None
    return raw


async def _set(inv: Invocation, protocol: ProtocolName, cmdlet: str) -> list[Output]:
    changes = _changes(inv, cmdlet)
    stored = await inv.ctx.org.get_settings(protocol)
    changes = {k: v for k, v in changes.items() if stored.get(k) != v}
    _name, type_name = _LABELS[protocol]
    if not changes:
        inv.warn_unchanged(type_name)
        return []
    if not await inv.should_process(f"Set {type_name}", inv.ctx.server_name):
        return []
    await inv.ctx.org.set_settings(protocol, changes)
    return []


def _set_params(protocol_name: str, plain_port: int, ssl_port: int) -> tuple[ParamSpec, ...]:
    lo_pre, hi_pre = PRE_AUTH_TIMEOUT_RANGE
    lo_auth, hi_auth = AUTH_TIMEOUT_RANGE
    return (
        ParamSpec("LoginType", "enum", choices=LOGIN_TYPES,
                  help="SecureLogin (default): no credentials before TLS; "
                       "PlainTextAuthentication: only integrated (NTLM/GSSAPI) SASL "
                       "without TLS; PlainTextLogin: clear-text logins allowed."),
        ParamSpec("UnencryptedOrTLSBindings", "list", nullable=True,
                  help=f"IP:port list of the plain {protocol_name} listeners (STARTTLS/STLS), "
                       f"e.g. 0.0.0.0:{plain_port},[::]:{plain_port}; $null: the node default."),
        ParamSpec("SSLBindings", "list", nullable=True,
                  help=f"IP:port list of the implicit TLS listeners, e.g. 0.0.0.0:{ssl_port}; "
                       "$null: the node default."),
        ParamSpec("MaxConnectionsPerUser", "int", minimum=1,
                  maximum=MAX_CONNECTIONS_PER_USER_LIMIT,
                  help="Concurrent authenticated connections per user (default 16)."),
        ParamSpec("PreAuthenticatedConnectionTimeout", nullable=True,
                  help=f"Idle time before login, TimeSpan {format_timespan(lo_pre)} to "
                       f"{format_timespan(hi_pre)} (default 00:01:00)."),
        ParamSpec("AuthenticatedConnectionTimeout", nullable=True,
                  help=f"Idle time after login, TimeSpan {format_timespan(lo_auth)} to "
                       f"{format_timespan(hi_auth)} (default 00:30:00)."),
        ParamSpec("Banner", nullable=True, max_length=200,
                  help="The greeting text; $null: Exchange's default."),
        *SHOULD_PROCESS,
    )


@REGISTRY.cmdlet(
    "Get-ImapSettings",
    synopsis="Shows the IMAP4 service settings: login type, bindings, limits, timeouts.",
    examples=("Get-ImapSettings", "Get-ImapSettings | Format-List"),
)
async def get_imap_settings(inv: Invocation) -> list[Output]:
    return [settings_record(await _current(inv, "imap"), inv.ctx.server_name)]


@REGISTRY.cmdlet(
    "Set-ImapSettings",
    synopsis="Changes the IMAP4 service settings on every node, without a restart.",
    params=_set_params("IMAP4", 143, 993),
    examples=("Set-ImapSettings -LoginType PlainTextLogin",
              "Set-ImapSettings -SSLBindings 0.0.0.0:993,[::]:993 "
              "-UnencryptedOrTLSBindings 0.0.0.0:143,[::]:143",
              "Set-ImapSettings -MaxConnectionsPerUser 20 "
              "-AuthenticatedConnectionTimeout 01:00:00"),
)
async def set_imap_settings(inv: Invocation) -> list[Output]:
    return await _set(inv, "imap", "Set-ImapSettings")


@REGISTRY.cmdlet(
    "Get-PopSettings",
    synopsis="Shows the POP3 service settings: login type, bindings, limits, timeouts.",
    examples=("Get-PopSettings", "Get-PopSettings | Format-List"),
)
async def get_pop_settings(inv: Invocation) -> list[Output]:
    return [settings_record(await _current(inv, "pop"), inv.ctx.server_name)]


@REGISTRY.cmdlet(
    "Set-PopSettings",
    synopsis="Changes the POP3 service settings on every node, without a restart.",
    params=_set_params("POP3", 110, 995),
    examples=("Set-PopSettings -LoginType SecureLogin",
              "Set-PopSettings -SSLBindings 0.0.0.0:995 -UnencryptedOrTLSBindings $null",
              "Set-PopSettings -PreAuthenticatedConnectionTimeout 00:00:30"),
)
async def set_pop_settings(inv: Invocation) -> list[Output]:
    return await _set(inv, "pop", "Set-PopSettings")
