"""SASL NTLM (MS-SMTPNTLM, MS-OXIMAP4/MS-OXPOP3 "AUTH NTLM"), NTLMv2 only.

The client sends NEGOTIATE (as the initial response, or after an empty server
challenge), the server answers with CHALLENGE, the client sends AUTHENTICATE, and the
exchange ends with an ``NtlmCredential`` that the AuthService verifies against the
account's NT hash, through the same lockout, throttle and audit path as passwords.

Invariants: no password crosses the wire (``plaintext`` is False), but an NT hash is a
password equivalent on the server side (docs/authentication.md, "NTLM"); channel
binding is checked when the caller gives the TLS channel's expected value
(``auth.ntlm.verify``); the mechanism object serves one exchange.
"""

from __future__ import annotations

import socket

from auth.errors import MechanismError
from auth.mechanisms.base import Challenge, Done, SaslMechanism, Step
from auth.ntlm.exchange import NtlmServerExchange
from auth.ntlm.messages import TargetNames


def default_target_names() -> TargetNames:
    """Target names from this host's name (no DNS lookup): the NetBIOS computer name
    is its first label, upper case, at most 15 characters."""
    host = socket.gethostname() or "gateway"
    return TargetNames(netbios_computer=host.split(".")[0].upper()[:15] or "GATEWAY",
                       dns_computer=host if "." in host else "")


class NtlmMechanism(SaslMechanism):
    name = "NTLM"
    plaintext = False

    def __init__(self, *, names: TargetNames | None = None,
                 channel_binding: bytes | None = None) -> None:
        super().__init__()
        self._exchange = NtlmServerExchange(names=names or default_target_names(),
                                            channel_binding=channel_binding)
        self._challenged = False

    def _start(self, initial_response: bytes | None) -> Step:
        if not initial_response:
            return Challenge(b"")  # RFC 4422 §3.3: the client then sends NEGOTIATE
        return self._negotiate(initial_response)

    def _respond(self, response: bytes) -> Step:
        if self._exchange.done:
            raise MechanismError("NTLM exchange already complete")
        try:
            if self._challenged:
                return Done(self._exchange.authenticate(response))
            return self._negotiate(response)
        except MechanismError:
            self._finished = True
            raise

    def _negotiate(self, data: bytes) -> Step:
        try:
            challenge = self._exchange.challenge(data)
        except MechanismError:
            self._finished = True
            raise
        self._challenged = True
        return Challenge(challenge)
