"""Which SASL mechanisms an SMTP session offers and accepts (RFC 4954), and with what.

Role: the SMTP side of the shared policy. The decision itself is the
session policy's (``SessionPolicy.auth_mechanisms``, which asks
``auth.policy.offered_mechanisms`` with the receive connector's AuthMechanism and
RequireTLS); this module passes the connection's certificate, picks the STARTTLS
context and creates the exchange:

* LOGIN, PLAIN: BasicAuth (and TLS first with BasicAuthRequireTLS or RequireTLS);
* NTLM: Integrated, bound to our certificate over TLS (MS-NLMP §2.2.2.1, RFC 5929);
* EXTERNAL: Tls, and a verified client certificate on this connection (RFC 4422 A).

Invariants: nothing here decides policy on its own; client certificates are asked for
on submission connectors only, never on the port-25 (anonymous) role, where a
mail server presenting an unrelated certificate would fail a required-certificate
handshake.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from auth.mechanisms.external import NAME as EXTERNAL
from auth.mechanisms.external import external_exchange, offer_external
from auth.mechanisms.sasl import SaslExchange
from auth.ntlm.verify import channel_bindings_hash, tls_server_end_point

if TYPE_CHECKING:
    from gateway.connectors.model import ReceiveConnector
    from gateway.connectors.policy import SessionPolicy
    from gateway.listeners.stream import ConnectionInfo



def load_certificate_der(path: Path) -> bytes | None:
    """The first certificate of PEM file ``path`` as DER (the leaf a TLS server sends),
    or None when it cannot be read: NTLM then runs without channel binding. Blocking:
    call it at start-up or in a thread."""
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None
    return cert.public_bytes(serialization.Encoding.DER)


def server_channel_binding(certificate_der: bytes | None) -> bytes | None:
    """The MsvAvChannelBindings value clients compute for our certificate
    (``tls-server-end-point``, RFC 5929 §4.1), or None without a certificate."""
    if not certificate_der:
        return None
    return channel_bindings_hash(tls_server_end_point(certificate_der))


def is_submission(connector: ReceiveConnector) -> bool:
    """A client submission connector: it serves users, not anonymous senders."""
    groups = connector.permission_groups
    return "AnonymousUsers" not in groups and "ExchangeUsers" in groups


def starttls_context(connector: ReceiveConnector, server: ssl.SSLContext | None,
                     client_auth: ssl.SSLContext | None) -> ssl.SSLContext | None:
    """The context for STARTTLS on ``connector``: the client-auth one on submission
    connectors when the node has one, the plain server context otherwise."""
    if client_auth is not None and server is not None and is_submission(connector):
        return client_auth
    return server


def offered(policy: SessionPolicy, info: ConnectionInfo) -> tuple[str, ...]:
    """The mechanisms to advertise and accept now (EHLO ``AUTH``, RFC 4954 §3): the
    session policy's answer (the one Test-SmtpRelay prints), given whether this
    connection presented a verified client certificate."""
    return policy.auth_mechanisms(client_certificate=offer_external(info.client_certificate))


def exchange_for(mechanism: str, info: ConnectionInfo,
                 channel_binding: bytes | None) -> SaslExchange:
    """A SASL exchange for an offered ``mechanism`` (MechanismError if unknown)."""
    if mechanism.upper() == EXTERNAL:
        return external_exchange(info.client_certificate)
    return SaslExchange.create(mechanism,
                               channel_binding=channel_binding if info.tls else None)
