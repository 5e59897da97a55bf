"""Hand the TLS client certificate from the socket to the ASGI application.

Role: uvicorn builds the ASGI scope from the HTTP request alone; the client
certificate verified during the handshake never reaches the application. This module
closes that gap inside the gateway (no reverse proxy needed): ``TlsH11Protocol``, a
uvicorn HTTP/1.1 protocol, reads the transport's ``ssl_object`` once per connection,
right after the handshake, and every request on that connection gets

* ``scope["extensions"]["tls"]``: the ASGI TLS extension (asgiref "TLS Extension",
  spec version 0.2): ``server_cert`` (None: not tracked), ``client_cert_chain`` (PEM
  strings, leaf first; Python's ssl exposes the leaf only), ``client_cert_name``
  (RFC 4514 subject), ``client_cert_error`` (always None: a certificate that fails
  verification fails the handshake), ``tls_version`` (e.g. 0x0304), ``cipher_suite``
  (None: Python gives names, not IANA numbers);
* ``scope["extensions"]["gateway.tls"]``: ``client_cert_der`` (bytes or None),
  ``version`` and ``cipher`` as names - what the gateway's own code reads, through
  ``client_certificate_der(scope)``.

Invariants: a certificate is handed over only when the listening context asked for
one (``verify_mode`` is not ``CERT_NONE``), so what the application sees has been
verified against the configured CAs (and CRL); plain HTTP requests carry neither
extension; the per-connection data is computed once, not per request.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import MutableMapping
from typing import Any

from cryptography import x509
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("gateway.http")

Scope = MutableMapping[str, Any]
ASGIApp = Any

GATEWAY_TLS = "gateway.tls"
_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def connection_tls_extensions(ssl_object: ssl.SSLObject | None) -> dict[str, Any]:
    """The scope extensions for one TLS connection (empty for plain HTTP)."""
    if ssl_object is None:
        return {}
    der: bytes | None = None
    if ssl_object.context.verify_mode != ssl.CERT_NONE:
        der = ssl_object.getpeercert(binary_form=True) or None
    version = ssl_object.version()
    cipher = ssl_object.cipher()
    name: str | None = None
    chain: list[str] = []
    if der is not None:
        chain = [ssl.DER_cert_to_PEM_cert(der)]
        try:
            name = x509.load_der_x509_certificate(der).subject.rfc4514_string()
        except ValueError:  # verified by OpenSSL, so unexpected; never fatal here
            log.warning("client certificate subject could not be parsed")
    return {
        "tls": {
            "server_cert": None,
            "client_cert_chain": chain,
            "client_cert_name": name,
            "client_cert_error": None,
            "tls_version": _TLS_VERSIONS.get(version or ""),
            "cipher_suite": None,
        },
        GATEWAY_TLS: {
            "client_cert_der": der,
            "version": version,
            "cipher": cipher[0] if cipher else None,
        },
    }


def client_certificate_der(scope: Scope) -> bytes | None:
    """The verified client certificate (DER) of the request's connection, if any."""
    ext = (scope.get("extensions") or {}).get(GATEWAY_TLS)
    if not isinstance(ext, dict):
        return None
    der = ext.get("client_cert_der")
    return der if isinstance(der, bytes) else None


class _ConnectionApp:
    """The application as seen by one connection: adds that connection's extensions."""

    __slots__ = ("_app", "_extensions")

    def __init__(self, app: ASGIApp, extensions: dict[str, Any]) -> None:
        self._app = app
        self._extensions = extensions

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope.get("type") in ("http", "websocket"):
            existing = scope.get("extensions") or {}
            scope["extensions"] = {**existing, **self._extensions}
        await self._app(scope, receive, send)


class TlsH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus the TLS extensions on every request's scope.

    ``connection_made`` runs after the TLS handshake (asyncio's SSL transport reports
    the connection only once the handshake is done), so the peer certificate is known.
    """

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        extensions = connection_tls_extensions(transport.get_extra_info("ssl_object"))
        if extensions:
            self.app = _ConnectionApp(self.app, extensions)
