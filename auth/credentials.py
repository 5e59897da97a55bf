"""Credential types: what a mechanism extracts from the wire for the AuthService.

Role: protocol-neutral values handed from a mechanism (SASL PLAIN/LOGIN, HTTP Basic,
NTLM, and later a client certificate) to ``AuthService.authenticate``.
Invariants: immutable; a secret never appears in ``repr``/``str`` (so it cannot reach
a log by accident). The set of types is open: ``NtlmCredential`` is here; a later issue adds
``CertificateCredential`` as a further subclass of ``Credential``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from auth.ntlm.verify import NtlmExchange


@dataclass(frozen=True)
class Credential:
    """Base of every credential type."""


@dataclass(frozen=True)
class PasswordCredential(Credential):
    """A login name and a clear-text password (PLAIN, LOGIN, Basic, IMAP LOGIN, USER/PASS).

    ``authzid`` is the SASL authorisation identity (RFC 4616 §2), when the client gave
    one; the AuthService allows it only if it names the authenticated account itself.
    """

    login: str
    password: str = field(repr=False)
    authzid: str | None = None

    def __str__(self) -> str:
        return f"PasswordCredential(login={self.login!r})"


@dataclass
class NtlmOutcome:
    """What a successful NTLM verification leaves for the mechanism layer."""

    session_key: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class NtlmCredential(Credential):
    """A finished NTLM handshake (MS-NLMP), to be verified against the NT hash of the
    account it names. Carries the three messages, the server challenge and the channel
    binding expected on this connection; the AuthService verifies it
    (``auth.ntlm.verify.verify_ntlmv2``) inside the same throttle and audit path as a
    password. Nothing in it is a reusable secret, but ``repr`` still omits the proofs.
    """

    exchange: NtlmExchange
    # Filled in by the AuthService after a successful verification (the SPNEGO layer
    # needs the session key for its mechListMIC); not part of the value.
    outcome: NtlmOutcome = field(default_factory=lambda: NtlmOutcome(), compare=False,
                                 repr=False)

    @property
    def user(self) -> str:
        return self.exchange.authenticate.user

    @property
    def domain(self) -> str:
        return self.exchange.authenticate.domain

    @property
    def login(self) -> str:
        """The login name to resolve: a UPN as given (clients send UPNs with an empty
        domain), ``DOMAIN\\user`` when a domain was sent, else the bare user name."""
        if "@" in self.user or not self.domain:
            return self.user
        return f"{self.domain}\\{self.user}"

    def __str__(self) -> str:
        return f"NtlmCredential(login={self.login!r})"
