"""SASL EXTERNAL (RFC 4422 appendix A) over a TLS client certificate.

Role: the sans-IO mechanism behind SMTP ``AUTH EXTERNAL`` (RFC 4954), IMAP
``AUTHENTICATE EXTERNAL`` (RFC 9051 §6.2.2) and POP3 ``AUTH EXTERNAL`` (RFC 5034).
The authentication itself happened in the TLS handshake; the client only sends the
authorisation identity it wants (``external-message = [authz-id-string]``, A.1), and
the mechanism hands a ``CertificateCredential`` (the verified certificate of the
connection plus that authzid) to the ``AuthService``, which maps the certificate to a
mailbox and accepts an authzid only when it is empty or names that same mailbox.

A protocol session offers EXTERNAL only on a connection that has a verified client
certificate (``ConnectionInfo.client_certificate``), and drives it like any other
mechanism::

    if name.upper() == "EXTERNAL" and offer_external(conn.client_certificate):
        exchange = external_exchange(conn.client_certificate)
    step = exchange.begin(initial_response)   # RFC 4954 "AUTH EXTERNAL =" etc.

Invariants: no initial response gives an empty challenge and the next response is the
message (A.2); an empty message means "derive the identity from the certificate"; the
message is UTF-8 without NUL (RFC 4422 §3.4.1), at most ``MAX_FIELD_OCTETS``; EXTERNAL
sends no password, so it is not a plain-text mechanism. A connection without a
certificate still yields a credential (with no certificate) so that the refusal goes
through the AuthService's audit and tarpit like any failure.
"""

from __future__ import annotations

from auth.certificates import CertificateCredential
from auth.errors import MechanismError
from auth.mechanisms.base import Challenge, Done, SaslMechanism, Step, decode_field
from auth.mechanisms.sasl import SaslExchange

NAME = "EXTERNAL"


class ExternalMechanism(SaslMechanism):
    """EXTERNAL for one exchange on a connection with ``client_certificate`` (DER)."""

    name = NAME
    plaintext = False

    def __init__(self, client_certificate: bytes | None) -> None:
        super().__init__()
        self._certificate = client_certificate or b""

    def _start(self, initial_response: bytes | None) -> Step:
        if initial_response is None:
            return Challenge(b"")  # RFC 4422 A.2: empty challenge, then the message
        return self._finish(initial_response)

    def _respond(self, response: bytes) -> Step:
        return self._finish(response)

    def _finish(self, message: bytes) -> Done:
        try:
            authzid = decode_field(message, "authzid", allow_empty=True)
            if "\x00" in authzid:
                raise MechanismError("EXTERNAL authzid must not contain NUL")
        except MechanismError:
            self._finished = True
            raise
        return Done(CertificateCredential(certificate=self._certificate,
                                          authzid=authzid or None))


def offer_external(client_certificate: bytes | None) -> bool:
    """Whether to advertise EXTERNAL: only with a verified client certificate
    (RFC 4422 appendix A: the external authentication must already be established)."""
    return bool(client_certificate)


def external_exchange(client_certificate: bytes | None) -> SaslExchange:
    """A ``SaslExchange`` running EXTERNAL for a connection's client certificate."""
    return SaslExchange(ExternalMechanism(client_certificate))
