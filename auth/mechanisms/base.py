"""The sans-IO mechanism interface shared by every SASL mechanism.

Role: a mechanism consumes decoded client responses (bytes) and yields either a
challenge (bytes to send, before base64) or the finished credential. It does no I/O,
knows no protocol and no base64 (``auth.mechanisms.sasl`` wraps that for SMTP, IMAP
and POP3), and never checks the credential (the AuthService does).

Invariants: every malformed input raises ``MechanismError`` (never another exception);
a mechanism object is used for one exchange only; calls after completion raise;
responses over ``MAX_RESPONSE_OCTETS`` are refused.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from auth.credentials import Credential
from auth.errors import MechanismError

#: Largest decoded client response any mechanism accepts (octets).
MAX_RESPONSE_OCTETS = 8192
#: Largest single field (authzid, authcid, password) inside a response (octets).
MAX_FIELD_OCTETS = 4096


@dataclass(frozen=True)
class Challenge:
    """Send ``data`` (raw; base64 is the protocol helper's job) and await a response."""

    data: bytes


@dataclass(frozen=True)
class Done:
    """The exchange is complete; hand ``credential`` to the AuthService."""

    credential: Credential


Step = Challenge | Done


class SaslMechanism(ABC):
    """One SASL exchange (RFC 4422 §3)."""

    name: ClassVar[str]
    #: Sends passwords in clear: only offered over TLS (RFC 4954 §4, RFC 9051 §6.2.2).
    plaintext: ClassVar[bool] = True

    def __init__(self) -> None:
        self._finished = False

    def start(self, initial_response: bytes | None) -> Step:
        """Begin, with the initial response if the client sent one (RFC 4422 §3.3)."""
        self._check_open(initial_response)
        return self._finish_if_done(self._start(initial_response))

    def respond(self, response: bytes) -> Step:
        """Consume the client's answer to the last challenge."""
        self._check_open(response)
        return self._finish_if_done(self._respond(response))

    def _check_open(self, data: bytes | None) -> None:
        if self._finished:
            raise MechanismError(f"{self.name} exchange already complete")
        if data is not None and len(data) > MAX_RESPONSE_OCTETS:
            self._finished = True
            raise MechanismError(f"{self.name} response longer than "
                                 f"{MAX_RESPONSE_OCTETS} octets")

    def _finish_if_done(self, step: Step) -> Step:
        if isinstance(step, Done):
            self._finished = True
        return step

    @abstractmethod
    def _start(self, initial_response: bytes | None) -> Step: ...

    @abstractmethod
    def _respond(self, response: bytes) -> Step: ...


def decode_field(raw: bytes, what: str, *, allow_empty: bool = False) -> str:
    """A UTF-8 field of a mechanism message; ``MechanismError`` when unacceptable."""
    if not raw and not allow_empty:
        raise MechanismError(f"{what} is empty")
    if len(raw) > MAX_FIELD_OCTETS:
        raise MechanismError(f"{what} longer than {MAX_FIELD_OCTETS} octets")
    try:
        return raw.decode("utf-8", "strict")
    except UnicodeDecodeError:
        raise MechanismError(f"{what} is not valid UTF-8") from None
