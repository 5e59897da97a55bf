"""The node's HTTP service: /healthz now; web mail and ActiveSync mount here later.

Role: run one Starlette application under uvicorn on the node's own sockets (plain
HTTP for the health listener, TLS for the HTTPS listener), so every listener is bound
by gateway.listeners and logged by the node. Invariant: /healthz answers 200 only when
the store answers within HEALTH_STORE_TIMEOUT, 503 otherwise, and never raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway import __version__
from gateway.config import Endpoint
from gateway.listeners import bind_socket

log = logging.getLogger("gateway.http")

HEALTH_STORE_TIMEOUT = 2.0


def health_app(server_name: str, probe: Callable[[], Awaitable[dict[str, Any]]]) -> Starlette:
    """The health application. ``probe`` returns details and raises if unhealthy."""
    started = time.monotonic()

    async def healthz(_request: Request) -> JSONResponse:
        body: dict[str, Any] = {"server": server_name, "version": __version__,
                                "uptime_seconds": round(time.monotonic() - started, 1)}
        try:
            body.update(await asyncio.wait_for(probe(), HEALTH_STORE_TIMEOUT))
        except Exception as exc:  # any failure of the probe is "unhealthy", never a 500
            log.warning("health check failed: %s", exc)
            body.update(status="unavailable", reason=type(exc).__name__)
            return JSONResponse(body, status_code=503)
        body["status"] = "ok"
        return JSONResponse(body)

    return Starlette(routes=[Route("/healthz", healthz, methods=["GET", "HEAD"])])


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
                                timeout_graceful_shutdown=5)
        server = _NodeOwnedSignalsServer(config)
        self._server = server
        if self._tls is not None:
            # uvicorn builds its SSL context from files; we pass ours through the
            # loop's create_server by wrapping the config's ssl attribute.
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
