"""Organisation settings of the IMAP4 and POP3 services, and the login-type policy.

Role: the one model of Exchange's ``Get/Set-ImapSettings`` and ``Get/Set-PopSettings``
shared by ``protocols.imap``, ``protocols.pop3`` and the admin cmdlets, plus the pure
policy answering "may this login method be used on this connection" and what the
CAPABILITY (IMAP) / CAPA (POP3) responses advertise because of it. The same functions
serve enforcement and diagnostics, so what is advertised is what is enforced.

API (stable; other packages code against it)::

    from gateway.protocol_settings import (
        ProtocolSettings, load_imap_settings, load_pop_settings, load_protocol_settings,
        login_allowed, login_disabled, advertised_mechanisms, offer_starttls,
        Decision, UserConnectionCounter, ConnectionLease,
    )

    settings = await load_imap_settings(store.org, node.settings.bindings)  # or load_pop_settings
    settings.login_type        # "PlainTextLogin" | "PlainTextAuthentication" | "SecureLogin"
    settings.unencrypted_or_tls_bindings   # tuple[Endpoint, ...]: plain port (STARTTLS / STLS)
    settings.ssl_bindings                  # tuple[Endpoint, ...]: implicit TLS port
    settings.max_connections_per_user      # int, default 16
    settings.pre_authenticated_connection_timeout  # float seconds, default 60
    settings.authenticated_connection_timeout      # float seconds, default 1800
    settings.banner                        # greeting text, Exchange's by default

    login_allowed(settings, tls_active=False, method="clear-login") -> Decision(allowed, reason)
    login_allowed(settings, tls_active=False, method="sasl", mechanism="PLAIN") -> Decision
    login_disabled(settings, tls_active=...) -> bool  # IMAP LOGINDISABLED; POP3: no USER in CAPA
    advertised_mechanisms(settings, tls_active=..., available=("PLAIN", "LOGIN")) -> tuple[str, ...]
    offer_starttls(tls_active=..., tls_available=...) -> bool     # STARTTLS / STLS

    ProtocolSettings.defaults("imap", bindings)                  # every default
    ProtocolSettings.from_section("pop", values, bindings) -> (settings, problems)
    to_section({"login_type": "securelogin"}) -> {"login_type": "SecureLogin"}  # ValueError
    settings.explicit                      # keys set in the organisation (others: defaults)

    counter = UserConnectionCounter()          # one per service (IMAP and POP3 count apart)
    lease = counter.acquire(mailbox_id, settings.max_connections_per_user)  # None: over limit
    lease.release()                            # idempotent; call in ``finally``

Storage: section ``"imap"`` or ``"pop"`` of ``store.org.get_settings/set_settings``, keys
``login_type``, ``unencrypted_or_tls_bindings``, ``ssl_bindings`` (lists of
``"IP:port"`` strings), ``max_connections_per_user``, ``pre_authenticated_connection_timeout``,
``authenticated_connection_timeout`` (seconds), ``banner``. A key absent from the section,
or null, takes its default. Binding defaults are the node settings' quick-start bindings
(``bindings["imap"]``/``["imaps"]``, ``["pop3"]``/``["pop3s"]``): the organisation value,
once set with Set-ImapSettings / Set-PopSettings, applies to every node.

Login types (exchange-semantics.md §6; Exchange 2010 EMC "Authentication" tab: "Plain
text logon (Basic authentication)", "Plain text authentication logon (Integrated Windows
authentication)", "Secure logon"). The decision, written down here and in
docs/protocol-settings.md:

=========================  ================================  ==========================
LoginType                  without TLS                       with TLS (STARTTLS or SSL)
=========================  ================================  ==========================
PlainTextLogin             every method: IMAP LOGIN,          every method
                           POP3 USER/PASS, SASL PLAIN/LOGIN
PlainTextAuthentication    only SASL mechanisms that never   every method
                           carry a clear-text password
                           (NTLM, GSSAPI: "integrated");
                           LOGIN / USER/PASS / PLAIN refused
SecureLogin (default)      nothing: LOGINDISABLED, no AUTH=  every method
                           advertised, STARTTLS/STLS first
=========================  ================================  ==========================

The plain port always accepts the connection and non-credential commands (CAPABILITY,
NOOP, STARTTLS/STLS, QUIT) whatever the login type. A SASL mechanism not known to be
integrated is treated as carrying a clear-text password (fail closed).

Invariants: ``ProtocolSettings`` is immutable and always valid (loading never raises on
bad stored values: a bad value is logged and replaced by its default); the policy
functions are pure; ``UserConnectionCounter`` never goes negative and a lease releases
its slot at most once. The counter is in-process: with several worker processes or
nodes each counts its own connections (a store-backed counter is future work, see
docs/protocol-settings.md).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from gateway.config import Endpoint, parse_endpoint

log = logging.getLogger("gateway.protocol_settings")

LoginType = Literal["PlainTextLogin", "PlainTextAuthentication", "SecureLogin"]
LOGIN_TYPES: tuple[LoginType, ...] = ("PlainTextLogin", "PlainTextAuthentication",
                                      "SecureLogin")
ProtocolName = Literal["imap", "pop"]
LoginMethod = Literal["clear-login", "sasl"]

# Exchange defaults and valid ranges (Set-ImapSettings / Set-PopSettings reference).
DEFAULT_LOGIN_TYPE: LoginType = "SecureLogin"
DEFAULT_MAX_CONNECTIONS_PER_USER = 16
MAX_CONNECTIONS_PER_USER_LIMIT = 2_147_483_647
DEFAULT_PRE_AUTH_TIMEOUT = 60.0          # 00:01:00
PRE_AUTH_TIMEOUT_RANGE = (10.0, 3600.0)  # 00:00:10 .. 01:00:00
DEFAULT_AUTH_TIMEOUT = 1800.0            # 00:30:00
AUTH_TIMEOUT_RANGE = (30.0, 86400.0)     # 00:00:30 .. 1.00:00:00
MAX_BANNER_LENGTH = 200                  # fits one reply line with room to spare
MAX_BINDINGS = 32

DEFAULT_BANNERS: dict[ProtocolName, str] = {
    "imap": "The Microsoft Exchange IMAP4 service is ready.",
    "pop": "The Microsoft Exchange POP3 service is ready.",
}
# node settings binding names: (plain / STARTTLS port, implicit TLS port)
NODE_BINDING_NAMES: dict[ProtocolName, tuple[str, str]] = {
    "imap": ("imap", "imaps"),
    "pop": ("pop3", "pop3s"),
}
# SASL mechanisms that never carry a reusable clear-text password (Exchange's
# "Integrated Windows authentication"); everything else counts as clear text.
INTEGRATED_MECHANISMS = frozenset({"NTLM", "GSSAPI"})


@dataclass(frozen=True)
class ProtocolSettings:
    """One protocol's organisation settings, with every default applied."""

    protocol: ProtocolName
    login_type: LoginType = DEFAULT_LOGIN_TYPE
    unencrypted_or_tls_bindings: tuple[Endpoint, ...] = ()
    ssl_bindings: tuple[Endpoint, ...] = ()
    max_connections_per_user: int = DEFAULT_MAX_CONNECTIONS_PER_USER
    pre_authenticated_connection_timeout: float = DEFAULT_PRE_AUTH_TIMEOUT
    authenticated_connection_timeout: float = DEFAULT_AUTH_TIMEOUT
    banner: str = ""
    # which fields came from the organisation (the rest are defaults); for Get-* output
    explicit: frozenset[str] = field(default=frozenset(), compare=False)

    @classmethod
    def defaults(cls, protocol: ProtocolName,
                 bindings: Mapping[str, Iterable[Endpoint]] | None = None) -> ProtocolSettings:
        plain, ssl = NODE_BINDING_NAMES[protocol]
        b = bindings or {}
        return cls(protocol=protocol,
                   unencrypted_or_tls_bindings=tuple(b.get(plain, ())),
                   ssl_bindings=tuple(b.get(ssl, ())),
                   banner=DEFAULT_BANNERS[protocol])

    @classmethod
    def from_section(cls, protocol: ProtocolName, values: Mapping[str, Any],
                     bindings: Mapping[str, Iterable[Endpoint]] | None = None,
                     ) -> tuple[ProtocolSettings, list[str]]:
        """Settings from a stored section; returns (settings, problems).

        A bad stored value is reported in ``problems`` and replaced by its default, so a
        service keeps running on a damaged section.
        """
        base = cls.defaults(protocol, bindings)
        changes: dict[str, Any] = {}
        problems: list[str] = []
        for key, raw in values.items():
            if raw is None:  # reset with $null: the default applies
                continue
            check = _CHECKS.get(key)
            if check is None:
                problems.append(f"{protocol}.{key}: unknown setting, ignored")
                continue
            try:
                changes[key] = check(raw)
            except ValueError as exc:
                problems.append(f"{protocol}.{key}: {exc}; using the default")
        return replace(base, explicit=frozenset(changes), **changes), problems


