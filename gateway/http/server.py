"""The node's HTTP server: one ASGI application under uvicorn on the node's sockets.

Role: run an application (health, later web mail and ActiveSync) on sockets bound by
``gateway.listeners.bind_socket`` - plain HTTP for the health listener, TLS for HTTPS -
with the node owning signals and start-up errors. Requests on TLS connections carry
the verified client certificate in their scope (``gateway.http.tls``).

Invariants: uvicorn never installs signal handlers (the node owns SIGTERM/SIGINT);
``start`` returns once the sockets are served, or raises what stopped uvicorn; the
server's SSL context is the gateway's own (``gateway.tls``), not one uvicorn builds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import uvicorn

from gateway.config import Endpoint
from gateway.http.tls import TlsH11Protocol
from gateway.listeners import bind_socket

log = logging.getLogger("gateway.http")

#: Seconds uvicorn lets in-flight requests finish on shutdown.
GRACEFUL_SHUTDOWN_SECONDS = 5
#: Keep-alive idle timeout (seconds) of an HTTP connection.
KEEP_ALIVE_SECONDS = 30


class _NodeOwnedSignalsServer(uvicorn.Server):
    """uvicorn's server without its signal capture: the node owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpService:
    """One uvicorn server bound to the given endpoints, optionally with TLS."""

    def __init__(self, name: str, app: Any, endpoints: tuple[Endpoint, ...],
                 tls: ssl.SSLContext | None = None) -> None:
        self.name = name
        self._app = app
        self._endpoints = endpoints
        self._tls = tls
        self._sockets: list[socket.socket] = []
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if not self._endpoints:
            return
        self._sockets = [bind_socket(e) for e in self._endpoints]
        config = uvicorn.Config(self._app, log_config=None, lifespan="off",
                                access_log=False, server_header=False,
                                http=TlsH11Protocol,
                                timeout_keep_alive=KEEP_ALIVE_SECONDS,
                                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS)
        server = _NodeOwnedSignalsServer(config)
        self._server = server
        if self._tls is not None:
            # uvicorn builds its SSL context from files; ours (with the client
            # certificate settings) replaces it before the sockets are served.
            config.load()
            config.ssl = self._tls
        self._task = asyncio.create_task(server.serve(sockets=self._sockets))
        # uvicorn offers no start-up event; poll its flag until bound or failed.
        while not server.started and not self._task.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if self._task.done():
            self._task.result()

    async def stop(self, grace: float) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace + 1)
        except TimeoutError:
            self._server.force_exit = True
            with contextlib.suppress(BaseException):
                await self._task
        for sock in self._sockets:
            sock.close()

    async def on_org_change(self, version: int) -> None:
        return None

    def describe(self) -> list[str]:
        scheme = "https" if self._tls else "http"
        return [f"{self.name}: {scheme}://{e}/" for e in self._endpoints]
