"""PROXY protocol v1/v2 parsing (HAProxy spec §2.1, §2.2): good headers and every refusal."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from gateway.listeners.proxy import (
    V2_SIGNATURE,
    ProxiedAddresses,
    ProxyHeaderError,
    parse_v1,
    read_proxy_header,
)


def v2(src: str, dst: str, sport: int, dport: int, *, command: int = 1,
       tlv: bytes = b"") -> bytes:
    if ":" in src:
        fam, addrs = 0x21, socket.inet_pton(socket.AF_INET6, src) + \
            socket.inet_pton(socket.AF_INET6, dst)
    else:
        fam, addrs = 0x11, socket.inet_aton(src) + socket.inet_aton(dst)
    payload = addrs + struct.pack("!HH", sport, dport) + tlv
    return V2_SIGNATURE + bytes([0x20 | command, fam]) + struct.pack("!H", len(payload)) + payload


async def read(data: bytes) -> ProxiedAddresses | None:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return await read_proxy_header(reader, 1.0)


async def test_v1_tcp4() -> None:
    got = await read(b"PROXY TCP4 10.0.0.80 10.0.0.50 40000 25\r\nEHLO x\r\n")
    assert got == ProxiedAddresses("10.0.0.80", 40000, "10.0.0.50", 25)


async def test_v1_tcp6_and_mapped_addresses_become_ipv4() -> None:
    got = await read(b"PROXY TCP6 ::ffff:10.0.0.80 2001:db8::1 1 25\r\n")
    assert got == ProxiedAddresses("10.0.0.80", 1, "2001:db8::1", 25)


async def test_v1_unknown_means_socket_addresses() -> None:
    assert await read(b"PROXY UNKNOWN\r\n") is None


async def test_v2_ipv4_ipv6_with_tlvs_and_local() -> None:
    assert await read(v2("10.0.0.80", "10.0.0.50", 1234, 587, tlv=b"\x01\x00\x02h2")) == \
        ProxiedAddresses("10.0.0.80", 1234, "10.0.0.50", 587)
    assert await read(v2("2001:db8::80", "2001:db8::50", 5, 993)) == \
        ProxiedAddresses("2001:db8::80", 5, "2001:db8::50", 993)
    assert await read(v2("10.0.0.80", "10.0.0.50", 1, 2, command=0)) is None


@pytest.mark.parametrize("data", [
    b"EHLO client\r\n",                                    # no header at all
    b"PROXY TCP4 10.0.0.80 10.0.0.50 40000\r\n",           # missing field
    b"PROXY TCP4 10.0.0.80 2001:db8::1 1 25\r\n",          # family mismatch
    b"PROXY TCP4 10.0.0.80 10.0.0.50 040000 25\r\n",       # leading zero port
    b"PROXY TCP4 10.0.0.80 10.0.0.50 70000 25\r\n",        # port out of range
    b"PROXY TCP4 10.0.0.999 10.0.0.50 1 25\r\n",           # bad address
    b"PROXY UDP4 10.0.0.80 10.0.0.50 1 25\r\n",            # not TCP
    b"PROXY TCP4 10.0.0.80 10.0.0.50 1 25\n",              # bare LF
    b"PROXY " + b"A" * 200 + b"\r\n",                      # too long
    b"PROXY TCP4 10.0.0.80",                               # closed inside the header
    V2_SIGNATURE + b"\x21\x11\xff\xff",                    # payload too long
    V2_SIGNATURE + b"\x21\x12\x00\x0c" + b"\x00" * 12,      # UDP
    V2_SIGNATURE + b"\x31\x11\x00\x0c" + b"\x00" * 12,      # version 3
])
async def test_malformed_headers_are_refused(data: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        await read(data)


async def test_slow_header_times_out() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(b"PROXY TCP4 ")
    with pytest.raises(ProxyHeaderError, match="in time"):
        await read_proxy_header(reader, 0.05)


def test_v1_line_must_be_ascii() -> None:
    with pytest.raises(ProxyHeaderError):
        parse_v1("PROXY TCP4 10.0.0.8\u00b9 10.0.0.50 1 25\r\n".encode())
