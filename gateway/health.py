"""The node's health application: /healthz on the health and HTTPS listeners.

Role: the Starlette application that answers load balancers and monitoring. The HTTP
server itself (``HttpService``) lives in ``gateway.http.server`` and is re-exported
here for the composition root. Invariant: /healthz answers 200 only when the store
answers within HEALTH_STORE_TIMEOUT, 503 otherwise, and never raises.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway import __version__
from gateway.http.server import HttpService

__all__ = ["HEALTH_STORE_TIMEOUT", "HttpService", "health_app"]

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
