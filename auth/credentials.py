"""Credential types: what a mechanism extracts from the wire for the AuthService.

Role: protocol-neutral values handed from a mechanism (SASL PLAIN/LOGIN, HTTP Basic,
and later NTLM or a client certificate) to ``AuthService.authenticate``.
Invariants: immutable; a secret never appears in ``repr``/``str`` (so it cannot reach
a log by accident). The set of types is open: later issues add ``NtlmCredential`` and
``CertificateCredential`` as further subclasses of ``Credential``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