def to_section(changes: Mapping[str, Any]) -> dict[str, object]:
    """JSON form of validated field values (the inverse of ``from_section``); ``None``
    stays ``None`` and means "back to the default"."""
    out: dict[str, object] = {}
    for key, value in changes.items():
        if key not in _CHECKS:
            raise ValueError(f"unknown setting {key!r}")
        if value is None:
            out[key] = None
            continue
        value = _CHECKS[key](value)
        if key in ("unencrypted_or_tls_bindings", "ssl_bindings"):
            out[key] = [str(e) for e in value]
        else:
            out[key] = value
    return out


# -- validation of single values (raise ValueError with an operator-readable text) --

def check_login_type(value: object) -> LoginType:
    if isinstance(value, str):
        for name in LOGIN_TYPES:
            if value.strip().lower() == name.lower():
                return name
    raise ValueError(f"{value!r} is not one of {', '.join(LOGIN_TYPES)}")


def check_bindings(value: object) -> tuple[Endpoint, ...]:
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)):
        raise ValueError("bindings are a list of IP:port")
    if len(value) > MAX_BINDINGS:
        raise ValueError(f"at most {MAX_BINDINGS} bindings")
    out: list[Endpoint] = []
    for item in value:
        endpoint = item if isinstance(item, Endpoint) else parse_endpoint(str(item))
        if endpoint not in out:
            out.append(endpoint)
    return tuple(out)


