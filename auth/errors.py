"""Protocol-neutral authentication errors.

Each protocol maps these at its edge: ``AuthenticationFailed`` to SMTP ``535 5.7.3``,
IMAP ``NO [AUTHENTICATIONFAILED]``, POP3 ``-ERR [AUTH]``, HTTP 401; ``AuthUnavailable``
to a temporary failure (SMTP ``454 4.7.0``, IMAP ``NO [UNAVAILABLE]``, HTTP 503);
``MechanismError`` / ``MechanismCancelled`` to a syntax error / cancelled exchange.
The message of ``AuthenticationFailed`` is identical for every cause (unknown user,
wrong password, lockout, disabled account) so nothing leaks to the client; the cause
goes to the audit trail and the log only.
"""

from __future__ import annotations

from gateway.errors import GatewayError

GENERIC_FAILURE = "Authentication failed"


class AuthError(GatewayError):
    """Base of the auth package's errors."""


class AuthenticationFailed(AuthError):
    """The credentials were not accepted. The message never says why."""

    def __init__(self) -> None:
        super().__init__(GENERIC_FAILURE)


class AuthUnavailable(AuthError):
    """Authentication cannot be carried out now (overload, store down): retry later."""


class MechanismError(AuthError):
    """The client's mechanism data is malformed (bad base64, missing fields, too long)."""


class MechanismCancelled(AuthError):
    """The client cancelled the exchange with ``*`` (RFC 4954 §4, RFC 9051 §6.2.2)."""


class LoginNameError(AuthError):
    """A login name is syntactically unacceptable (control characters, too long, empty)."""
