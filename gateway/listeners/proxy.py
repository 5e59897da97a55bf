"""PROXY protocol v1 and v2 headers (HAProxy's "The PROXY protocol", versions 1 and 2).

Role: read one header from a connection whose TCP peer is a trusted proxy and return
the client's real addresses. Invariants: the header is read with an explicit size
limit and deadline; anything malformed raises ``ProxyHeaderError`` (the caller closes
the connection); a ``LOCAL`` command (v2) or ``UNKNOWN`` family (v1) means "use the
socket addresses" and returns None. Only TCP over IPv4/IPv6 is accepted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX_LENGTH = 107  # spec §2.1: the longest v1 line, CRLF included
V2_MAX_PAYLOAD = 512  # addresses plus TLVs we are willing to read (spec allows 64 KiB)
DEFAULT_TIMEOUT = 5.0


class ProxyHeaderError(Exception):
    """The PROXY header is missing, malformed, too long or too slow."""


@dataclass(frozen=True)
class ProxiedAddresses:
    source_ip: str
    source_port: int
    destination_ip: str
    destination_port: int


def _normalise(ip: str) -> str:
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def parse_v1(line: bytes) -> ProxiedAddresses | None:
    """Parse ``PROXY TCP4 src dst sport dport\\r\\n`` (spec §2.1)."""
    if not line.endswith(b"\r\n") or len(line) > V1_MAX_LENGTH:
        raise ProxyHeaderError("PROXY v1 line too long or not CRLF-terminated")
    try:
        parts = line[:-2].decode("ascii").split(" ")
    except UnicodeDecodeError:
        raise ProxyHeaderError("PROXY v1 line is not ASCII") from None
    if parts[0] != "PROXY" or len(parts) < 2:
        raise ProxyHeaderError("not a PROXY v1 line")
    if parts[1] == "UNKNOWN":
        return None
    if parts[1] not in ("TCP4", "TCP6") or len(parts) != 6:
        raise ProxyHeaderError("PROXY v1: expected TCP4/TCP6 with four fields")
    _, family, src, dst, sport, dport = parts
    try:
        s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    except ValueError:
        raise ProxyHeaderError("PROXY v1: bad address") from None
    want = 4 if family == "TCP4" else 6
    if s.version != want or d.version != want:
        raise ProxyHeaderError("PROXY v1: address family does not match")
    ports = []
    for p in (sport, dport):
        if not p.isdigit() or (len(p) > 1 and p[0] == "0") or not 0 <= int(p) <= 65535:
            raise ProxyHeaderError("PROXY v1: bad port")
        ports.append(int(p))
    return ProxiedAddresses(_normalise(src), ports[0], _normalise(dst), ports[1])


def parse_v2(header: bytes, payload: bytes) -> ProxiedAddresses | None:
    """Parse the 16-byte v2 header and its payload (spec §2.2)."""
    ver_cmd, fam = header[12], header[13]
    if ver_cmd >> 4 != 2:
        raise ProxyHeaderError("PROXY v2: bad version")
    command = ver_cmd & 0x0F
    if command == 0x0:  # LOCAL: health check from the proxy itself
        return None
    if command != 0x1:
        raise ProxyHeaderError("PROXY v2: unknown command")
    family, transport = fam >> 4, fam & 0x0F
    if transport != 0x1:
        raise ProxyHeaderError("PROXY v2: only TCP (STREAM) is accepted")
    if family == 0x1 and len(payload) >= 12:
        src, dst = payload[0:4], payload[4:8]
        sport, dport = struct.unpack("!HH", payload[8:12])
    elif family == 0x2 and len(payload) >= 36:
        src, dst = payload[0:16], payload[16:32]
        sport, dport = struct.unpack("!HH", payload[32:36])
    elif family == 0x0:
        return None
    else:
        raise ProxyHeaderError("PROXY v2: unsupported family or short address block")
    return ProxiedAddresses(_normalise(str(ipaddress.ip_address(src))), sport,
                            _normalise(str(ipaddress.ip_address(dst))), dport)


async def read_proxy_header(reader: asyncio.StreamReader,
                            deadline: float = DEFAULT_TIMEOUT) -> ProxiedAddresses | None:
    """Read a v1 or v2 header from ``reader`` within ``deadline`` seconds."""
    try:
        return await asyncio.wait_for(_read(reader.readexactly), deadline)
    except TimeoutError:
        raise ProxyHeaderError("PROXY header not received in time") from None
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        raise ProxyHeaderError("connection closed inside the PROXY header") from None


async def read_proxy_header_from_socket(
        sock: socket.socket, deadline: float = DEFAULT_TIMEOUT) -> ProxiedAddresses | None:
    """Read a v1 or v2 header from a raw non-blocking socket, consuming exactly the
    header's bytes (what follows stays unread for the TLS or protocol layer)."""
    loop = asyncio.get_running_loop()

    async def readexactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = await loop.sock_recv(sock, n - len(data))
            if not chunk:
                raise asyncio.IncompleteReadError(data, n)
            data += chunk
        return data

    try:
        return await asyncio.wait_for(_read(readexactly), deadline)
    except TimeoutError:
        raise ProxyHeaderError("PROXY header not received in time") from None
    except (asyncio.IncompleteReadError, OSError):
        raise ProxyHeaderError("connection closed inside the PROXY header") from None


async def _read(readexactly: Callable[[int], Awaitable[bytes]]) -> ProxiedAddresses | None:
    """Consume one header through ``readexactly`` (v1: byte by byte up to CRLF, so
    nothing after the header is read)."""
    first = await readexactly(5)
    if first == b"PROXY":
        line = first
        while not line.endswith(b"\r\n"):
            if len(line) >= V1_MAX_LENGTH:
                raise ProxyHeaderError("PROXY v1 line too long")
            line += await readexactly(1)
        return parse_v1(line)
    if first == V2_SIGNATURE[:5]:
        rest = await readexactly(11)
        header = first + rest
        if header[:12] != V2_SIGNATURE:
            raise ProxyHeaderError("bad PROXY v2 signature")
        (length,) = struct.unpack("!H", header[14:16])
        if length > V2_MAX_PAYLOAD:
            raise ProxyHeaderError("PROXY v2 payload too long")
        payload = await readexactly(length)
        return parse_v2(header, payload)
    raise ProxyHeaderError("expected a PROXY header from a trusted proxy")
