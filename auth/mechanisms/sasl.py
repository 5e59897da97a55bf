"""The SASL wire helper every line protocol shares (SMTP AUTH, IMAP AUTHENTICATE,
POP3 AUTH).

Role: everything between a protocol's line and a sans-IO mechanism: strict base64 in
both directions, the ``*`` cancel, the ``=`` empty initial response, size limits, and
the mechanism registry. A protocol session drives one ``SaslExchange`` per AUTH
command:

    exchange = SaslExchange.create("PLAIN")              # MechanismError if unknown
    step = exchange.begin(initial_response_arg_or_None)  # SMTP "AUTH PLAIN <ir>",
                                                         # IMAP SASL-IR (RFC 4959)
    while isinstance(step, SendChallenge):
        send("334 " + step.text)  /  send("+ " + step.text)
        step = exchange.feed(next_line)                  # MechanismCancelled on "*"
    principal = await auth.authenticate(step.credential, ...)

Invariants: input is validated before decoding (length, alphabet, padding); only
``MechanismError`` and ``MechanismCancelled`` escape; the helper never logs data.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from auth.credentials import Credential
from auth.errors import MechanismCancelled, MechanismError
from auth.mechanisms.base import MAX_RESPONSE_OCTETS, Challenge, SaslMechanism, Step
from auth.mechanisms.login import LoginMechanism
from auth.mechanisms.ntlm import NtlmMechanism
from auth.mechanisms.plain import PlainMechanism
from auth.ntlm.messages import TargetNames

#: Longest base64 line accepted from a client (the encoding of MAX_RESPONSE_OCTETS).
MAX_ENCODED_LENGTH = 4 * ((MAX_RESPONSE_OCTETS + 2) // 3)

_BASE64 = re.compile(rb"\A(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\Z")

MECHANISMS: dict[str, type[SaslMechanism]] = {
    PlainMechanism.name: PlainMechanism,
    LoginMechanism.name: LoginMechanism,
    NtlmMechanism.name: NtlmMechanism,
}


def _as_bytes(line: bytes | str) -> bytes:
    if isinstance(line, str):
        try:
            return line.encode("ascii")
        except UnicodeEncodeError:
            raise MechanismError("response is not base64") from None
    return line


def decode_base64(data: bytes | str) -> bytes:
    """Strict RFC 4648 §4 base64: canonical alphabet and padding, nothing else."""
    raw = _as_bytes(data)
    if len(raw) > MAX_ENCODED_LENGTH:
        raise MechanismError(f"response longer than {MAX_ENCODED_LENGTH} characters")
    if not _BASE64.match(raw):
        raise MechanismError("response is not valid base64")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise MechanismError("response is not valid base64") from None


def decode_response(line: bytes | str) -> bytes:
    """A client's continuation line: ``*`` cancels (RFC 4954 §4, RFC 9051 §6.2.2,
    RFC 5034 §4); an empty line is an empty response; otherwise base64."""
    raw = _as_bytes(line).rstrip(b"\r\n")
    if raw == b"*":
        raise MechanismCancelled("authentication cancelled by the client")
    return decode_base64(raw)


def decode_initial_response(arg: bytes | str) -> bytes:
    """The initial response argument: ``=`` means present but empty (RFC 4954 §4,
    RFC 4959 §3, RFC 5034 §4)."""
    raw = _as_bytes(arg)
    if raw == b"=":
        return b""
    if not raw:
        raise MechanismError("empty initial response (use '=')")
    return decode_base64(raw)


def encode_challenge(data: bytes) -> str:
    """Base64 of a challenge; empty data gives the empty string."""
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class SendChallenge:
    """Send ``text`` (already base64) after the protocol's continuation marker."""

    text: str


@dataclass(frozen=True)
class Authenticate:
    """The client is done; verify ``credential`` with the AuthService."""

    credential: Credential


ExchangeStep = SendChallenge | Authenticate


class SaslExchange:
    """One AUTH exchange over a line protocol (a mechanism plus the base64 framing)."""

    def __init__(self, mechanism: SaslMechanism) -> None:
        self.mechanism = mechanism
        self._started = False

    @classmethod
    def create(cls, name: str, *, allowed: frozenset[str] | None = None,
               channel_binding: bytes | None = None,
               target_names: TargetNames | None = None) -> SaslExchange:
        """An exchange for mechanism ``name`` (case-insensitive), if offered.

        For NTLM: ``channel_binding`` is the MsvAvChannelBindings value expected on a
        TLS connection (``auth.ntlm.verify.channel_bindings_hash(
        tls_server_end_point(server_cert_der))``), ``None`` on a plain one;
        ``target_names`` are announced in the CHALLENGE (default: from the host name).
        """
        key = name.upper()
        factory = MECHANISMS.get(key)
        if factory is None or (allowed is not None and key not in allowed):
            raise MechanismError("unsupported authentication mechanism")
        if factory is NtlmMechanism:
            return cls(NtlmMechanism(names=target_names, channel_binding=channel_binding))
        return cls(factory())

    def begin(self, initial_response: bytes | str | None) -> ExchangeStep:
        if self._started:
            raise MechanismError("exchange already started")
        self._started = True
        ir = None if initial_response is None else decode_initial_response(initial_response)
        return self._wrap(self.mechanism.start(ir))

    def feed(self, line: bytes | str) -> ExchangeStep:
        if not self._started:
            raise MechanismError("exchange not started")
        return self._wrap(self.mechanism.respond(decode_response(line)))

    @staticmethod
    def _wrap(step: Step) -> ExchangeStep:
        if isinstance(step, Challenge):
            return SendChallenge(encode_challenge(step.data))
        return Authenticate(step.credential)
