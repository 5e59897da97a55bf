"""Stream listeners for line protocols (IMAP4, POP3): bind, PROXY, implicit TLS, limits.

Role: keep a set of listening sockets matching the desired ``ListenerSpec`` list
(``apply`` binds new endpoints and closes removed ones without touching the rest, so
bindings change without a restart), and for each accepted connection: enforce the
connection limit, read a PROXY header when the TCP peer is a trusted proxy, perform the
implicit TLS handshake, build the immutable ``ConnectionInfo`` and hand the streams to
the protocol's handler.

Invariants: a PROXY header is honoured only from ``trusted_proxies`` and required from
them; nobody else may send one (it would be read as a protocol command and fail). A
handler owns its connection; the set closes it after the handler returns or raises.
``stop`` stops accepting, waits up to ``grace`` for handlers, then cancels them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace

from gateway.config import Endpoint
from gateway.listeners import bind_socket
from gateway.listeners.proxy import ProxyHeaderError, read_proxy_header_from_socket

log = logging.getLogger("gateway.listeners")

DEFAULT_MAX_CONNECTIONS = 5000
TLS_HANDSHAKE_TIMEOUT = 15.0
STREAM_LIMIT = 64 * 1024  # StreamReader buffer limit; protocols set their own line limits


@dataclass(frozen=True)
class ConnectionInfo:
    """What a protocol session knows about its connection (docs/dev/protocol-seams.md)."""

    connection_id: str
    listener: str
    local_ip: str
    local_port: int
    remote_ip: str
    remote_port: int
    peer_ip: str
    proxied: bool
    tls: bool = False
    tls_version: str | None = None
    tls_cipher: str | None = None
    client_certificate: bytes | None = None

    def with_tls(self, writer: asyncio.StreamWriter) -> ConnectionInfo:
        """This connection after a TLS handshake on ``writer`` (STARTTLS or implicit)."""
        sslobj = writer.get_extra_info("ssl_object")
        if sslobj is None:
            return self
        cipher = sslobj.cipher()
        return replace(self, tls=True, tls_version=sslobj.version(),
                       tls_cipher=cipher[0] if cipher else None,
                       client_certificate=sslobj.getpeercert(binary_form=True))


ConnectionHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, ConnectionInfo],
                             Awaitable[None]]


@dataclass(frozen=True)
class ListenerSpec:
    label: str
    endpoint: Endpoint
    implicit_tls: bool
    handler: ConnectionHandler


def starttls_buffer_empty(reader: asyncio.StreamReader) -> bool:
    """True when nothing was pipelined after the STARTTLS/STLS command line.

    Bytes already buffered would be read as if they had come over TLS (the STARTTLS
    command injection of CVE-2011-0411; RFC 3207 §4.2, RFC 2595 §3.1): refuse them.
    """
    return len(getattr(reader, "_buffer", b"")) == 0


def pause_for_starttls(writer: asyncio.StreamWriter) -> None:
    """Stop reading before sending the STARTTLS/STLS go-ahead.

    The client's TLS ClientHello must stay in the socket for the TLS layer; if the
    transport kept reading between the go-ahead and ``writer.start_tls`` it would land
    in the StreamReader's buffer and the handshake would stall. ``start_tls`` resumes
    reading itself.
    """
    transport = writer.transport
    if isinstance(transport, asyncio.ReadTransport):
        transport.pause_reading()


def _unmap(ip: str) -> str:
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


class _Bound:
    """One listening socket, its spec, and the task accepting connections on it."""

    def __init__(self, spec: ListenerSpec, sock: socket.socket,
                 accept_task: asyncio.Task[None]) -> None:
        self.spec = spec
        self.sock = sock
        self.accept_task = accept_task

    def close(self) -> None:
        self.accept_task.cancel()
        self.sock.close()


class StreamListenerSet:
    """A reconfigurable set of stream listeners sharing limits, TLS and proxy trust."""

    def __init__(self, name: str, *, tls_context: ssl.SSLContext | None,
                 trusted_proxies: Iterable[str] = (),
                 max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 reuse_port: bool = False) -> None:
        self.name = name
        self.reuse_port = reuse_port  # several worker processes share the sockets
        self.tls_context = tls_context
        self.trusted_proxies = tuple(ipaddress.ip_network(n, strict=False)
                                     for n in trusted_proxies)
        self.max_connections = max_connections
        self._bound: dict[tuple[str, Endpoint, bool], _Bound] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def connection_count(self) -> int:
        return len(self._tasks)

    def is_trusted_proxy(self, ip: str) -> bool:
        addr = ipaddress.ip_address(ip)
        return any(addr in net for net in self.trusted_proxies)

    async def apply(self, specs: Iterable[ListenerSpec]) -> None:
        """Make the bound listeners match ``specs``: bind new ones, close removed ones.

        Raises BindError (nothing changed for the failing endpoint) when binding fails;
        endpoints bound before the failure stay bound.
        """
        wanted = {(s.label, s.endpoint, s.implicit_tls): s for s in specs}
        for key in [k for k in self._bound if k not in wanted]:
            self._bound.pop(key).close()
            log.info("%s: stopped listening on %s (%s)", self.name, key[1], key[0])
        for key, spec in wanted.items():
            if key in self._bound:
                self._bound[key].spec = spec
                continue
            if spec.implicit_tls and self.tls_context is None:
                raise ValueError(f"{spec.label}: implicit TLS needs a TLS context")
            sock = bind_socket(spec.endpoint, reuse_port=self.reuse_port)
            task = asyncio.create_task(self._accept_loop(key, sock))
            self._bound[key] = _Bound(spec, sock, task)
            log.info("%s: listening on %s (%s%s%s)", self.name, spec.endpoint, spec.label,
                     ", implicit TLS" if spec.implicit_tls else "",
                     ", shared" if self.reuse_port else "")

    def describe(self) -> list[str]:
        return [f"{b.spec.label}: {b.spec.endpoint}"
                + (" (implicit TLS)" if b.spec.implicit_tls else "")
                for b in self._bound.values()]

    async def stop(self, grace: float) -> None:
        for bound in self._bound.values():
            bound.close()
        self._bound.clear()
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)

    # -- per connection -----------------------------------------------------------------

    async def _accept_loop(self, key: tuple[str, Endpoint, bool],
                           sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _addr = await loop.sock_accept(sock)
            except asyncio.CancelledError:
                raise
            except OSError as exc:  # EMFILE and friends: back off instead of spinning
                log.warning("%s: accept failed: %s", self.name, exc)
                await asyncio.sleep(0.1)
                continue
            task = asyncio.create_task(self._serve(key, conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve(self, key: tuple[str, Endpoint, bool], conn: socket.socket) -> None:
        bound = self._bound.get(key)
        cid = "c-" + secrets.token_hex(6)
        writer: asyncio.StreamWriter | None = None
        try:
            conn.setblocking(False)
            if bound is None:
                return
            spec = bound.spec
            if len(self._tasks) > self.max_connections:
                log.warning("%s: connection limit %d reached, refusing %s", self.name,
                            self.max_connections, conn.getpeername())
                return
            info = await self._connection_info(cid, spec, conn)
            if info is None:
                return
            reader, writer = await self._open_streams(conn, spec.implicit_tls)
            if writer is None:
                log.info("%s: TLS handshake with %s failed", self.name, info.remote_ip,
                         extra={"ctx": {"conn": cid}})
                return
            if spec.implicit_tls:
                info = info.with_tls(writer)
            await spec.handler(reader, writer, info)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("%s: connection %s failed", self.name, cid)
        finally:
            if writer is not None:
                writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), 5)
            else:
                conn.close()

    async def _open_streams(
        self, conn: socket.socket, implicit_tls: bool
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter | None]:
        """Wrap the accepted socket in streams, doing the TLS handshake first if asked.

        The protocol gets a client_connected_cb so that a later STARTTLS through
        ``writer.start_tls`` runs server side."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=STREAM_LIMIT, loop=loop)
        made: asyncio.Future[asyncio.StreamWriter] = loop.create_future()

        def connected(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            if not made.done():
                made.set_result(w)

        protocol = asyncio.StreamReaderProtocol(reader, connected, loop=loop)
        try:
            await loop.connect_accepted_socket(
                lambda: protocol, conn,
                ssl=self.tls_context if implicit_tls else None,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if implicit_tls else None)
        except (ssl.SSLError, OSError, TimeoutError, ConnectionError):
            return reader, None
        return reader, await made

    async def _connection_info(self, cid: str, spec: ListenerSpec,
                               conn: socket.socket) -> ConnectionInfo | None:
        peer = conn.getpeername()
        local = conn.getsockname()
        peer_ip, peer_port = _unmap(peer[0]), int(peer[1])
        local_ip, local_port = _unmap(local[0]), int(local[1])
        info = ConnectionInfo(connection_id=cid, listener=spec.label, local_ip=local_ip,
                              local_port=local_port, remote_ip=peer_ip,
                              remote_port=peer_port, peer_ip=peer_ip, proxied=False)
        if not self.is_trusted_proxy(peer_ip):
            return info
        try:
            # Read exactly the header from the raw socket: whatever follows it (a TLS
            # ClientHello, a pipelined command) stays in the kernel for the next layer.
            proxied = await read_proxy_header_from_socket(conn)
        except ProxyHeaderError as exc:
            log.warning("%s: bad PROXY header from trusted proxy %s: %s", self.name,
                        peer_ip, exc, extra={"ctx": {"conn": cid}})
            return None
        if proxied is None:
            return info
        return replace(info, remote_ip=proxied.source_ip, remote_port=proxied.source_port,
                       local_ip=proxied.destination_ip,
                       local_port=proxied.destination_port, proxied=True)
