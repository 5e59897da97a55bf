"""The IMAP/POP settings model and the login-type policy (gateway/protocol_settings.py)."""

from __future__ import annotations

import pytest

from gateway.config import Endpoint
from gateway.protocol_settings import (
    DEFAULT_BANNERS,
    ProtocolSettings,
    UserConnectionCounter,
    advertised_mechanisms,
    load_imap_settings,
    load_pop_settings,
    login_allowed,
    login_disabled,
    offer_starttls,
    to_section,
)

NODE_BINDINGS = {
    "imap": (Endpoint("127.0.0.1", 2143),),
    "imaps": (Endpoint("127.0.0.1", 2993),),
    "pop3": (Endpoint("127.0.0.1", 2110),),
    "pop3s": (Endpoint("127.0.0.1", 2995),),
}


def settings(login_type: str = "SecureLogin") -> ProtocolSettings:
    s, problems = ProtocolSettings.from_section("imap", {"login_type": login_type})
    assert problems == []
    return s


def test_defaults_follow_exchange_and_node_bindings() -> None:
    s = ProtocolSettings.defaults("pop", NODE_BINDINGS)
    assert s.login_type == "SecureLogin"
    assert s.max_connections_per_user == 16
    assert s.pre_authenticated_connection_timeout == 60
    assert s.authenticated_connection_timeout == 1800
    assert s.banner == "The Microsoft Exchange POP3 service is ready."
    assert s.unencrypted_or_tls_bindings == (Endpoint("127.0.0.1", 2110),)
    assert s.ssl_bindings == (Endpoint("127.0.0.1", 2995),)
    i = ProtocolSettings.defaults("imap", NODE_BINDINGS)
    assert i.ssl_bindings == (Endpoint("127.0.0.1", 2993),)
    assert i.banner == DEFAULT_BANNERS["imap"]


def test_section_values_override_and_bad_values_fall_back() -> None:
    s, problems = ProtocolSettings.from_section("imap", {
        "login_type": "plaintextlogin",
        "ssl_bindings": ["0.0.0.0:993", "[::]:993", "0.0.0.0:993"],
        "max_connections_per_user": 0,
        "authenticated_connection_timeout": 600,
        "bogus": 1,
    }, NODE_BINDINGS)
    assert s.login_type == "PlainTextLogin"
    assert s.ssl_bindings == (Endpoint("0.0.0.0", 993), Endpoint("::", 993))
    assert s.unencrypted_or_tls_bindings == (Endpoint("127.0.0.1", 2143),)
    assert s.max_connections_per_user == 16
    assert s.authenticated_connection_timeout == 600
    assert len(problems) == 2
    assert s.explicit == {"login_type", "ssl_bindings", "authenticated_connection_timeout"}


@pytest.mark.parametrize("key,value", [
    ("login_type", "Kerberos"),
    ("ssl_bindings", ["localhost:993"]),
    ("ssl_bindings", ["1.2.3.4:0"]),
    ("max_connections_per_user", True),
    ("pre_authenticated_connection_timeout", 5),
    ("authenticated_connection_timeout", 86401),
    ("banner", "two\r\nlines"),
    ("banner", ""),
])
def test_invalid_values_are_refused(key: str, value: object) -> None:
    with pytest.raises(ValueError):
        to_section({key: value})


def test_to_section_round_trips() -> None:
    section = to_section({"ssl_bindings": "0.0.0.0:995,[::]:995", "login_type": "securelogin"})
    assert section == {"ssl_bindings": ["0.0.0.0:995", "[::]:995"], "login_type": "SecureLogin"}
    s, problems = ProtocolSettings.from_section("pop", section)
    assert problems == [] and s.ssl_bindings[1] == Endpoint("::", 995)


async def test_loaders_read_their_sections(store) -> None:  # type: ignore[no-untyped-def]
    await store.org.set_settings("pop", to_section({"login_type": "PlainTextLogin"}))
    pop = await load_pop_settings(store.org, NODE_BINDINGS)
    imap = await load_imap_settings(store.org, NODE_BINDINGS)
    assert pop.login_type == "PlainTextLogin" and pop.protocol == "pop"
    assert imap.login_type == "SecureLogin" and imap.protocol == "imap"


# -- the policy: every cell of the table in the module docstring --------------------------

