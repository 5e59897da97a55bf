"""The POP3 service of a node: listeners from Set-PopSettings, sessions, live changes.

Role: implement ``gateway.services.Service`` for POP3. The listeners follow the
organisation's POP settings (``UnencryptedOrTLSBindings`` → plain/STLS listeners
labelled "pop3", ``SSLBindings`` → implicit TLS listeners labelled "pop3s"; unset:
the node's quick-start ``bindings["pop3"]``/``["pop3s"]``). On every organisation
change the settings are re-read: open sessions see the new login type, limits and
timeouts at their next command, and the listener set binds added endpoints and closes
removed ones without a restart.

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
from gateway.config import Endpoint
from gateway.errors import GatewayError
from gateway.listeners import ConnectionInfo, ListenerSpec, StreamListenerSet
from gateway.protocol_settings import (
    ProtocolSettings,
    SettingsSource,
    UserConnectionCounter,
    load_pop_settings,
)
from protocols.pop3.maildrop import MaildropStore
from protocols.pop3.session import Authenticator, Pop3Context, Pop3Session

log = logging.getLogger("protocols.pop3")

MAX_CONNECTIONS = 5000  # per node process, whatever the per-user limit


class Pop3Service:
    """``gateway.services.Service`` for POP3."""

    name = "pop3"

    def __init__(self, *, org: SettingsSource, mail: MaildropStore, auth: Authenticator,
                 tls: ssl.SSLContext | None,
                 node_bindings: Mapping[str, Iterable[Endpoint]],
                 trusted_proxies: Iterable[str] = (),
                 max_connections: int = MAX_CONNECTIONS,
                 tls_client_auth: ssl.SSLContext | None = None,
                 server_certificate: bytes | None = None) -> None:
        """``tls_client_auth``: the node's client-auth context (docs/client-certificates
        .md), used instead of ``tls`` for POP3S and STLS so that AUTH EXTERNAL can be
        offered; ``server_certificate``: DER of the certificate served, for NTLM channel
        binding (RFC 5929 §4.1)."""
        if tls_client_auth is not None and tls is not None:
            tls = tls_client_auth
        self._org = org
        self._node_bindings = node_bindings
        self.ctx = Pop3Context(settings=ProtocolSettings.defaults("pop", node_bindings),
                               mail=mail, auth=auth, tls_context=tls,
                               connections=UserConnectionCounter(),
                               channel_binding=None if server_certificate is None else
                               channel_bindings_hash(tls_server_end_point(server_certificate)))
        self.listeners = StreamListenerSet("pop3", tls_context=tls,
                                           trusted_proxies=tuple(trusted_proxies),
                                           max_connections=max_connections)

    @property
    def settings(self) -> ProtocolSettings:
        return self.ctx.settings

    async def start(self) -> None:
        self.ctx.settings = await load_pop_settings(self._org, self._node_bindings)
        await self.listeners.apply(self._specs())

    async def stop(self, grace: float) -> None:
        await self.listeners.stop(grace)

    async def on_org_change(self, version: int) -> None:
        self.ctx.settings = await load_pop_settings(self._org, self._node_bindings)
        try:
            await self.listeners.apply(self._specs())
        except GatewayError as exc:
            log.error("pop3: cannot apply the new bindings: %s", exc)

    def describe(self) -> list[str]:
        return self.listeners.describe()

    def _specs(self) -> list[ListenerSpec]:
        s = self.ctx.settings
        specs = [ListenerSpec("pop3", e, False, self.handle)
                 for e in s.unencrypted_or_tls_bindings]
        if self.ctx.tls_context is None and s.ssl_bindings:
            log.warning("pop3: no TLS certificate, SSLBindings %s not served",
                        ", ".join(map(str, s.ssl_bindings)))
        elif self.ctx.tls_context is not None:
            specs += [ListenerSpec("pop3s", e, True, self.handle) for e in s.ssl_bindings]
        return specs

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     info: ConnectionInfo) -> None:
        """The listener's ``ConnectionHandler`` (the listener set closes the writer)."""
        await Pop3Session(self.ctx, reader, writer, info).run()
