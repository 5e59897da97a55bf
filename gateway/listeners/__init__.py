"""Listening sockets shared by every front end.

Role: turn an ``Endpoint`` into a bound, listening socket with the options every
listener wants (SO_REUSEADDR; IPV6_V6ONLY so "0.0.0.0" and "::" can be bound side by
side, as Exchange's default bindings are; SO_REUSEPORT available for several worker
processes per node), and explain bind failures in operator terms. TLS, PROXY protocol
and connection limits build on this module as the protocol issues arrive.
"""

from __future__ import annotations

import errno
import socket

from gateway.config import Endpoint
from gateway.errors import GatewayError

LISTEN_BACKLOG = 1024


class BindError(GatewayError):
    """A listener could not bind; the message says why in operator terms."""


def bind_socket(endpoint: Endpoint, *, reuse_port: bool = False) -> socket.socket:
    """Bind and listen on ``endpoint``; the socket is non-blocking."""
    family = socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET
    # proto IPPROTO_TCP (not 0): accepted sockets inherit it, and asyncio only sets
    # TCP_NODELAY on sockets that say they are TCP. Without it a reply written in two
    # pieces (HTTP headers, then body) waits ~40 ms for the peer's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if reuse_port and hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((endpoint.host, endpoint.port))
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot listen on {endpoint}: {_explain(exc, endpoint)}") from None
    return sock


def _explain(exc: OSError, endpoint: Endpoint) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "the address is already in use (another server or another gateway?)"
    if exc.errno == errno.EACCES and endpoint.port < 1024:
        return ("permission denied: ports below 1024 need root or "
                "CAP_NET_BIND_SERVICE (see deploy/gateway.service)")
    if exc.errno == errno.EADDRNOTAVAIL:
        return "no such local address on this machine"
    return exc.strerror or str(exc)


# Re-exported for the protocol front ends (docs/dev/protocol-seams.md). Imported last:
# stream.py uses bind_socket from this module.
from gateway.listeners.proxy import (  # noqa: E402
    ProxiedAddresses,
    ProxyHeaderError,
    read_proxy_header,
)
from gateway.listeners.stream import (  # noqa: E402
    ConnectionHandler,
    ConnectionInfo,
    ListenerSpec,
    StreamListenerSet,
    pause_for_starttls,
    starttls_buffer_empty,
)

__all__ = [
    "LISTEN_BACKLOG",
    "BindError",
    "ConnectionHandler",
    "ConnectionInfo",
    "ListenerSpec",
    "ProxiedAddresses",
    "ProxyHeaderError",
    "StreamListenerSet",
    "bind_socket",
    "pause_for_starttls",
    "read_proxy_header",
    "starttls_buffer_empty",
]
