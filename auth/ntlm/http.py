"""NTLM over HTTP (MS-NTHT): ``WWW-Authenticate: NTLM`` for one TCP connection.

Role: the sans-IO state the HTTP layer keeps per TCP connection. The exchange is
connection-oriented (MS-NTHT §3.2.5.1.1): the NEGOTIATE and AUTHENTICATE messages of
one handshake must arrive on the same connection, and the CHALLENGE state must never
be shared with another connection. Use:

    state = HttpNtlmState(connection_id=conn.connection_id, tls=conn.tls,
                          channel_binding=...)          # once per TCP connection
    # request without credentials: 401 with one WWW-Authenticate per state.offers()
    step = state.feed(request.headers["Authorization"], connection_id=conn.connection_id)
    if isinstance(step, HttpChallenge):   # 401 + WWW-Authenticate: step.www_authenticate,
        ...                               # keep the connection open
    else:                                 # step.credential → AuthService.authenticate
        ...                               # (401 with offers() again on failure;
                                          # on success add state.final_header(step))

``Negotiate`` carries NTLM inside SPNEGO (RFC 4178, RFC 4559; what Windows clients
send), or a raw NTLM token (what some other clients send). Kerberos is never
selected. After a successful SPNEGO login, send ``state.final_header(step)`` as the
``WWW-Authenticate`` of the 200 response (it carries the server's mechListMIC).

Invariants: NTLM is refused on a connection without TLS (it is never offered on plain
HTTP, like Basic); a state object refuses a ``connection_id`` other than its own;
header values over ``MAX_HEADER_LENGTH`` are refused before decoding; only
``MechanismError`` escapes.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from auth.credentials import NtlmCredential
from auth.errors import MechanismError
from auth.mechanisms.sasl import decode_base64
from auth.ntlm.exchange import NtlmServerExchange
from auth.ntlm.messages import AUTHENTICATE, NEGOTIATE, SIGNATURE, TargetNames
from auth.ntlm.spnego import (
    ACCEPT_COMPLETED,
    ACCEPT_INCOMPLETE,
    NTLMSSP_OID,
    REQUEST_MIC,
    ClientToken,
    neg_token_resp,
    ntlm_signature,
    parse_client_token,
)
from auth.ntlm.verify import SpnegoBinding

#: Longest Authorization header value accepted (characters).
MAX_HEADER_LENGTH = 8192
_SCHEMES = {"ntlm": "NTLM", "negotiate": "Negotiate"}


@dataclass(frozen=True)
class HttpChallenge:
    """Answer 401 with ``WWW-Authenticate: <www_authenticate>`` on the same connection."""

    www_authenticate: str


@dataclass(frozen=True)
class HttpCredential:
    """The handshake is complete: verify ``credential`` with the AuthService."""

    credential: NtlmCredential
    scheme: str


HttpStep = HttpChallenge | HttpCredential


class HttpNtlmState:
    """The NTLM handshake state of one TCP connection."""

    def __init__(self, *, connection_id: str, tls: bool,
                 channel_binding: bytes | None = None,
                 names: TargetNames | None = None) -> None:
        self.connection_id = connection_id
        self._tls = tls
        self._channel_binding = channel_binding
        self._names = names
        self._exchange: NtlmServerExchange | None = None
        # (mechTypes DER, mechListMIC required) while a SPNEGO negotiation runs
        self._spnego: tuple[bytes, bool] | None = None

    def offers(self) -> tuple[str, ...]:
        """``WWW-Authenticate`` values to add to a 401 (none on plain HTTP)."""
        return ("Negotiate", "NTLM") if self._tls else ()

    def feed(self, authorization: str, *, connection_id: str) -> HttpStep:
        """Consume an ``Authorization`` header value of a request on this connection."""
        if connection_id != self.connection_id:
            raise MechanismError("NTLM state belongs to another connection")
        if not self._tls:
            raise MechanismError("NTLM is not offered without TLS")
        if len(authorization) > MAX_HEADER_LENGTH:
            raise MechanismError(f"Authorization header longer than {MAX_HEADER_LENGTH}")
        scheme_raw, _, token = authorization.strip().partition(" ")
        scheme = _SCHEMES.get(scheme_raw.lower())  # RFC 9110 §11.1: case-insensitive
        if scheme is None:
            raise MechanismError("not NTLM authorization")
        try:
            message = decode_base64(token.strip(" "))
            if message.startswith(SIGNATURE):
                self._spnego = None
                return self._raw(scheme, message)
            if scheme != "Negotiate":
                raise MechanismError("not an NTLM message")
            return self._negotiate(parse_client_token(message))
        except MechanismError:
            self._exchange, self._spnego = None, None
            raise

    def final_header(self, step: HttpCredential) -> str | None:
        """After the AuthService accepted ``step.credential``: the ``WWW-Authenticate``
        value for the successful response, or None. For SPNEGO it carries
        accept-completed and the server's mechListMIC (RFC 4559 §5, RFC 4178 §5)."""
        binding = step.credential.exchange.spnego
        if binding is None:
            return None
        key = step.credential.outcome.session_key
        if key is None:
            raise MechanismError("the credential has not been verified")
        mic = None
        if binding.client_mic is not None or binding.mic_required:
            mic = ntlm_signature(key, step.credential.exchange.authenticate.flags,
                                 binding.mech_types_der, from_client=False)
        return "Negotiate " + _b64(neg_token_resp(ACCEPT_COMPLETED, mic=mic))

    def _start(self, negotiate: bytes) -> bytes:
        self._exchange = NtlmServerExchange(names=self._names,
                                            channel_binding=self._channel_binding)
        return self._exchange.challenge(negotiate)

    def _raw(self, scheme: str, message: bytes) -> HttpStep:
        """NTLM tokens as such (``NTLM``, or ``Negotiate`` carrying raw NTLM)."""
        if len(message) < 12:
            raise MechanismError("not an NTLM message")
        kind = int.from_bytes(message[8:12], "little")
        if kind == NEGOTIATE:
            # A new handshake (MS-NTHT §3.2.5.1.1: a client may restart at any time).
            return HttpChallenge(f"{scheme} {_b64(self._start(message))}")
        if kind == AUTHENTICATE:
            exchange, self._exchange = self._exchange, None
            if exchange is None:
                raise MechanismError("NTLM AUTHENTICATE without a CHALLENGE on this "
                                     "connection")
            return HttpCredential(exchange.authenticate(message), scheme)
        raise MechanismError("unexpected NTLM message type")

    def _negotiate(self, token: ClientToken) -> HttpStep:
        """SPNEGO (RFC 4178 §4.2): select NTLM, carry its three messages, remember the
        mechTypes for the mechListMIC."""
        if token.is_init:
            if NTLMSSP_OID not in token.mech_types:
                raise MechanismError("SPNEGO offers no NTLM")
            preferred = token.mech_types[0] == NTLMSSP_OID
            self._spnego = (token.mech_types_der, not preferred)
            self._exchange = None
            if preferred and token.mech_token is not None:
                challenge = self._start(token.mech_token)
                return HttpChallenge("Negotiate " + _b64(neg_token_resp(
                    ACCEPT_INCOMPLETE, supported_mech=True, token=challenge)))
            # RFC 4178 §5: NTLM is not the client's first choice: ask for the MIC.
            return HttpChallenge("Negotiate " + _b64(neg_token_resp(
                ACCEPT_INCOMPLETE if preferred else REQUEST_MIC, supported_mech=True)))
        if self._spnego is None or token.mech_token is None:
            raise MechanismError("SPNEGO response out of order")
        if self._exchange is None:  # the NEGOTIATE after we selected NTLM
            challenge = self._start(token.mech_token)
            return HttpChallenge("Negotiate " + _b64(neg_token_resp(
                ACCEPT_INCOMPLETE, token=challenge)))
        exchange, self._exchange = self._exchange, None
        (mech_types_der, required), self._spnego = self._spnego, None
        credential = exchange.authenticate(token.mech_token, spnego=SpnegoBinding(
            mech_types_der=mech_types_der, client_mic=token.mech_list_mic,
            mic_required=required))
        return HttpCredential(credential, "Negotiate")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
