"""Connector selection among nested ranges and bindings (exchange-semantics.md §2)."""

from __future__ import annotations

import dataclasses

from gateway.connectors.policy import listen_endpoints
from gateway.connectors.selection import select_connector
from tests.unit.connectors import org

DOCS_EXAMPLE = [
    org.connector("all", id=1, ranges="0.0.0.0-255.255.255.255"),
    org.connector("lan", id=2, ranges="192.168.1.0-192.168.1.255"),
    org.connector("one", id=3, ranges="192.168.1.75"),
]


def _chosen(connectors, local, port, remote):
    sel = select_connector(connectors, local, port, remote)
    return sel.connector.name if sel.connector else None


def test_docs_example_most_specific_range_wins():
    assert _chosen(DOCS_EXAMPLE, "10.0.0.1", 25, "192.168.1.75") == "one"
    assert _chosen(DOCS_EXAMPLE, "10.0.0.1", 25, "192.168.1.100") == "lan"
    assert _chosen(DOCS_EXAMPLE, "10.0.0.1", 25, "8.8.8.8") == "all"
    # order of the list does not matter
    assert _chosen(list(reversed(DOCS_EXAMPLE)), "10.0.0.1", 25, "192.168.1.75") == "one"


def test_ipv4_mapped_client_and_local():
    assert _chosen(DOCS_EXAMPLE, "::ffff:10.0.0.1", 25, "::ffff:192.168.1.75") == "one"


def test_port_and_family():
    assert _chosen(DOCS_EXAMPLE, "10.0.0.1", 587, "192.168.1.75") is None
    assert _chosen(DOCS_EXAMPLE, "2001:db8::1", 25, "2001:db8::2") is None
    v6 = org.connector("v6", id=9, bindings="[::]:25", ranges="2001:db8::/32")
    assert _chosen([*DOCS_EXAMPLE, v6], "2001:db8::1", 25, "2001:db8::2") == "v6"


def test_specific_binding_beats_wildcard_on_equal_range():
    specific = org.connector("specific", id=5, bindings="10.0.0.50:25")
    assert _chosen([DOCS_EXAMPLE[0], specific], "10.0.0.50", 25, "8.8.8.8") == "specific"
    assert _chosen([DOCS_EXAMPLE[0], specific], "10.0.0.51", 25, "8.8.8.8") == "all"


def test_smaller_range_beats_specific_binding():
    specific = org.connector("specific", id=5, bindings="10.0.0.50:25")
    narrow = org.connector("narrow", id=6, bindings="0.0.0.0:25", ranges="10.0.0.80")
    assert _chosen([specific, narrow], "10.0.0.50", 25, "10.0.0.80") == "narrow"


def test_disabled_connectors_are_skipped_and_explained():
    off = dataclasses.replace(DOCS_EXAMPLE[2], enabled=False)
    sel = select_connector([DOCS_EXAMPLE[0], DOCS_EXAMPLE[1], off], "10.0.0.1", 25,
                           "192.168.1.75")
    assert sel.connector.name == "lan"
    assert any("disabled" in line for line in sel.candidates)
    assert "most specific" in sel.reason


def test_listen_endpoints_merge_covered_specifics():
    conns = [*org.defaults(), org.anonymous_relay()]
    eps = {(e.host, e.port): e for e in listen_endpoints(org.snapshot(conns))}
    assert set(eps) == {("0.0.0.0", 25), ("::", 25), ("0.0.0.0", 587), ("0.0.0.0", 465)}
    assert "Anonymous Relay" in eps[("0.0.0.0", 25)].connectors
    assert eps[("0.0.0.0", 465)].implicit_tls and not eps[("0.0.0.0", 587)].implicit_tls
    only_relay = listen_endpoints(org.snapshot([org.anonymous_relay()]))
    assert [(e.host, e.port) for e in only_relay] == [("10.0.0.50", 25)]
