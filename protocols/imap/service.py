"""The IMAP4 service of a node: listeners from Set-ImapSettings, sessions, live changes.

Role: implement ``gateway.services.Service`` for IMAP. Listeners follow the
organisation's IMAP settings (``UnencryptedOrTLSBindings`` -> plain/STARTTLS listeners
labelled "imap", ``SSLBindings`` -> implicit TLS listeners labelled "imaps"; unset: the
node's quick-start ``bindings["imap"]``/``["imaps"]``). On every organisation change
the settings are re-read: open sessions see the new login type and timeouts at their
next command, and the listener set binds added endpoints and closes removed ones
without a restart.

Invariants: a failure to bind at start stops the node (``BindError``); a failure to
bind after a change is logged and leaves the other listeners serving; the SSL
listeners are skipped (with a warning) when the node has no TLS context.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterable, Mapping

from auth.ntlm.verify import channel_bindings_hash, tls_server_end_point
from auth.service import AuthService
from gateway.config import Endpoint
from gateway.errors import GatewayError
from gateway.listeners import ConnectionInfo, ListenerSpec, StreamListenerSet
from gateway.protocol_settings import ProtocolSettings, load_imap_settings
from gateway.store import Store
from protocols.imap.session import Session
from protocols.imap.state import ImapContext

log = logging.getLogger("protocols.imap")

MAX_CONNECTIONS = 5000  # per node process, whatever the per-user limit


class ImapService:
    """``gateway.services.Service`` for IMAP4."""

    name = "imap"

    def __init__(self, *, store: Store, auth: AuthService, server_name: str,
                 tls: ssl.SSLContext | None,
                 node_bindings: Mapping[str, Iterable[Endpoint]],
                 trusted_proxies: Iterable[str] = (),
                 max_connections: int = MAX_CONNECTIONS,
                 tls_client_auth: ssl.SSLContext | None = None,
                 server_certificate: bytes | None = None) -> None:
        """``tls_client_auth``: the node's client-auth context (docs/client-certificates
        .md), used instead of ``tls`` for IMAPS and STARTTLS so that AUTHENTICATE
        EXTERNAL can be offered; ``server_certificate``: DER of the certificate served,
        for NTLM channel binding (RFC 5929 §4.1)."""
        if tls_client_auth is not None and tls is not None:
            tls = tls_client_auth
        self._store = store
        self._node_bindings = node_bindings
        self.settings = ProtocolSettings.defaults("imap", node_bindings)
        self.ctx = ImapContext(store=store, auth=auth, server_name=server_name,
                               tls_context=tls, policy=lambda: self.settings,
                               max_message_size=store.max_message_size,
                               channel_binding=None if server_certificate is None else
                               channel_bindings_hash(tls_server_end_point(server_certificate)))
        self.listeners = StreamListenerSet("imap", tls_context=tls,
                                           trusted_proxies=tuple(trusted_proxies),
                                           max_connections=max_connections)

    async def start(self) -> None:
        self.settings = await load_imap_settings(self._store.org, self._node_bindings)
        await self.listeners.apply(self._specs())

    async def stop(self, grace: float) -> None:
        await self.listeners.stop(grace)

    async def on_org_change(self, version: int) -> None:
        self.settings = await load_imap_settings(self._store.org, self._node_bindings)
        try:
            await self.listeners.apply(self._specs())
        except GatewayError as exc:
            log.error("imap: cannot apply the new bindings: %s", exc)

    def describe(self) -> list[str]:
        return self.listeners.describe()

    def _specs(self) -> list[ListenerSpec]:
        s = self.settings
        specs = [ListenerSpec("imap", e, False, self.handle)
                 for e in s.unencrypted_or_tls_bindings]
        if self.ctx.tls_context is None and s.ssl_bindings:
            log.warning("imap: no TLS certificate, SSLBindings %s not served",
                        ", ".join(map(str, s.ssl_bindings)))
        elif self.ctx.tls_context is not None:
            specs += [ListenerSpec("imaps", e, True, self.handle) for e in s.ssl_bindings]
        return specs

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     info: ConnectionInfo) -> None:
        """The listener's ``ConnectionHandler`` (the listener set closes the writer)."""
        await Session(self.ctx, reader, writer, info).run()
