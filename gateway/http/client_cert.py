"""Client-certificate login for HTTP front ends (ActiveSync, optionally web mail).

Role: one function that applies a virtual directory's client-certificate setting to a
request, as Exchange's ``Set-ActiveSyncVirtualDirectory -ClientCertAuth`` does:

- ``Ignore``: the certificate is not looked at (other methods authenticate);
- ``Accepted``: a certificate that maps to a mailbox authenticates the request; with
  none, or one that does not map, other methods (Basic, NTLM) may still be tried;
- ``Required``: the request must carry a certificate that maps; nothing else counts.

The certificate is the one the TLS handshake verified (``gateway.http.tls``); the
node's HTTPS context must therefore request certificates (``tls.client_ca_file``).
``Required`` is enforced here, per virtual directory, so one HTTPS listener can serve
web mail without certificates and ActiveSync with them (IIS's per-site SSL settings).

Invariant: a refusal is ``AuthenticationFailed`` (map it to 401/403 at the edge); a
store outage is ``AuthUnavailable`` (503); neither is ever turned into a pass.
"""

from __future__ import annotations

from typing import Literal

from starlette.types import Scope

from auth.certificates import CertificateAuthenticator
from auth.errors import AuthenticationFailed
from auth.principal import Principal
from gateway.http.tls import client_certificate_der

ClientCertAuth = Literal["Ignore", "Accepted", "Required"]
CLIENT_CERT_AUTH_VALUES: tuple[ClientCertAuth, ...] = ("Ignore", "Accepted", "Required")


def _client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


async def certificate_principal(scope: Scope, authenticator: CertificateAuthenticator, *,
                                mode: ClientCertAuth, protocol: str) -> Principal | None:
    """The request's principal from its client certificate, per ``mode``.

    Returns None when the certificate does not decide (Ignore; Accepted without a
    usable certificate). Raises ``AuthenticationFailed`` when ``Required`` is not met.
    """
    if mode not in CLIENT_CERT_AUTH_VALUES:
        raise ValueError(f"ClientCertAuth must be one of {', '.join(CLIENT_CERT_AUTH_VALUES)}")
    if mode == "Ignore":
        return None
    der = client_certificate_der(scope)
    if der is None:
        if mode == "Required":
            raise AuthenticationFailed()
        return None
    try:
        return await authenticator.authenticate(der, protocol=protocol,
                                                source_ip=_client_ip(scope))
    except AuthenticationFailed:
        if mode == "Required":
            raise
        return None
