"""The strict envelope address parser (RFC 5321 §4.1.2, RFC 6531) and the relay battery
at the parser level."""

from __future__ import annotations

import pytest

from gateway.connectors.address import AddressError, parse_address, parse_domain
from tests.unit.connectors.relay_cases import RELAY_CASES


@pytest.mark.parametrize(("text", "local", "domain"), [
    ("alice@example.test", "alice", "example.test"),
    ("<alice@example.test>", "alice", "example.test"),
    ("Alice.Smith+tag@EXAMPLE.Test", "Alice.Smith+tag", "example.test"),
    ('"alice"@example.test', "alice", "example.test"),
    ('"al ice"@example.test', '"al ice"', "example.test"),
    ('"a\\"b"@example.test', '"a\\"b"', "example.test"),
    ("x@[192.0.2.1]", "x", "[192.0.2.1]"),
    ("x@[IPv6:2001:DB8::1]", "x", "[IPv6:2001:db8::1]"),
    ("x@xn--bcher-kva.test", "x", "xn--bcher-kva.test"),
])
def test_valid(text, local, domain):
    a = parse_address(text)
    assert (a.local, a.domain) == (local, domain)


def test_utf8():
    a = parse_address("jörg@bücher.test", smtputf8=True)
    assert a.local == "jörg" and a.domain == "xn--bcher-kva.test"
    with pytest.raises(AddressError, match="SMTPUTF8"):
        parse_address("jörg@example.test")
    with pytest.raises(AddressError):
        parse_address("x@Bu\u0308cher.test", smtputf8=True)   # not NFC


def test_null_sender():
    assert parse_address("<>", allow_null=True).local == ""
    assert parse_address("", allow_null=True).local == ""
    with pytest.raises(AddressError):
        parse_address("<>")


@pytest.mark.parametrize("text", [
    "alice", "@example.test", "alice@", "<alice@example.test", "alice@example.test>",
    "al ice@example.test", "alice@exa mple.test", "alice\r@example.test",
    "alice\x00@example.test", '"alice@example.test', "a@-example.test",
    "a@example-.test", "a@" + "x" * 64 + ".test", "x" * 65 + "@example.test",
    "a@" + ".".join(["abcdefgh"] * 30) + ".test", "a@123", "a..b@example.test",
    "a.@example.test", "a@[1.2.3]", "a@[IPv6:xyz]",
])
def test_invalid(text):
    with pytest.raises(AddressError):
        parse_address(text)


def test_domain_parser():
    assert parse_domain("Example.TEST") == "example.test"
    with pytest.raises(AddressError):
        parse_domain("example.test.")


@pytest.mark.parametrize("case", RELAY_CASES, ids=lambda c: c.id)
def test_battery_syntax(case):
    """Cases expected to be 501 must fail to parse; every other case must parse, and
    never to a domain equal to an accepted domain unless it is a control case."""
    if case.expected_code == 501:
        with pytest.raises(AddressError):
            parse_address(case.recipient, smtputf8=case.smtputf8)
        return
    a = parse_address(case.recipient, smtputf8=case.smtputf8)
    assert (a.domain == "example.test") == (case.control or (case.expected_code == 550
                                            and case.expected_enhanced == "5.1.10"))
