"""Connector validation (exchange-semantics.md §1.1, §2)."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.connectors.validation import check_conflicts, validate_connector
from gateway.errors import ValidationError
from tests.unit.connectors import org

BASE = org.connector("base", id=1)


@pytest.mark.parametrize(("changes", "message"), [
    ({"name": ""}, "Name must not be empty"),
    ({"name": "x" * 65}, "longer than 64"),
    ({"name": "a\\b"}, "backslash"),
    ({"bindings": ()}, "Bindings must name"),
    ({"remote_ip_ranges": ()}, "RemoteIPRanges must name"),
    ({"auth_mechanism": frozenset({"None", "Tls"})}, "None cannot be combined"),
    ({"auth_mechanism": frozenset({"Tls", "BasicAuthRequireTLS"})}, "requires BasicAuth"),
    ({"auth_mechanism": frozenset({"ExternalAuthoritative", "BasicAuth"})},
     "only be combined with Tls"),
    ({"auth_mechanism": frozenset({"ExternalAuthoritative"})}, "ExchangeServers"),
    ({"auth_mechanism": frozenset({"BasicAuth"}), "require_tls": True}, "RequireTLS requires"),
    ({"auth_mechanism": frozenset({"None"}), "implicit_tls": True}, "ImplicitTls requires"),
    ({"permission_groups": frozenset({"None", "AnonymousUsers"})}, "None cannot"),
    ({"permission_groups": frozenset({"Admins"})}, "PermissionGroups values"),
    ({"max_message_size": 1000}, "MaxMessageSize"),
    ({"max_recipients_per_message": 0}, "MaxRecipientsPerMessage"),
    ({"max_inbound_connection_per_source": 10001}, "MaxInboundConnectionPerSource"),
    ({"connection_timeout": 100.0}, "greater than"),
    ({"connection_inactivity_timeout": 0.5}, "ConnectionInactivityTimeout"),
    ({"max_logon_failures": 11}, "MaxLogonFailures"),
    ({"tarpit_interval": -1.0}, "TarpitInterval"),
    ({"banner": "hello"}, "Banner"),
    ({"banner": "220 a\r\nb"}, "Banner"),
    ({"fqdn": "not a domain"}, "Fqdn"),
    ({"protocol_logging_level": "Loud"}, "ProtocolLoggingLevel"),
    ({"message_rate_limit": 0}, "MessageRateLimit"),
])
def test_property_errors(changes, message):
    with pytest.raises(ValidationError, match=message):
        validate_connector(dataclasses.replace(BASE, **changes))


def test_valid_defaults_pass():
    for c in org.defaults():
        validate_connector(c)
    validate_connector(org.anonymous_relay())
    check_conflicts(org.anonymous_relay(), org.defaults())


def test_same_binding_nested_or_disjoint():
    all_ = org.connector("all", id=1)
    lan = org.connector("lan", id=2, ranges="192.168.1.0/24")
    one = org.connector("one", id=3, ranges="192.168.1.75")
    check_conflicts(one, [all_, lan])
    check_conflicts(org.connector("other", id=4, ranges="10.0.0.0/8"), [lan])
    with pytest.raises(ValidationError, match="already used"):
        check_conflicts(org.connector("dup", id=5), [all_])
    with pytest.raises(ValidationError, match="partly overlaps"):
        check_conflicts(org.connector("x", id=6, ranges="192.168.1.128-192.168.2.5"), [lan])
    with pytest.raises(ValidationError, match='Receive connector "mail1\\\\lan"'):
        check_conflicts(org.connector("x", id=7, ranges="192.168.1.1/24"), [lan])
    # the same connector being updated does not conflict with itself
    check_conflicts(lan, [lan])


def test_different_binding_same_ranges_is_fine():
    check_conflicts(org.connector("specific", id=2, bindings="10.0.0.50:25"),
                    [org.connector("all", id=1)])
    check_conflicts(org.connector("v6", id=2, bindings="[::]:25"), [org.connector("all", id=1)])


def test_roles_and_implicit_tls_must_not_share_sockets():
    hub = org.connector("hub", id=2, bindings="10.0.0.1:25", ranges="10.0.0.5",
                        transport_role="HubTransport")
    with pytest.raises(ValidationError, match="different Transport roles"):
        check_conflicts(hub, [org.connector("all", id=1)])
    check_conflicts(dataclasses.replace(hub, bindings=org.connector("h", bindings="0.0.0.0:2525")
                                        .bindings), [org.connector("all", id=1)])
    tls = org.connector("tls", id=3, bindings="10.0.0.1:25", implicit_tls=True,
                        ranges="10.0.0.9")
    with pytest.raises(ValidationError, match="implicit TLS"):
        check_conflicts(tls, [org.connector("all", id=1)])
