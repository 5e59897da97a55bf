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
from gateway.listeners.proxy import ProxyHeaderError, read_proxy_header

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


def _unmap(ip: str) -> str:
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


class _Bound:
    """One listening endpoint with its asyncio server and spec."""

    def __init__(self, spec: ListenerSpec, server: asyncio.Server) -> None:
        self.spec = spec
        self.server = server


class StreamListenerSet:
    """A reconfigurable set of stream listeners sharing limits, TLS and proxy trust."""

    def __init__(self, name: str, *, tls_context: ssl.SSLContext | None,
                 trusted_proxies: Iterable[str] = (),
                 max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
        self.name = name
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
            bound = self._bound.pop(key)
            bound.server.close()
            log.info("%s: stopped listening on %s (%s)", self.name, key[1], key[0])
        for key, spec in wanted.items():
            if key in self._bound:
                self._bound[key].spec = spec
                continue
            if spec.implicit_tls and self.tls_context is None:
                raise ValueError(f"{spec.label}: implicit TLS needs a TLS context")
            sock = bind_socket(spec.endpoint)
            server = await asyncio.start_server(self._client_callback(key), sock=sock,
                                                limit=STREAM_LIMIT)
            self._bound[key] = _Bound(spec, server)
            log.info("%s: listening on %s (%s%s)", self.name, spec.endpoint, spec.label,
                     ", implicit TLS" if spec.implicit_tls else "")

    def describe(self) -> list[str]:
        return [f"{b.spec.label}: {b.spec.endpoint}"
                + (" (implicit TLS)" if b.spec.implicit_tls else "")
                for b in self._bound.values()]

    async def stop(self, grace: float) -> None:
        for bound in self._bound.values():
            bound.server.close()
        self._bound.clear()
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)

    # -- per connection -----------------------------------------------------------------

    def _client_callback(
        self, key: tuple[str, Endpoint, bool]
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def on_connect(reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            try:
                await self._serve(key, reader, writer)
            finally:
                self._tasks.discard(task)

        return on_connect

    async def _serve(self, key: tuple[str, Endpoint, bool], reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        bound = self._bound.get(key)
        cid = "c-" + secrets.token_hex(6)
        try:
            if bound is None:
                return
            spec = bound.spec
            if len(self._tasks) > self.max_connections:
                log.warning("%s: connection limit %d reached, refusing %s", self.name,
                            self.max_connections, writer.get_extra_info("peername"))
                return
            info = await self._connection_info(cid, spec, reader, writer)
            if info is None:
                return
            if spec.implicit_tls:
                assert self.tls_context is not None
                try:
                    await writer.start_tls(self.tls_context,
                                           ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT)
                except (ssl.SSLError, OSError, TimeoutError) as exc:
                    log.info("%s: TLS handshake with %s failed: %s", self.name,
                             info.remote_ip, exc, extra={"ctx": {"conn": cid}})
                    return
                info = info.with_tls(writer)
            await spec.handler(reader, writer, info)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("%s: connection %s failed", self.name, cid)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 5)

    async def _connection_info(self, cid: str, spec: ListenerSpec,
                               reader: asyncio.StreamReader,
                               writer: asyncio.StreamWriter) -> ConnectionInfo | None:
        sock: socket.socket = writer.get_extra_info("socket")
        peer = sock.getpeername()
        local = sock.getsockname()
        peer_ip, peer_port = _unmap(peer[0]), int(peer[1])
        local_ip, local_port = _unmap(local[0]), int(local[1])
        info = ConnectionInfo(connection_id=cid, listener=spec.label, local_ip=local_ip,
                              local_port=local_port, remote_ip=peer_ip,
                              remote_port=peer_port, peer_ip=peer_ip, proxied=False)
        if not self.is_trusted_proxy(peer_ip):
            return info
        try:
            proxied = await read_proxy_header(reader)
        except ProxyHeaderError as exc:
            log.warning("%s: bad PROXY header from trusted proxy %s: %s", self.name,
                        peer_ip, exc, extra={"ctx": {"conn": cid}})
            return None
        if proxied is None:
            return info
        return replace(info, remote_ip=proxied.source_ip, remote_port=proxied.source_port,
                       local_ip=proxied.destination_ip,
                       local_port=proxied.destination_port, proxied=True)
