"""Pure relay logic: address spaces and connector choice, smart hosts, MX order and
fallbacks, settings bounds, dot-stuffing, report structure."""

from __future__ import annotations

import email
from email import policy

import pytest

from gateway.errors import ValidationError
from gateway.relay.categoriser import domain_type, split_address
from gateway.relay.dsn import Failure, build_report, status_code
from gateway.relay.routing import (
    RoutingError,
    StaticResolver,
    destinations,
    parse_address_space,
    parse_smart_host,
    select_connector,
)
from gateway.relay.settings import TransportSettings
from gateway.relay.smtp_client import normalise_and_stuff
from gateway.store.send_connectors import AddressSpace, SendConnector


def conn(name: str, *spaces: str, enabled: bool = True, hosts: tuple[str, ...] = (),
         port: int = 25) -> SendConnector:
    return SendConnector(0, name, tuple(parse_address_space(s) for s in spaces), hosts,
                         not hosts, port, False, "None", "", "", enabled, 20, 0.0)


def test_address_spaces() -> None:
    assert parse_address_space("SMTP:*.Example.TEST;7") == AddressSpace("*.example.test", 7)
    assert parse_address_space("*") == AddressSpace("*", 1)
    for bad in ("", "a..b", "exa mple.test", "x.test;0", "x.test;abc", "*.", "a*.test"):
        with pytest.raises(ValidationError):
            parse_address_space(bad)


def test_most_specific_then_cheapest() -> None:
    default = conn("default", "*;1")
    parent = conn("parent", "*.outlook.test;10")
    exact = conn("exact", "mail.outlook.test;50")
    cheap = conn("cheap", "*.outlook.test;2")
    cs = [default, parent, exact, cheap]
    assert select_connector("mail.outlook.test", cs) is exact
    assert select_connector("outlook.test", cs) is cheap
    assert select_connector("x.outlook.test", cs) is cheap
    assert select_connector("gmail.test", cs) is default
    assert select_connector("gmail.test", [conn("off", "*", enabled=False)]) is None


def test_smart_hosts() -> None:
    assert parse_smart_host("Relay.Example.test", 25) == ("relay.example.test", 25)
    assert parse_smart_host("relay.test:587", 25) == ("relay.test", 587)
    assert parse_smart_host("[192.0.2.1]:2525", 25) == ("192.0.2.1", 2525)
    assert parse_smart_host("[2001:db8::1]", 25) == ("2001:db8::1", 25)
    for bad in ("", "a:b", "[nothost]", "x.test:0", "x.test:99999", "bad host"):
        with pytest.raises(ValidationError):
            parse_smart_host(bad, 25)


async def test_mx_order_and_fallbacks() -> None:
    r = StaticResolver(
        mx={"a.test": [(20, "mx2.a.test"), (10, "mx1.a.test")], "null.test": [(0, ".")]},
        hosts={"mx1.a.test": ["192.0.2.1"], "mx2.a.test": ["192.0.2.2", "2001:db8::2"],
               "nomx.test": ["192.0.2.9"]},
        missing=["gone.test"])
    dns = conn("dns", "*")
    assert [d.address for d in await destinations("a.test", dns, r)] == [
        "192.0.2.1", "192.0.2.2", "2001:db8::2"]
    assert [d.host for d in await destinations("nomx.test", dns, r)] == ["nomx.test"]
    with pytest.raises(RoutingError) as nx:
        await destinations("gone.test", dns, r)
    assert nx.value.permanent and "5.4.4" in nx.value.reply
    with pytest.raises(RoutingError) as null:
        await destinations("null.test", dns, r)
    assert null.value.permanent and "5.1.10" in null.value.reply
    with pytest.raises(RoutingError) as none:
        await destinations("unknown.test", dns, r)
    assert not none.value.permanent
    smart = conn("smart", "*", hosts=("[192.0.2.50]:2525", "mx1.a.test"))
    assert [(d.address, d.port) for d in await destinations("x.test", smart, r)] == [
        ("192.0.2.50", 2525), ("192.0.2.1", 25)]


