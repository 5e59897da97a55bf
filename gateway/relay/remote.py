"""The remote SMTP delivery agent: connection reuse and per-destination limits.

``RemoteAgent.deliver(domain, sender, recipients, body)`` routes the domain (send
connector, smart hosts or MX), takes a connection from the pool or opens one
(trying each destination address in order, RFC 5321 §5.1), runs one mail
transaction and maps every recipient to delivered / failed / retry.

Invariants:
* at most ``connector.max_per_domain`` connections per (connector, domain) exist at
  once (Exchange's MaxPerDomainOutboundConnections, default 20); further deliveries
  wait for a slot;
* an idle connection is reused for the same destination for at most
  ``IDLE_SECONDS`` and ``MAX_TRANSACTIONS_PER_CONNECTION`` transactions, then QUIT;
* any uncertainty after the end of data (connection lost before the final reply) is
  a retry: remote delivery is at least once, never silently dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from gateway.relay.routing import (
    Destination,
    Resolver,
    RoutingError,
    destinations,
    select_connector,
)
from gateway.relay.settings import TransportSettings
from gateway.relay.smtp_client import SmtpClient, SmtpClientError
from gateway.store.send_connectors import SendConnector

log = logging.getLogger("gateway.relay.remote")

IDLE_SECONDS = 30.0
MAX_IDLE_PER_KEY = 20
MAX_TRANSACTIONS_PER_CONNECTION = 100
NO_CONNECTOR = ("451 4.4.0 UnreachableDestination; no send connector has an address "
                "space for this domain")


@dataclass(frozen=True)
class RecipientResult:
    """``status`` "delivered", "failed" or "retry"; ``reply`` what the peer said (or
    our diagnostic); ``connection_failure`` for retries caused by an unreachable
    destination (Exchange's OutboundConnectionFailureRetryInterval)."""

    status: str
    reply: str
    remote_mta: str = ""
    connection_failure: bool = False


def _classify(code: int) -> str:
    if 200 <= code < 300:
        return "delivered"
    return "failed" if code >= 500 else "retry"


class RemoteAgent:
    """Delivers to remote domains over SMTP (see module docstring)."""

    def __init__(self, *, helo_name: str,
                 connectors: Callable[[], Awaitable[Sequence[SendConnector]]],
                 resolver: Resolver, settings: Callable[[], TransportSettings],
                 tls_context: ssl.SSLContext | None = None) -> None:
        self._helo = helo_name
        self._connectors = connectors
        self._resolver = resolver
        self._settings = settings
        self._tls_context = tls_context
        self._slots: dict[tuple[int, str], asyncio.Semaphore] = {}
        self._idle: dict[tuple[object, ...], list[tuple[float, SmtpClient]]] = {}
        self.connections_opened = 0

    async def deliver(self, domain: str, sender: str, recipients: Sequence[str],
                      body: bytes) -> list[RecipientResult]:
        try:
            connector = select_connector(domain, await self._connectors())
            if connector is None:
                return [RecipientResult("retry", NO_CONNECTOR)] * len(recipients)
            dests = await destinations(domain, connector, self._resolver)
        except RoutingError as exc:
            status = "failed" if exc.permanent else "retry"
            return [RecipientResult(status, exc.reply)] * len(recipients)
        slot = self._slots.setdefault((connector.id, domain),
                                      asyncio.Semaphore(connector.max_per_domain))
        async with slot:
            return await self._deliver_via(connector, dests, sender, recipients, body)

    async def _deliver_via(self, connector: SendConnector, dests: Sequence[Destination],
                           sender: str, recipients: Sequence[str],
                           body: bytes) -> list[RecipientResult]:
        client, error = await self._connection(connector, dests)
        if client is None:
            return [RecipientResult("retry", error, connection_failure=True)] * len(recipients)
        mta = f"{client.host} ({client.address})"
        try:
            result = await client.send_mail(sender, recipients, body)
        except SmtpClientError as exc:
            await client.close()
            status = "failed" if exc.permanent else "retry"
            return [RecipientResult(status, exc.reply, mta)] * len(recipients)
        self._release(connector, client)
        out: list[RecipientResult] = []
        for reply in result.recipients:
            if reply.code >= 300:
                out.append(RecipientResult(_classify(reply.code), reply.text, mta))
            elif result.data is None:
                out.append(RecipientResult("retry", "451 4.4.0 no DATA reply", mta))
            else:
                out.append(RecipientResult(_classify(result.data.code), result.data.text, mta))
        return out

    def _key(self, connector: SendConnector, d: Destination) -> tuple[object, ...]:
        return (connector.id, d.address, d.port, connector.require_tls,
                connector.auth_mechanism, connector.auth_username)

    async def _connection(self, connector: SendConnector, dests: Sequence[Destination]
                          ) -> tuple[SmtpClient | None, str]:
        now = time.monotonic()
        for d in dests:
            pool = self._idle.get(self._key(connector, d), [])
            while pool:
                since, client = pool.pop()
                if now - since <= IDLE_SECONDS and not client.broken:
                    return client, ""
                await client.close()
        s = self._settings()
        error = "451 4.4.0 no destination"
        auth = None
        if connector.auth_mechanism != "None":
            auth = (connector.auth_username, connector.auth_password)
        for d in dests:
            client = SmtpClient(d.host, d.address, d.port, helo_name=self._helo,
                                connect_timeout=s.connect_timeout,
                                command_timeout=s.command_timeout,
                                data_timeout=s.data_timeout)
            try:
                await self._connect(client, connector, auth, use_tls=True)
            except SmtpClientError as exc:
                log.info("relay: %s[%s]:%d: %s", d.host, d.address, d.port, exc.reply)
                error = exc.reply
                if not exc.tls_failed or connector.require_tls:
                    continue
                # Opportunistic TLS (RFC 3207 §4.1, RFC 7435): a failed handshake falls
                # back to plaintext on a new connection, as Postfix does at level "may".
                client = SmtpClient(d.host, d.address, d.port, helo_name=self._helo,
                                    connect_timeout=s.connect_timeout,
                                    command_timeout=s.command_timeout,
                                    data_timeout=s.data_timeout)
                try:
                    await self._connect(client, connector, auth, use_tls=False)
                except SmtpClientError as exc2:
                    error = exc2.reply
                    continue
            self.connections_opened += 1
            return client, error
        return None, error

    async def _connect(self, client: SmtpClient, connector: SendConnector,
                       auth: tuple[str, str] | None, *, use_tls: bool) -> None:
        await client.connect(require_tls=connector.require_tls,
                             tls_context=self._tls_context, auth=auth,
                             auth_requires_tls=connector.auth_mechanism
                             == "BasicAuthRequireTLS", use_tls=use_tls)

    def _release(self, connector: SendConnector, client: SmtpClient) -> None:
        key = (connector.id, client.address, client.port, connector.require_tls,
               connector.auth_mechanism, connector.auth_username)
        pool = self._idle.setdefault(key, [])
        if (client.broken or client.transactions >= MAX_TRANSACTIONS_PER_CONNECTION
                or len(pool) >= MAX_IDLE_PER_KEY):
            task = asyncio.ensure_future(client.close())
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
            return
        pool.append((time.monotonic(), client))

    async def close(self) -> None:
        """QUIT every idle connection."""
        idle, self._idle = self._idle, {}
        for pool in idle.values():
            for _, client in pool:
                with contextlib.suppress(Exception):
                    await client.close()
