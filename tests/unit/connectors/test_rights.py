"""Permission groups → principals → extended rights, and explicit permissions (§3.1)."""

from __future__ import annotations

import pytest

from auth.principal import ANONYMOUS, Principal
from gateway.connectors import ADPermission
from gateway.connectors import rights as R
from tests.unit.connectors import org


def _rights(groups, principal, permissions=(), mech=frozenset({"Tls"})):
    c = org.connector("c", permission_groups=frozenset(groups), permissions=permissions,
                      auth_mechanism=mech)
    return R.effective_rights(c, principal)


def test_anonymous_users_group():
    r = _rights({"AnonymousUsers"}, ANONYMOUS)
    assert r.granted == {R.SUBMIT, R.ACCEPT_ANY_SENDER, R.ACCEPT_AUTHORITATIVE_DOMAIN_SENDER,
                         R.ACCEPT_ROUTING_HEADERS}
    assert _rights({"AnonymousUsers"}, org.user()).granted == frozenset()


def test_exchange_users_group():
    r = _rights({"ExchangeUsers"}, org.user())
    assert r.granted == {R.SUBMIT, R.ACCEPT_ANY_RECIPIENT, R.BYPASS_ANTI_SPAM,
                         R.ACCEPT_ROUTING_HEADERS}
    assert _rights({"ExchangeUsers"}, ANONYMOUS).granted == frozenset()


def test_server_groups():
    server = Principal(name="EXAMPLE\\MAIL2$", groups=frozenset({"EXAMPLE\\Exchange Servers"}))
    assert _rights({"ExchangeServers"}, server).granted == frozenset(R.ALL_RIGHTS)
    legacy = Principal(name="x", groups=frozenset({"EXAMPLE\\ExchangeLegacyInterop"}))
    got = _rights({"ExchangeLegacyServers"}, legacy).granted
    assert R.ACCEPT_ORGANIZATION_HEADERS not in got and R.SUBMIT in got
    partner = Principal(name="p", groups=frozenset({R.PARTNER_SERVERS}))
    assert _rights({"Partners"}, partner).granted == {R.SUBMIT, R.ACCEPT_ROUTING_HEADERS}
    secured = Principal(name="s", groups=frozenset({R.EXTERNALLY_SECURED}))
    assert _rights({"ExchangeServers"}, secured).granted == frozenset()
    got = _rights({"ExchangeServers"}, secured,
                  mech=frozenset({"Tls", "ExternalAuthoritative"})).granted
    assert R.ACCEPT_ANY_RECIPIENT in got and R.ACCEPT_FOREST_HEADERS not in got


def test_custom_group_grants_nothing_and_explicit_allow():
    assert _rights({"Custom"}, ANONYMOUS).granted == frozenset()
    r = _rights({"None"}, ANONYMOUS, (ADPermission("nt authority\\anonymous logon",
                                                   "MS-EXCH-SMTP-SUBMIT"),))
    assert r.has("ms-Exch-SMTP-Submit")
    assert "explicit permission" in r.check(R.SUBMIT).explanation


def test_explicit_user_and_deny():
    perms = (ADPermission("alice@example.test", R.ACCEPT_ANY_SENDER),
             ADPermission("NT AUTHORITY\\Authenticated Users", R.ACCEPT_ANY_RECIPIENT,
                          deny=True))
    r = _rights({"ExchangeUsers"}, org.user(1), perms)
    assert r.has(R.ACCEPT_ANY_SENDER) and not r.has(R.ACCEPT_ANY_RECIPIENT)
    assert "Deny" in r.check(R.ACCEPT_ANY_RECIPIENT).explanation
    assert not _rights({"ExchangeUsers"}, org.user(2), perms).has(R.ACCEPT_ANY_SENDER)


def test_canonical_names():
    assert R.canonical_right(" ms-exch-smtp-accept-any-recipient ") == R.ACCEPT_ANY_RECIPIENT
    with pytest.raises(ValueError, match="not a receive connector extended right"):
        R.canonical_right("ms-Exch-SMTP-Relay-Everything")
    assert R.canonical_principal("nt authority\\anonymous logon") == \
        "NT AUTHORITY\\ANONYMOUS LOGON"
