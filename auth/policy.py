"""Per-protocol authentication policy: which mechanism, for whom, on which connection.

Role: the one function every front end asks, ``mechanism_allowed(protocol, mechanism,
connection=..., settings=..., mailbox=...)``, before it offers a mechanism (``mailbox``
None) and after it knows the account (``mailbox`` given), plus ``protocol_allowed``
(Set-CASMailbox switches), which the AuthService applies to every login.

The settings mirror where Exchange keeps them (docs/authentication.md, "Per-protocol
policy"): Set-OwaVirtualDirectory (-FormsAuthentication, -BasicAuthentication,
-WindowsAuthentication), Set-ActiveSyncVirtualDirectory (-BasicAuthEnabled,
-WindowsAuthEnabled, -ClientCertAuth), Set-ImapSettings / Set-PopSettings
(-LoginType, decided by ``gateway.protocol_settings.login_allowed``) and the receive
connector's -AuthMechanism / -RequireTLS.

Invariants: pure functions; fail closed: an unknown protocol or mechanism is refused;
nothing that carries a password or an NTLM exchange is allowed on plain HTTP (web
mail, ActiveSync); every decision carries its reason (for logs and diagnostics, never
for clients).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

from gateway.protocol_settings import LOGIN_TYPES, LoginType, ProtocolSettings, login_allowed

ClientProtocol = Literal["smtp", "imap", "pop3", "owa", "activesync"]
CLIENT_PROTOCOLS: frozenset[str] = frozenset({"smtp", "imap", "pop3", "owa", "activesync"})
ClientCertAuth = Literal["Ignore", "Accepted", "Required"]
LogonFormat = Literal["FullDomain", "UserName", "PrincipalName"]
CLIENT_CERT_AUTH_VALUES: tuple[str, ...] = ("Ignore", "Accepted", "Required")
LOGON_FORMATS: tuple[str, ...] = ("FullDomain", "UserName", "PrincipalName")
#: Store sections (``store.org`` settings) of the virtual-directory cmdlets.
OWA_SECTION = "owa_virtual_directory"
ACTIVESYNC_SECTION = "activesync_virtual_directory"

#: Mechanism names the policy knows. SASL names as registered (RFC 4422); HTTP schemes
#: by their ``Authorization`` scheme; "clear-login" is IMAP LOGIN / POP3 USER+PASS;
#: "Forms" the web mail login form; "Certificate" a TLS client certificate on HTTP.
MECHANISMS: frozenset[str] = frozenset({"PLAIN", "LOGIN", "NTLM", "EXTERNAL",
                                        "clear-login", "Basic", "Negotiate", "Forms",
                                        "Certificate"})
_LINE_MECHANISMS = {"smtp": {"PLAIN", "LOGIN", "NTLM", "EXTERNAL"},
                    "imap": {"PLAIN", "LOGIN", "NTLM", "EXTERNAL", "clear-login"},
                    "pop3": {"PLAIN", "LOGIN", "NTLM", "EXTERNAL", "clear-login"}}
_HTTP_MECHANISMS = {"owa": {"Forms", "Basic", "NTLM", "Negotiate", "Certificate"},
                    "activesync": {"Basic", "NTLM", "Negotiate", "Certificate"}}


class ProtocolFlags(Protocol):
    """The Set-CASMailbox switches (``gateway.store.models.Mailbox`` and
    ``auth.directory.Account`` both have them)."""

    @property
    def owa_enabled(self) -> bool: ...
    @property
    def activesync_enabled(self) -> bool: ...
    @property
    def imap_enabled(self) -> bool: ...
    @property
    def pop_enabled(self) -> bool: ...
    @property
    def smtp_submission_enabled(self) -> bool: ...


def protocol_allowed(mailbox: ProtocolFlags, protocol: str) -> bool:
    """True when ``mailbox`` may authenticate to ``protocol``."""
    if protocol == "smtp":
        return mailbox.smtp_submission_enabled
    if protocol == "imap":
        return mailbox.imap_enabled
    if protocol == "pop3":
        return mailbox.pop_enabled
    if protocol == "owa":
        return mailbox.owa_enabled
    if protocol == "activesync":
        return mailbox.activesync_enabled
    return False


@dataclass(frozen=True)
class ConnectionFacts:
    """What the policy needs of the connection (from ``ConnectionInfo``)."""

    tls: bool
    client_certificate: bool = False  # a verified client certificate was presented


@dataclass(frozen=True)
class AuthPolicySettings:
    """The organisation's authentication settings, with Exchange's defaults.

    ``smtp_auth_mechanism`` holds the receive connector's AuthMechanism values (Tls,
    Integrated, BasicAuth, BasicAuthRequireTLS, ...): the Client Frontend connector's
    default is Tls, Integrated, BasicAuth, BasicAuthRequireTLS.
    """

    owa_forms_authentication: bool = True
    owa_basic_authentication: bool = True
    owa_windows_authentication: bool = False
    activesync_basic_auth_enabled: bool = True
    activesync_windows_auth_enabled: bool = False
    activesync_client_cert_auth: ClientCertAuth = "Ignore"
    imap_login_type: LoginType = "SecureLogin"
    pop_login_type: LoginType = "SecureLogin"
    smtp_auth_mechanism: frozenset[str] = frozenset({"Tls", "Integrated", "BasicAuth",
                                                     "BasicAuthRequireTLS"})
    smtp_require_tls: bool = False
    # Set-OwaVirtualDirectory -LogonFormat / -DefaultDomain (applied to Basic logins)
    owa_logon_format: LogonFormat = "FullDomain"
    owa_default_domain: str | None = None


@dataclass(frozen=True)
class PolicyDecision:
    """A policy answer; ``reason`` is for logs and diagnostics, not for clients."""

    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


def _no(reason: str) -> PolicyDecision:
    return PolicyDecision(False, reason)


def mechanism_allowed(protocol: str, mechanism: str, *, connection: ConnectionFacts,
                      settings: AuthPolicySettings,
                      mailbox: ProtocolFlags | None = None) -> PolicyDecision:
    """May ``mechanism`` be used for ``protocol`` on ``connection`` (by ``mailbox``,
    when known)? Mechanism names are case-insensitive for SASL, exact otherwise."""
    mech = mechanism.upper() if mechanism.upper() in {"PLAIN", "LOGIN", "NTLM",
                                                      "EXTERNAL"} else mechanism
    if protocol not in CLIENT_PROTOCOLS:
        return _no(f"unknown protocol {protocol!r}")
    if mech not in MECHANISMS:
        return _no(f"unknown mechanism {mechanism!r}")
    if protocol in _LINE_MECHANISMS:
        decision = _line_protocol(protocol, mech, connection, settings)
    else:
        decision = _http(protocol, mech, connection, settings)
    if decision and mailbox is not None and not protocol_allowed(mailbox, protocol):
        return _no(f"protocol {protocol} disabled for the mailbox")
    return decision


def offered_mechanisms(protocol: str, candidates: tuple[str, ...], *,
                       connection: ConnectionFacts,
                       settings: AuthPolicySettings) -> tuple[str, ...]:
    """Those of ``candidates`` to advertise now, in the given order."""
    return tuple(m for m in candidates if mechanism_allowed(
        protocol, m, connection=connection, settings=settings))


def _line_protocol(protocol: str, mech: str, connection: ConnectionFacts,
                   settings: AuthPolicySettings) -> PolicyDecision:
    if mech not in _LINE_MECHANISMS[protocol]:
        return _no(f"{mech} is not a {protocol} mechanism")
    if mech == "EXTERNAL":  # RFC 4422 App. A: identity from the TLS client certificate
        if not (connection.tls and connection.client_certificate):
            return _no("EXTERNAL needs a TLS client certificate")
        if protocol == "smtp" and "Tls" not in settings.smtp_auth_mechanism:
            return _no("the receive connector's AuthMechanism lacks Tls")
        return PolicyDecision(True, "client certificate presented over TLS")
    if protocol == "smtp":
        return _smtp(mech, connection, settings)
    login_type = settings.imap_login_type if protocol == "imap" else settings.pop_login_type
    verdict = login_allowed(
        ProtocolSettings(protocol="imap" if protocol == "imap" else "pop",
                         login_type=login_type),
        tls_active=connection.tls,
        method="clear-login" if mech == "clear-login" else "sasl",
        mechanism=None if mech == "clear-login" else mech)
    return PolicyDecision(verdict.allowed, verdict.reason)


def _smtp(mech: str, connection: ConnectionFacts,
          settings: AuthPolicySettings) -> PolicyDecision:
    methods = settings.smtp_auth_mechanism
    if settings.smtp_require_tls and not connection.tls:
        return _no("the receive connector requires TLS")
    if mech == "NTLM":
        if "Integrated" not in methods:
            return _no("the receive connector's AuthMechanism lacks Integrated")
        return PolicyDecision(True, "Integrated authentication")
    if "BasicAuth" not in methods:
        return _no("the receive connector's AuthMechanism lacks BasicAuth")
    if "BasicAuthRequireTLS" in methods and not connection.tls:
        return _no("BasicAuthRequireTLS: TLS first")
    return PolicyDecision(True, "BasicAuth")


def _http(protocol: str, mech: str, connection: ConnectionFacts,
          settings: AuthPolicySettings) -> PolicyDecision:
    if mech not in _HTTP_MECHANISMS[protocol]:
        return _no(f"{mech} is not offered for {protocol}")
    if not connection.tls:
        return _no(f"{mech} is never offered on plain HTTP")
    if protocol == "owa":
        enabled = {"Forms": settings.owa_forms_authentication,
                   "Basic": settings.owa_basic_authentication,
                   "NTLM": settings.owa_windows_authentication,
                   "Negotiate": settings.owa_windows_authentication,
                   "Certificate": False}[mech]
        return PolicyDecision(True, f"OWA allows {mech}") if enabled else \
            _no(f"OWA virtual directory does not allow {mech}")
    cert_mode = settings.activesync_client_cert_auth
    if mech == "Certificate":
        if cert_mode == "Ignore":
            return _no("ClientCertAuth Ignore")
        if not connection.client_certificate:
            return _no("no client certificate presented")
        return PolicyDecision(True, f"ClientCertAuth {cert_mode}")
    if cert_mode == "Required":
        return _no("ClientCertAuth Required: only certificate authentication")
    enabled = settings.activesync_basic_auth_enabled if mech == "Basic" \
        else settings.activesync_windows_auth_enabled
    return PolicyDecision(True, f"ActiveSync allows {mech}") if enabled else \
        _no(f"ActiveSync virtual directory does not allow {mech}")


# -- loading from the store (Get/Set-OwaVirtualDirectory, Get/Set-ActiveSyncVirtualDirectory,
#    Set-ImapSettings, Set-PopSettings) -----------------------------------------------------


class SettingsSource(Protocol):
    """What ``load_auth_policy`` reads: ``store.org``."""

    async def get_settings(self, section: str) -> dict[str, object]: ...


def _flag(section: dict[str, object], key: str, default: bool) -> bool:
    value = section.get(key, default)
    return value if isinstance(value, bool) else default


def _choice(section: dict[str, object], key: str, choices: tuple[str, ...],
            default: str) -> str:
    value = section.get(key, default)
    return value if isinstance(value, str) and value in choices else default


def policy_from_sections(owa: dict[str, object], activesync: dict[str, object],
                         imap: dict[str, object] | None = None,
                         pop: dict[str, object] | None = None,
                         base: AuthPolicySettings | None = None) -> AuthPolicySettings:
    """The policy from stored sections; a missing or malformed value keeps ``base``'s
    (Exchange's default), so a bad row can never open a mechanism that is off."""
    b = base or AuthPolicySettings()
    domain = owa.get("default_domain")
    return AuthPolicySettings(
        owa_forms_authentication=_flag(owa, "forms_authentication",
                                       b.owa_forms_authentication),
        owa_basic_authentication=_flag(owa, "basic_authentication",
                                       b.owa_basic_authentication),
        owa_windows_authentication=_flag(owa, "windows_authentication",
                                         b.owa_windows_authentication),
        owa_logon_format=cast(LogonFormat, _choice(owa, "logon_format", LOGON_FORMATS,
                                                   b.owa_logon_format)),
        owa_default_domain=domain if isinstance(domain, str) and domain
        else b.owa_default_domain,
        activesync_basic_auth_enabled=_flag(activesync, "basic_auth_enabled",
                                            b.activesync_basic_auth_enabled),
        activesync_windows_auth_enabled=_flag(activesync, "windows_auth_enabled",
                                              b.activesync_windows_auth_enabled),
        activesync_client_cert_auth=cast(ClientCertAuth, _choice(
            activesync, "client_cert_auth", CLIENT_CERT_AUTH_VALUES,
            b.activesync_client_cert_auth)),
        imap_login_type=cast(LoginType, _choice(imap or {}, "login_type", LOGIN_TYPES,
                                                b.imap_login_type)),
        pop_login_type=cast(LoginType, _choice(pop or {}, "login_type", LOGIN_TYPES,
                                               b.pop_login_type)),
        smtp_auth_mechanism=b.smtp_auth_mechanism,
        smtp_require_tls=b.smtp_require_tls)


async def load_auth_policy(org: SettingsSource, *,
                           base: AuthPolicySettings | None = None) -> AuthPolicySettings:
    """Read the virtual-directory and IMAP/POP sections from the store. The receive
    connector's AuthMechanism is per connector: the SMTP front end sets it on ``base``."""
    owa: dict[str, Any] = await org.get_settings(OWA_SECTION)
    activesync: dict[str, Any] = await org.get_settings(ACTIVESYNC_SECTION)
    return policy_from_sections(owa, activesync, await org.get_settings("imap"),
                                await org.get_settings("pop"), base=base)
