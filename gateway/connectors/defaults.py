"""The default receive connectors of a server (exchange-semantics.md §1.3).

Role: ``ensure_default_connectors`` creates, when missing, the connectors a new
Exchange front end has, bound where the node settings say:

* ``Default Frontend <server>``: the port-25 role; AnonymousUsers, ExchangeLegacyServers,
  ExchangeServers; Tls, BasicAuth, BasicAuthRequireTLS, ExchangeServer, Integrated;
  every IPv4 and IPv6 remote address; ProtocolLoggingLevel Verbose;
* ``Client Frontend <server>``: the port-587 role; ExchangeUsers; Tls, BasicAuth,
  BasicAuthRequireTLS, Integrated;
* ``Client Frontend TLS <server>``: a gateway extension, the same with implicit TLS
  (SMTPS, RFC 8314 §3.3).

Invariant: an existing connector of that name is never changed (the operator owns it);
a default that would conflict with the operator's connectors is skipped and logged,
never forced; a default the operator removed is not created again (the names created
per server are remembered in the organisation settings section
``receive_connector_defaults``). No default gives relay rights to anonymous senders
(§3.3).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gateway.connectors.model import ReceiveConnector, default_remote_ranges
from gateway.connectors.ranges import parse_binding
from gateway.errors import AlreadyExists, NotFound, ValidationError

if TYPE_CHECKING:
    from gateway.store import Store

log = logging.getLogger(__name__)

SETTINGS_SECTION = "receive_connector_defaults"

_CLIENT_AUTH = frozenset({"Tls", "BasicAuth", "BasicAuthRequireTLS", "Integrated"})


def default_connectors(server_name: str, bindings: Mapping[str, Sequence[Any]]
                       ) -> list[ReceiveConnector]:
    """The default connectors for ``server_name`` (without ids), for the binding keys
    present: ``smtp``, ``submission``, ``submissions``."""
    out: list[ReceiveConnector] = []
    ranges = default_remote_ranges("Client")

    def binds(key: str) -> tuple[Any, ...]:
        return tuple(parse_binding(str(e)) for e in bindings.get(key, ()) or ())

    if binds("smtp"):
        out.append(ReceiveConnector(
            id=0, server=server_name, name=f"Default Frontend {server_name}",
            usage="Custom", bindings=binds("smtp"), remote_ip_ranges=ranges,
            permission_groups=frozenset({"AnonymousUsers", "ExchangeLegacyServers",
                                         "ExchangeServers"}),
            auth_mechanism=_CLIENT_AUTH | {"ExchangeServer"},
            protocol_logging_level="Verbose",
            max_inbound_connection_per_source=20))
    if binds("submission"):
        out.append(ReceiveConnector(
            id=0, server=server_name, name=f"Client Frontend {server_name}",
            usage="Client", bindings=binds("submission"), remote_ip_ranges=ranges,
            permission_groups=frozenset({"ExchangeUsers"}), auth_mechanism=_CLIENT_AUTH,
            message_rate_limit=None))
    if binds("submissions"):
        out.append(ReceiveConnector(
            id=0, server=server_name, name=f"Client Frontend TLS {server_name}",
            usage="Client", bindings=binds("submissions"), remote_ip_ranges=ranges,
            permission_groups=frozenset({"ExchangeUsers"}), auth_mechanism=_CLIENT_AUTH,
            implicit_tls=True))
    return out


async def ensure_default_connectors(store: Store, server_name: str,
                                    bindings: Mapping[str, Sequence[Any]]
                                    ) -> list[ReceiveConnector]:
    """Create the default connectors this server never had; returns those created.
    Safe to call on every node start and from several nodes at once."""
    created: list[ReceiveConnector] = []
    key = server_name.casefold()
    settings = await store.org.get_settings(SETTINGS_SECTION)
    done_raw = settings.get(key)
    done = {str(n).casefold() for n in done_raw} if isinstance(done_raw, list) else set()
    newly_done: list[str] = []
    for connector in default_connectors(server_name, bindings):
        if connector.name.casefold() in done:
            continue                      # created once; the operator owns it now
        try:
            await store.connectors.get_receive_connector(connector.name, server=server_name)
            newly_done.append(connector.name)
            continue
        except NotFound:
            pass
        try:
            created.append(await store.connectors.create_receive_connector(connector))
            newly_done.append(connector.name)
            log.info("created receive connector %s", connector.identity)
        except AlreadyExists:
            newly_done.append(connector.name)  # another node created it meanwhile
        except ValidationError as exc:
            log.warning("default receive connector %s not created: %s",
                        connector.identity, exc)
    if newly_done:
        names = sorted({*(done_raw if isinstance(done_raw, list) else []), *newly_done})
        await store.org.set_settings(SETTINGS_SECTION, {key: names})
    return created
