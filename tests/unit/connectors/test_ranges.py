"""Bindings and RemoteIPRanges parsing (exchange-semantics.md §1.1)."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.connectors.ranges import (
    normalise_ip,
    parse_binding,
    parse_bindings,
    parse_ip_range,
    parse_ip_ranges,
)


@pytest.mark.parametrize(("text", "shown"), [
    ("10.0.0.50:25", "10.0.0.50:25"),
    ("0.0.0.0:587", "0.0.0.0:587"),
    ("[::]:25", "[::]:25"),
    ("[2001:db8::1]:465", "[2001:db8::1]:465"),
    ("[::ffff:10.0.0.1]:25", "10.0.0.1:25"),   # IPv4-mapped is IPv4
    (" 127.0.0.50:25 ", "127.0.0.50:25"),
])
def test_bindings(text, shown):
    assert str(parse_binding(text)) == shown


@pytest.mark.parametrize("text", ["", "10.0.0.1", "10.0.0.1:0", "10.0.0.1:65536",
                                  "host.example:25", "2001:db8::1:25", "[2001:db8::1]25",
                                  "10.0.0.1:2x", "[10.0.0.1]:25", "x" * 200])
def test_bad_bindings(text):
    with pytest.raises(ValueError):
        parse_binding(text)


def test_binding_list_and_wildcards():
    a, b = parse_bindings("0.0.0.0:25, [::]:25")
    assert a.is_wildcard and b.is_wildcard
    local = ipaddress.ip_address("10.0.0.5")
    assert a.accepts(local, 25) and not a.accepts(local, 587)
    assert not b.accepts(local, 25)          # family matters
    specific = parse_binding("10.0.0.5:25")
    assert specific.overlaps(a) and not specific.overlaps(b)
    assert not specific.accepts(ipaddress.ip_address("10.0.0.6"), 25)


@pytest.mark.parametrize(("text", "first", "last"), [
    ("10.0.0.80", "10.0.0.80", "10.0.0.80"),
    ("192.168.1.0/24", "192.168.1.0", "192.168.1.255"),
    ("192.168.1.1/24", "192.168.1.0", "192.168.1.255"),      # host bits allowed
    ("10.0.0.1-10.0.0.9", "10.0.0.1", "10.0.0.9"),
    ("2001:db8::/32", "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"),
    ("fe80::1%11", "fe80::1", "fe80::1"),                      # zone dropped
    ("::ffff:10.0.0.80", "10.0.0.80", "10.0.0.80"),            # mapped → IPv4
    ("::ffff:10.0.0.0/104", "10.0.0.0", "10.255.255.255"),
    ("0.0.0.0-255.255.255.255", "0.0.0.0", "255.255.255.255"),
])
def test_ranges(text, first, last):
    r = parse_ip_range(text)
    assert (str(r.first), str(r.last)) == (first, last)
    assert r.contains(ipaddress.ip_address(first)) and r.contains(ipaddress.ip_address(last))


@pytest.mark.parametrize("text", ["", "10.0.0.300", "10.0.0.9-10.0.0.1", "10.0.0.1-::1",
                                  "10.0.0.0/33", "example.test", "10.0.0.1-", "1/2/3"])
def test_bad_ranges(text):
    with pytest.raises(ValueError, match="remote IP range"):
        parse_ip_range(text)


def test_range_relations_and_lists():
    all4, net, one = parse_ip_ranges("0.0.0.0-255.255.255.255,192.168.1.0/24, 192.168.1.75")
    assert all4.contains_range(net) and net.contains_range(one)
    assert not one.contains_range(net)
    assert net.overlaps(one) and one.size == 1 and net.size == 256
    other = parse_ip_range("192.168.1.128-192.168.2.10")
    assert net.overlaps(other) and not net.contains_range(other)
    assert not parse_ip_range("::/0").contains(normalise_ip("10.0.0.1"))
    assert all4.contains(normalise_ip("::ffff:1.2.3.4"))
