"""auth.policy.mechanism_allowed: one answer to "may this mechanism be used by this
principal on this connection?" for every protocol, with Exchange's settings."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from auth.policy import (
    AuthPolicySettings,
    ConnectionFacts,
    mechanism_allowed,
    offered_mechanisms,
)

TLS = ConnectionFacts(tls=True)
PLAIN_TCP = ConnectionFacts(tls=False)
CERT = ConnectionFacts(tls=True, client_certificate=True)
DEFAULTS = AuthPolicySettings()


@dataclass(frozen=True)
class Flags:
    owa_enabled: bool = True
    activesync_enabled: bool = True
    imap_enabled: bool = True
    pop_enabled: bool = True
    smtp_submission_enabled: bool = True


def allowed(protocol: str, mechanism: str, connection: ConnectionFacts = TLS,
            settings: AuthPolicySettings = DEFAULTS, mailbox: Flags | None = None) -> bool:
    return mechanism_allowed(protocol, mechanism, connection=connection,
                             settings=settings, mailbox=mailbox).allowed


@pytest.mark.parametrize("protocol,mechanism", [
    ("owa", "Forms"), ("owa", "Basic"), ("owa", "NTLM"), ("owa", "Negotiate"),
    ("activesync", "Basic"), ("activesync", "NTLM"), ("activesync", "Negotiate"),
])
def test_nothing_with_a_password_or_ntlm_on_plain_http(protocol: str, mechanism: str) -> None:
    everything = AuthPolicySettings(owa_windows_authentication=True,
                                    activesync_windows_auth_enabled=True)
    assert not allowed(protocol, mechanism, PLAIN_TCP, everything)
    assert allowed(protocol, mechanism, TLS, everything)


def test_owa_virtual_directory_switches() -> None:
    assert allowed("owa", "Forms") and allowed("owa", "Basic")
    assert not allowed("owa", "NTLM") and not allowed("owa", "Negotiate")  # Windows off
    s = AuthPolicySettings(owa_forms_authentication=False, owa_basic_authentication=False,
                           owa_windows_authentication=True)
    assert not allowed("owa", "Forms", settings=s) and not allowed("owa", "Basic", settings=s)
    assert allowed("owa", "NTLM", settings=s)
    assert not allowed("owa", "PLAIN") and not allowed("owa", "Certificate", CERT)


def test_activesync_client_cert_auth() -> None:
    assert not allowed("activesync", "Certificate", CERT)  # Ignore
    accepted = AuthPolicySettings(activesync_client_cert_auth="Accepted")
    assert allowed("activesync", "Certificate", CERT, accepted)
    assert not allowed("activesync", "Certificate", TLS, accepted)  # none presented
    assert allowed("activesync", "Basic", TLS, accepted)
    required = replace(accepted, activesync_client_cert_auth="Required")
    assert allowed("activesync", "Certificate", CERT, required)
    assert not allowed("activesync", "Basic", CERT, required)


@pytest.mark.parametrize("login_type,tls,clear,ntlm", [
    ("SecureLogin", False, False, False),
    ("SecureLogin", True, True, True),
    ("PlainTextAuthentication", False, False, True),
    ("PlainTextLogin", False, True, True),
])
def test_imap_pop_login_types(login_type: str, tls: bool, clear: bool, ntlm: bool) -> None:
    s = AuthPolicySettings(imap_login_type=login_type,  # type: ignore[arg-type]
                           pop_login_type=login_type)  # type: ignore[arg-type]
    conn = ConnectionFacts(tls=tls)
    for protocol in ("imap", "pop3"):
        assert allowed(protocol, "clear-login", conn, s) is clear
        assert allowed(protocol, "plain", conn, s) is clear
        assert allowed(protocol, "NTLM", conn, s) is ntlm


def test_smtp_receive_connector_auth_mechanism() -> None:
    assert allowed("smtp", "NTLM", PLAIN_TCP)  # Integrated: no password on the wire
    assert not allowed("smtp", "PLAIN", PLAIN_TCP)  # BasicAuthRequireTLS
    assert allowed("smtp", "PLAIN", TLS) and allowed("smtp", "LOGIN", TLS)
    basic_only = AuthPolicySettings(smtp_auth_mechanism=frozenset({"BasicAuth"}))
    assert allowed("smtp", "LOGIN", PLAIN_TCP, basic_only)
    assert not allowed("smtp", "NTLM", TLS, basic_only)
    require_tls = replace(DEFAULTS, smtp_require_tls=True)
    assert not allowed("smtp", "NTLM", PLAIN_TCP, require_tls)
    assert allowed("smtp", "EXTERNAL", CERT) and not allowed("smtp", "EXTERNAL", TLS)


def test_mailbox_switches_and_fail_closed() -> None:
    assert not allowed("imap", "PLAIN", mailbox=Flags(imap_enabled=False))
    decision = mechanism_allowed("pop3", "NTLM", connection=TLS, settings=DEFAULTS,
                                 mailbox=Flags(pop_enabled=False))
    assert decision.reason == "protocol pop3 disabled for the mailbox"
    assert not allowed("ews", "Basic") and not allowed("imap", "GSSAPI")
    assert not allowed("imap", "Forms") and not allowed("smtp", "clear-login")


def test_offered_mechanisms_in_order() -> None:
    candidates = ("NTLM", "PLAIN", "LOGIN")
    assert offered_mechanisms("smtp", candidates, connection=PLAIN_TCP,
                              settings=DEFAULTS) == ("NTLM",)
    assert offered_mechanisms("smtp", candidates, connection=TLS,
                              settings=DEFAULTS) == candidates
    assert offered_mechanisms("imap", candidates, connection=PLAIN_TCP,
                              settings=DEFAULTS) == ()
