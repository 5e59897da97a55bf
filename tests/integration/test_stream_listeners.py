"""StreamListenerSet on real sockets: PROXY trust, implicit TLS, rebinding, limits, stop."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import pytest

from gateway.config import Endpoint, TlsSettings
from gateway.listeners import (
    BindError,
    ConnectionInfo,
    ListenerSpec,
    StreamListenerSet,
    starttls_buffer_empty,
)
from gateway.tls import generate_self_signed, server_context


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def describe_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           info: ConnectionInfo) -> None:
    """Replies with what the listener told it, then echoes one line."""
    writer.write(f"{info.remote_ip} {info.local_ip}:{info.local_port} proxied={info.proxied} "
                 f"tls={info.tls} {info.listener}\r\n".encode())
    await writer.drain()
    line = await reader.readline()
    writer.write(b"echo " + line)
    await writer.drain()


async def talk(port: int, send: bytes = b"", *, host: str = "127.0.0.1",
               source: str | None = None, tls: ssl.SSLContext | None = None) -> bytes:
    sock = socket.socket()
    if source:
        sock.bind((source, 0))
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    reader, writer = await asyncio.open_connection(sock=sock, ssl=tls,
                                                   server_hostname="localhost" if tls else None)
    writer.write(send)
    await writer.drain()
    first = await asyncio.wait_for(reader.readline(), 5)
    writer.write(b"ping\r\n")
    await writer.drain()
    second = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    return first + second


@pytest.fixture
def tls_material(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    generate_self_signed("localhost", cert, key)
    server = server_context(TlsSettings(cert, key, False))
    client = ssl.create_default_context(cafile=str(cert))
    return server, client


async def test_plain_connection_reports_socket_addresses() -> None:
    port = free_port()
    listeners = StreamListenerSet("t", tls_context=None, trusted_proxies=["127.0.0.9/32"])
    await listeners.apply([ListenerSpec("imap", Endpoint("127.0.0.1", port), False,
                                        describe_handler)])
    try:
        out = await talk(port)
        assert out == (f"127.0.0.1 127.0.0.1:{port} proxied=False tls=False imap\r\n"
                       "echo ping\r\n").encode()
    finally:
        await listeners.stop(1)


async def test_proxy_header_from_trusted_peer_only() -> None:
    port = free_port()
    listeners = StreamListenerSet("t", tls_context=None, trusted_proxies=["127.0.0.9/32"])
    await listeners.apply([ListenerSpec("imap", Endpoint("0.0.0.0", port), False,
                                        describe_handler)])
    header = b"PROXY TCP4 10.0.0.80 10.0.0.50 40000 143\r\n"
    try:
        # From the trusted proxy 127.0.0.9: the header names the real client.
        out = await talk(port, header, source="127.0.0.9")
        assert out.startswith(b"10.0.0.80 10.0.0.50:143 proxied=True")
        # From anyone else the header is not honoured: the protocol sees it as data.
        out = await talk(port, header, source="127.0.0.80")
        assert out.startswith(b"127.0.0.80 127.0.0.1:")
        assert b"echo PROXY TCP4" in out
        # A trusted proxy that sends garbage is cut off before the protocol starts.
        r, w = await asyncio.open_connection(*("127.0.0.1", port),
                                             local_addr=("127.0.0.9", 0))
        w.write(b"HELLO\r\n")
        try:  # closed (FIN, or RST as unread bytes remain): never handed to the protocol
            assert await asyncio.wait_for(r.read(), 5) == b""
        except ConnectionResetError:
            pass
        w.close()
    finally:
        await listeners.stop(1)


async def test_implicit_tls_and_proxy_before_handshake(
        tls_material: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = tls_material
    port = free_port()
    listeners = StreamListenerSet("t", tls_context=server_ctx, trusted_proxies=[])
    await listeners.apply([ListenerSpec("imaps", Endpoint("127.0.0.1", port), True,
                                        describe_handler)])
    try:
        out = await talk(port, tls=client_ctx)
        assert b"tls=True imaps" in out and out.endswith(b"echo ping\r\n")
        # A client speaking plain text to the TLS port gets nothing and is closed.
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"a001 CAPABILITY\r\n")
        assert await asyncio.wait_for(r.read(), 20) == b""
        w.close()
    finally:
        await listeners.stop(1)


async def test_apply_rebinds_without_restart_and_keeps_unchanged() -> None:
    p1, p2 = free_port(), free_port()
    listeners = StreamListenerSet("t", tls_context=None)
    a = ListenerSpec("pop3", Endpoint("127.0.0.1", p1), False, describe_handler)
    b = ListenerSpec("pop3", Endpoint("127.0.0.1", p2), False, describe_handler)
    await listeners.apply([a])
    try:
        assert (await talk(p1)).endswith(b"echo ping\r\n")
        await listeners.apply([a, b])
        assert len(listeners.describe()) == 2
        assert (await talk(p2)).endswith(b"echo ping\r\n")
        await listeners.apply([b])
        with pytest.raises(OSError):
            await talk(p1)
        assert (await talk(p2)).endswith(b"echo ping\r\n")
    finally:
        await listeners.stop(1)


async def test_bind_failure_is_explained() -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    listeners = StreamListenerSet("t", tls_context=None)
    try:
        with pytest.raises(BindError, match="already in use"):
            await listeners.apply([ListenerSpec("imap", Endpoint("127.0.0.1", port), False,
                                                describe_handler)])
    finally:
        busy.close()
        await listeners.stop(1)


async def test_connection_limit_and_stop_with_grace() -> None:
    port = free_port()
    release = asyncio.Event()

    async def held(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   info: ConnectionInfo) -> None:
        writer.write(b"hello\r\n")
        await writer.drain()
        await release.wait()

    listeners = StreamListenerSet("t", tls_context=None, max_connections=2)
    await listeners.apply([ListenerSpec("imap", Endpoint("127.0.0.1", port), False, held)])
    conns = []
    for _ in range(2):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(r.readline(), 5) == b"hello\r\n"
        conns.append((r, w))
    # The third is over the limit: closed without a greeting.
    r3, w3 = await asyncio.open_connection("127.0.0.1", port)
    assert await asyncio.wait_for(r3.read(), 5) == b""
    w3.close()
    # stop() waits for the grace period, then cancels the held sessions.
    await asyncio.wait_for(listeners.stop(0.2), 10)
    assert listeners.connection_count == 0
    for r, w in conns:
        assert await asyncio.wait_for(r.read(), 5) == b""
        w.close()


async def test_starttls_buffer_check() -> None:
    reader = asyncio.StreamReader()
    assert starttls_buffer_empty(reader)
    reader.feed_data(b"a002 LOGIN injected\r\n")
    assert not starttls_buffer_empty(reader)


async def test_accepted_connections_have_tcp_nodelay() -> None:
    """Replies written in pieces must not wait for delayed ACKs (Nagle): every accepted
    socket has TCP_NODELAY."""
    seen: list[int] = []

    async def probe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    info: ConnectionInfo) -> None:
        sock = writer.get_extra_info("socket")
        seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.write(b"ok\r\n")
        await writer.drain()

    port = free_port()
    listeners = StreamListenerSet("t", tls_context=None)
    await listeners.apply([ListenerSpec("imap", Endpoint("127.0.0.1", port), False, probe)])
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(r.readline(), 5) == b"ok\r\n"
        w.close()
        assert seen and seen[0] != 0
    finally:
        await listeners.stop(1)