def check_max_connections(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        else:
            raise ValueError(f"{value!r} is not a whole number")
    assert isinstance(value, int)
    if not 1 <= value <= MAX_CONNECTIONS_PER_USER_LIMIT:
        raise ValueError(f"{value} is not from 1 to {MAX_CONNECTIONS_PER_USER_LIMIT}")
    return value


def _check_seconds(value: object, bounds: tuple[float, float]) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{value!r} is not a number of seconds")
    seconds = float(value)
    low, high = bounds
    if not low <= seconds <= high:
        raise ValueError(f"{seconds:g} seconds is not from {low:g} to {high:g}")
    return seconds


def check_pre_auth_timeout(value: object) -> float:
    return _check_seconds(value, PRE_AUTH_TIMEOUT_RANGE)


def check_auth_timeout(value: object) -> float:
    return _check_seconds(value, AUTH_TIMEOUT_RANGE)


def check_banner(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("the banner is text")
    text = value.strip()
    if not text or len(text) > MAX_BANNER_LENGTH:
        raise ValueError(f"the banner is 1 to {MAX_BANNER_LENGTH} characters")
    if not text.isprintable() or not text.isascii():
        raise ValueError("the banner is printable ASCII on one line")
    return text


_CHECKS: dict[str, Any] = {
    "login_type": check_login_type,
    "unencrypted_or_tls_bindings": check_bindings,
    "ssl_bindings": check_bindings,
    "max_connections_per_user": check_max_connections,
    "pre_authenticated_connection_timeout": check_pre_auth_timeout,
    "authenticated_connection_timeout": check_auth_timeout,
    "banner": check_banner,
}
SETTING_KEYS: tuple[str, ...] = tuple(_CHECKS)


# -- loaders ------------------------------------------------------------------------------

class SettingsSource(Protocol):
    """What the loaders need of ``store.org``."""

    async def get_settings(self, section: str) -> dict[str, object]: ...


async def load_protocol_settings(org: SettingsSource, protocol: ProtocolName,
                                 bindings: Mapping[str, Iterable[Endpoint]] | None = None,
                                 ) -> ProtocolSettings:
    """Read section ``protocol`` ("imap" or "pop"); bad values are logged, not raised."""
    values = await org.get_settings(protocol)
    settings, problems = ProtocolSettings.from_section(protocol, values, bindings)
    for problem in problems:
        log.warning("organisation settings: %s", problem)
    return settings


async def load_imap_settings(org: SettingsSource,
                             bindings: Mapping[str, Iterable[Endpoint]] | None = None,
                             ) -> ProtocolSettings:
    return await load_protocol_settings(org, "imap", bindings)


async def load_pop_settings(org: SettingsSource,
                            bindings: Mapping[str, Iterable[Endpoint]] | None = None,
                            ) -> ProtocolSettings:
    return await load_protocol_settings(org, "pop", bindings)


# -- the login-type policy -------------------------------------------------------------------

@dataclass(frozen=True)
class Decision:
    """A policy answer; ``reason`` is for logs and diagnostics, not for clients."""

    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


def login_allowed(settings: ProtocolSettings, *, tls_active: bool, method: LoginMethod,
                  mechanism: str | None = None) -> Decision:
    """May credentials be presented this way on this connection (table in the docstring).

    ``method`` "clear-login" is IMAP LOGIN / POP3 USER+PASS; "sasl" is AUTHENTICATE /
    AUTH with ``mechanism`` (case-insensitive; required for "sasl").
    """
    lt = settings.login_type
    if tls_active:
        return Decision(True, f"TLS is active; {lt} allows every login method")
    if lt == "PlainTextLogin":
        return Decision(True, "LoginType PlainTextLogin allows clear-text credentials")
    if method == "sasl":
        mech = (mechanism or "").upper()
        if lt == "PlainTextAuthentication" and mech in INTEGRATED_MECHANISMS:
            return Decision(True, f"LoginType PlainTextAuthentication allows {mech} "
                                  "without TLS")
        return Decision(False, f"LoginType {lt} requires TLS before "
                               f"{mech or 'this SASL mechanism'}")
    return Decision(False, f"LoginType {lt} requires TLS before a clear-text login")


def login_disabled(settings: ProtocolSettings, *, tls_active: bool) -> bool:
    """True when the clear-text login command is refused here (IMAP ``LOGINDISABLED``,
    RFC 3501 §6.2.3; POP3: ``USER`` left out of CAPA, RFC 2449 §6.8)."""
    return not login_allowed(settings, tls_active=tls_active, method="clear-login").allowed


def advertised_mechanisms(settings: ProtocolSettings, *, tls_active: bool,
                          available: Iterable[str]) -> tuple[str, ...]:
    """The SASL mechanisms to advertise (IMAP ``AUTH=``, POP3 CAPA ``SASL``): those of
    ``available`` that ``login_allowed`` accepts now, in the given order."""
    return tuple(m.upper() for m in available
                 if login_allowed(settings, tls_active=tls_active, method="sasl",
                                  mechanism=m).allowed)


def offer_starttls(*, tls_active: bool, tls_available: bool) -> bool:
    """Advertise STARTTLS (RFC 3501 §6.2.1) / STLS (RFC 2595 §4): only before TLS, and
    only when the node has a TLS context."""
    return tls_available and not tls_active


# -- connections per user ----------------------------------------------------------------------

class ConnectionLease:
    """One counted connection; ``release()`` frees the slot once (idempotent)."""

    __slots__ = ("_counter", "_key", "_released")

    def __init__(self, counter: UserConnectionCounter, key: object) -> None:
        self._counter = counter
        self._key = key
        self._released = False

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._counter._release(self._key)


class UserConnectionCounter:
    """Authenticated connections per user for one protocol (MaxConnectionsPerUser).

    In-process only: each worker process counts its own connections. Thread-safe so a
    counter may be shared by services on different loops.
    """

    def __init__(self) -> None:
        self._counts: dict[object, int] = {}
        self._lock = threading.Lock()

    def acquire(self, key: object, limit: int) -> ConnectionLease | None:
        """Count one more connection for ``key`` (e.g. a mailbox id); ``None`` when
        ``limit`` connections are already counted."""
        with self._lock:
            current = self._counts.get(key, 0)
            if current >= limit:
                return None
            self._counts[key] = current + 1
        return ConnectionLease(self, key)

    def count(self, key: object) -> int:
        with self._lock:
            return self._counts.get(key, 0)

    def _release(self, key: object) -> None:
        with self._lock:
            current = self._counts.get(key, 0)
            if current <= 1:
                self._counts.pop(key, None)
            else:
                self._counts[key] = current - 1