@pytest.mark.parametrize("login_type,tls,method,mech,allowed", [
    ("PlainTextLogin", False, "clear-login", None, True),
    ("PlainTextLogin", False, "sasl", "PLAIN", True),
    ("PlainTextLogin", False, "sasl", "NTLM", True),
    ("PlainTextAuthentication", False, "clear-login", None, False),
    ("PlainTextAuthentication", False, "sasl", "PLAIN", False),
    ("PlainTextAuthentication", False, "sasl", "login", False),
    ("PlainTextAuthentication", False, "sasl", "NTLM", True),
    ("PlainTextAuthentication", False, "sasl", "GSSAPI", True),
    ("PlainTextAuthentication", False, "sasl", "X-UNKNOWN", False),
    ("SecureLogin", False, "clear-login", None, False),
    ("SecureLogin", False, "sasl", "PLAIN", False),
    ("SecureLogin", False, "sasl", "NTLM", False),
    ("SecureLogin", True, "clear-login", None, True),
    ("SecureLogin", True, "sasl", "PLAIN", True),
    ("PlainTextAuthentication", True, "clear-login", None, True),
])
def test_login_allowed(login_type: str, tls: bool, method: str, mech: str | None,
                       allowed: bool) -> None:
    d = login_allowed(settings(login_type), tls_active=tls, method=method,  # type: ignore[arg-type]
                      mechanism=mech)
    assert d.allowed is allowed and bool(d) is allowed
    assert login_type in d.reason


def test_capabilities_follow_the_policy() -> None:
    secure = settings("SecureLogin")
    assert login_disabled(secure, tls_active=False)
    assert not login_disabled(secure, tls_active=True)
    assert advertised_mechanisms(secure, tls_active=False, available=("PLAIN", "LOGIN")) == ()
    assert advertised_mechanisms(secure, tls_active=True,
                                 available=("plain", "LOGIN")) == ("PLAIN", "LOGIN")
    pta = settings("PlainTextAuthentication")
    assert advertised_mechanisms(pta, tls_active=False,
                                 available=("NTLM", "PLAIN")) == ("NTLM",)
    assert not login_disabled(settings("PlainTextLogin"), tls_active=False)
    assert offer_starttls(tls_active=False, tls_available=True)
    assert not offer_starttls(tls_active=True, tls_available=True)
    assert not offer_starttls(tls_active=False, tls_available=False)


def test_connection_counter_limits_and_releases_once() -> None:
    c = UserConnectionCounter()
    a = c.acquire(7, 2)
    b = c.acquire(7, 2)
    assert a is not None and b is not None
    assert c.acquire(7, 2) is None
    assert c.acquire(8, 2) is not None
    a.release()
    a.release()
    assert c.count(7) == 1
    assert c.acquire(7, 2) is not None
    assert c.acquire(7, 2) is None


# -- the cmdlets (gateway/admin/cmdlets/protocol_settings.py) -------------------------------

async def test_set_and_get_pop_settings_through_the_shell(store) -> None:  # type: ignore[no-untyped-def]
    from gateway.admin import AdminContext, CmdletError, run_line

    ctx = AdminContext(store=store, server_name="mail1.example.test")
    version = await store.org.version()
    await run_line(ctx, "Set-PopSettings -LoginType plaintextlogin -SSLBindings "
                        "0.0.0.0:995,[::]:995 -AuthenticatedConnectionTimeout 1.00:00:00 "
                        "-PreAuthenticatedConnectionTimeout 00:00:30 -MaxConnectionsPerUser 4 "
                        "-Banner 'POP here'")
    assert await store.org.version() > version  # nodes pick the change up
    pop = await load_pop_settings(store.org, NODE_BINDINGS)
    assert pop.login_type == "PlainTextLogin"
    assert pop.ssl_bindings == (Endpoint("0.0.0.0", 995), Endpoint("::", 995))
    assert pop.authenticated_connection_timeout == 86400
    assert pop.pre_authenticated_connection_timeout == 30
    assert pop.max_connections_per_user == 4 and pop.banner == "POP here"
    out = await run_line(ctx, "Get-PopSettings", output_format="json")
    assert '"LoginType": "PlainTextLogin"' in out and '"1.00:00:00"' in out
    await run_line(ctx, "Set-PopSettings -SSLBindings $null -Banner $null")
    pop = await load_pop_settings(store.org, NODE_BINDINGS)
    assert pop.ssl_bindings == NODE_BINDINGS["pop3s"]
    assert pop.banner == DEFAULT_BANNERS["pop"]
    imap = await run_line(ctx, "Get-ImapSettings")
    assert "SecureLogin" in imap and "127.0.0.1:2993" in imap
    for bad in ("Set-PopSettings -PreAuthenticatedConnectionTimeout 00:00:05",
                "Set-PopSettings -AuthenticatedConnectionTimeout 30",
                "Set-PopSettings -SSLBindings mail.example:995",
                "Set-ImapSettings -LoginType Kerberos",
                "Set-ImapSettings -MaxConnectionsPerUser 0",
                "Set-ImapSettings -Banner \"a`nb\""):
        with pytest.raises(CmdletError):
            await run_line(ctx, bad)
    assert (await load_imap_settings(store.org, NODE_BINDINGS)).explicit == frozenset()