def test_settings() -> None:
    s = TransportSettings()
    assert s.message_expiration_timeout == 172800 and s.delay_notification_timeout == 14400
    assert s.retry_delay(1) == 300 and s.retry_delay(7) == 900
    assert s.retry_delay(1, connection_failure=True) == 600
    assert TransportSettings.from_values({"max_hop_count": 10}).max_hop_count == 10
    for bad in ({"nope": 1}, {"max_hop_count": 0}, {"max_hop_count": 1.5},
                {"message_expiration_timeout": "2d"}, {"poll_interval": True}):
        with pytest.raises(ValidationError):
            TransportSettings.from_values(bad)


def test_dot_stuffing_and_line_ends() -> None:
    assert normalise_and_stuff(b"a\r\n.b\n..c\r.\r\nd") == b"a\r\n..b\r\n...c\r\n..\r\nd\r\n.\r\n"
    assert normalise_and_stuff(b"") == b".\r\n"
    assert normalise_and_stuff(b"x\r\n") == b"x\r\n.\r\n"


def test_long_lines_are_broken_to_fit_rfc_5321() -> None:
    header = b"Subject: " + b"s" * 2500
    body_line = b"." + b"<p>" * 1000  # a dot-stuffed line too
    sent = normalise_and_stuff(header + b"\r\n\r\n" + body_line + b"\r\nshort\r\n")
    lines = sent.split(b"\r\n")
    assert max(len(ln) for ln in lines) <= 998
    assert all(ln.startswith(b" ") for ln in lines[1:3])  # header continuations fold
    # Undoing the breaks (and the stuffed dot) gives the original text back.
    unfolded = sent.replace(b"\r\n ", b"")
    assert unfolded.startswith(header + b"\r\n\r\n.." + b"<p>" * 1000 + b"\r\nshort\r\n")
    assert normalise_and_stuff(b"x" * 998) == b"x" * 998 + b"\r\n.\r\n"  # at the limit


def test_addresses() -> None:
    assert split_address("Bob@Example.TEST.") == ("Bob", "example.test")
    assert split_address("no-at-sign") is None
    assert split_address("a@b@c.test") == ("a@b", "c.test")
    assert split_address("x@") is None and split_address("x@a..b") is None

    class D:
        def __init__(self, name: str, kind: str) -> None:
            self.domain_name, self.domain_type = name, kind
    ds = [D("example.test", "Authoritative"), D("*.partner.test", "InternalRelay"),
          D("*.x.partner.test", "ExternalRelay")]
    assert domain_type("example.test", ds) == "Authoritative"
    assert domain_type("sub.example.test", ds) is None
    assert domain_type("a.partner.test", ds) == "InternalRelay"
    assert domain_type("a.x.partner.test", ds) == "ExternalRelay"


def test_report_structure() -> None:
    original = (b"From: bob@example.test\r\nSubject: hi\r\nMessage-ID: <m@x>\r\n\r\n"
                b"secret body\r\n")
    raw = build_report(kind="failed", server_name="mail1.example.test",
                       postmaster="postmaster@example.test",
                       original_sender="bob@example.test", original_subject="hi\r\nBcc: x",
                       original_message_id="<m@x>", arrival=0.0, body=original,
                       failures=[Failure("a@r.test", "550 5.1.1 unknown", "mx.r.test")])
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg["Subject"] == "Undeliverable: hi Bcc: x" and msg["Bcc"] is None
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg.get_content_type() == "multipart/report"
    kinds = [p.get_content_type() for p in msg.iter_parts()]
    assert kinds == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    assert b"secret body" not in raw  # headers only, never the content
    assert b"Status: 5.1.1" in raw and b"Remote-MTA: dns;mx.r.test" in raw
    assert status_code("451 4.7.1 later", permanent=False) == "4.7.1"
    assert status_code("554 rejected", permanent=True) == "5.0.0"
    assert status_code("connection lost", permanent=False) == "4.0.0"
