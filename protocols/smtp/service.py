"""The SMTP front door as a node service (``gateway.services.Service``).

Role: keep one ``StreamListenerSet`` bound to the endpoints of this server's enabled
receive connectors (``SmtpPolicy.listen_endpoints``), rebind when the organisation
changes (``on_org_change``: no restart), and run an ``SmtpSession`` per connection.
The listener set reads PROXY headers from ``settings.trusted_proxies`` only and does
implicit TLS (SMTPS, RFC 8314) before the session starts.

Invariants: a connector change that cannot be bound (address in use) is logged and
leaves the other listeners serving; on stop, sessions get the grace period and are
then cut off; the default connectors exist before the first bind.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.config import Endpoint
from gateway.connectors import SmtpPolicy, ensure_default_connectors
from gateway.listeners import BindError
from gateway.listeners.stream import ConnectionInfo, ListenerSpec, StreamListenerSet
from gateway.relay.engine import Relay
from protocols.smtp.auth import server_channel_binding
from protocols.smtp.context import SmtpContext
from protocols.smtp.protocol_log import ProtocolLog
from protocols.smtp.session import SmtpSession
from protocols.smtp.tracking_writer import TrackingWriter
from protocols.smtp.workers import WorkerPool, configured_workers

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Mapping, Sequence

    from auth.service import AuthService
    from gateway.store import Store

log = logging.getLogger("protocols.smtp")


class SmtpService:
    """Receive connectors on the wire."""

    name = "smtp"

    def __init__(self, *, store: Store, auth: AuthService | None, server_name: str,
                 tls: ssl.SSLContext | None, trusted_proxies: Sequence[str] = (),
                 bindings: Mapping[str, Sequence[Endpoint]] | None = None,
                 log_dir: Path | None = None, policy_refresh: float = 1.0,
                 create_defaults: bool = True, workers: int | None = None,
                 settings_source: str | None = None, worker: bool = False,
                 relay: Relay | None = None,
                 tls_client_auth: ssl.SSLContext | None = None,
                 server_certificate: bytes | None = None) -> None:
        """``tls_client_auth`` (the node's client-auth context, or None) is used for
        implicit TLS and for STARTTLS on submission connectors; ``server_certificate``
        (DER of the certificate ``tls`` serves) gives NTLM its channel binding."""
        self.store = store
        self.server_name = server_name
        self.bindings = bindings or {}
        self.create_defaults = create_defaults
        self.protocol_log = ProtocolLog(log_dir) if log_dir is not None else None
        self.policy = SmtpPolicy(store, server_name=server_name,
                                 refresh_interval=policy_refresh)
        self.tracking = TrackingWriter(store.tracking)
        self.ctx = SmtpContext(policy=self.policy, store=store, auth=auth,
                               tls_context=tls, server_name=server_name,
                               protocol_log=self.protocol_log, tracking=self.tracking,
                               relay=relay, tls_client_auth=tls_client_auth,
                               channel_binding=server_channel_binding(server_certificate))
        # Several processes share the ports (SO_REUSEPORT) only when asked for:
        # GATEWAY_SMTP_WORKERS (protocols.smtp.workers).
        self.workers = 1 if worker else (workers or configured_workers())
        shared = worker or self.workers > 1
        # Implicit TLS (RFC 8314) is submission: it may ask for a client certificate.
        self.listeners = StreamListenerSet("smtp", tls_context=tls_client_auth or tls,
                                           trusted_proxies=trusted_proxies,
                                           reuse_port=shared)
        self.pool = WorkerPool(self.workers - 1, settings_source) \
            if not worker and self.workers > 1 else None
        self.applied_version: int | None = None

    async def start(self) -> None:
        if self.create_defaults:
            await ensure_default_connectors(self.store, self.server_name, self.bindings)
        if self.protocol_log is not None:
            self.protocol_log.start()
        self.tracking.start()
        await self._apply(raise_errors=True)
        if self.pool is not None:
            await self.pool.start()

    async def on_org_change(self, version: int) -> None:
        self.policy.invalidate()
        await self._apply(raise_errors=False)

    async def stop(self, grace: float) -> None:
        self.ctx.shutting_down = True
        if self.pool is not None:
            await self.pool.stop(grace)
        await self.listeners.stop(grace)
        await self.tracking.close()
        if self.protocol_log is not None:
            await self.protocol_log.close()

    def describe(self) -> list[str]:
        extra = f" ({self.workers} processes)" if self.workers > 1 else ""
        return [f"smtp {line}{extra}" for line in self.listeners.describe()]

    async def _apply(self, *, raise_errors: bool) -> None:
        snapshot = await self.policy.snapshot()
        endpoints = await self.policy.listen_endpoints()
        specs = []
        for ep in endpoints:
            if ep.implicit_tls and self.ctx.tls_context is None:
                log.error("smtp: %s:%d needs TLS but the node has no certificate",
                          ep.host, ep.port)
                continue
            specs.append(ListenerSpec(label="smtps" if ep.implicit_tls else "smtp",
                                      endpoint=Endpoint(ep.host, ep.port),
                                      implicit_tls=ep.implicit_tls, handler=self._handle))
        try:
            await self.listeners.apply(specs)
        except BindError as exc:
            if raise_errors:
                raise
            log.error("smtp: receive connector bindings not applied: %s", exc)
        self.applied_version = snapshot.version

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      info: ConnectionInfo) -> None:
        await SmtpSession(reader, writer, info, self.ctx).run()
