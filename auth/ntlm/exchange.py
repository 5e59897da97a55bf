"""The server side of one NTLM handshake, sans-IO (MS-NLMP §3.2.5.1).

Role: NEGOTIATE in → CHALLENGE out → AUTHENTICATE in → ``NtlmCredential`` out. Shared
by the SASL mechanism (SMTP/IMAP/POP3) and the HTTP helper. Verification against the
NT hash happens later, in the AuthService, so NTLM goes through the same lockout,
throttle and audit path as passwords.

Invariants:
- One object per handshake; the 8-octet server challenge comes from ``os.urandom``
  (§3.2.5.1.1: a fresh random challenge per exchange, never reused).
- An AUTHENTICATE later than ``ttl`` seconds after the CHALLENGE is refused.
- Every malformed or out-of-order message raises ``MechanismError``; after an error or
  completion, the object refuses further input.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from auth.credentials import NtlmCredential
from auth.errors import MechanismError
from auth.ntlm.messages import (
    TargetNames,
    build_challenge,
    parse_authenticate,
    parse_negotiate,
)
from auth.ntlm.verify import NtlmExchange, SpnegoBinding, to_filetime

#: Seconds a client has to answer our CHALLENGE.
EXCHANGE_TTL = 120.0


class NtlmServerExchange:
    """One NTLM handshake on the server side."""

    def __init__(self, *, names: TargetNames | None = None,
                 channel_binding: bytes | None = None, ttl: float = EXCHANGE_TTL,
                 clock: Callable[[], float] = time.time,
                 random: Callable[[int], bytes] = os.urandom) -> None:
        self._names = names or TargetNames()
        self._channel_binding = channel_binding
        self._ttl = ttl
        self._clock = clock
        self._random = random
        self._state = "negotiate"
        self._negotiate_raw: bytes | None = None
        self._challenge: bytes | None = None
        self._server_challenge = b""
        self._issued_at = 0.0

    @property
    def done(self) -> bool:
        return self._state == "done"

    def challenge(self, negotiate: bytes) -> bytes:
        """Consume the NEGOTIATE_MESSAGE; the CHALLENGE_MESSAGE to send."""
        if self._state != "negotiate":
            self._state = "done"
            raise MechanismError("NTLM NEGOTIATE out of order")
        try:
            message = parse_negotiate(negotiate)
        except MechanismError:
            self._state = "done"
            raise
        self._server_challenge = self._random(8)
        now = self._clock()
        self._challenge = build_challenge(message, self._server_challenge, self._names,
                                          to_filetime(now))
        self._negotiate_raw = message.raw
        self._issued_at = now
        self._state = "authenticate"
        return self._challenge

    def authenticate(self, data: bytes, *, spnego: SpnegoBinding | None = None
                     ) -> NtlmCredential:
        """Consume the AUTHENTICATE_MESSAGE; the credential for the AuthService.
        ``spnego`` when the exchange runs inside SPNEGO (``Negotiate``)."""
        if self._state != "authenticate" or self._challenge is None \
                or self._negotiate_raw is None:
            self._state = "done"
            raise MechanismError("NTLM AUTHENTICATE out of order")
        self._state = "done"
        if self._clock() - self._issued_at > self._ttl:
            raise MechanismError("NTLM exchange expired")
        message = parse_authenticate(data)
        negotiate = parse_negotiate(self._negotiate_raw)
        return NtlmCredential(NtlmExchange(
            negotiate=negotiate, challenge=self._challenge,
            server_challenge=self._server_challenge, authenticate=message,
            channel_binding=self._channel_binding, spnego=spnego))
