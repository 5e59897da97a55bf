"""SASL PLAIN (RFC 4616).

message = [authzid] UTF8NUL authcid UTF8NUL passwd (RFC 4616 §2). The server sends an
empty challenge when the client gave no initial response. authcid and passwd must be
non-empty; authzid, when present and non-empty, travels in the credential and the
AuthService only accepts it if it names the authenticated account itself.
"""

from __future__ import annotations

from auth.credentials import PasswordCredential
from auth.errors import MechanismError
from auth.mechanisms.base import Challenge, Done, SaslMechanism, Step, decode_field


class PlainMechanism(SaslMechanism):
    name = "PLAIN"

    def _start(self, initial_response: bytes | None) -> Step:
        if initial_response is None:
            return Challenge(b"")  # RFC 4616 §2: empty challenge, then the message
        return self._parse(initial_response)

    def _respond(self, response: bytes) -> Step:
        return self._parse(response)

    def _parse(self, message: bytes) -> Done:
        parts = message.split(b"\x00")
        if len(parts) != 3:
            self._finished = True
            raise MechanismError("PLAIN message must hold exactly two NUL separators")
        try:
            authzid = decode_field(parts[0], "authzid", allow_empty=True)
            authcid = decode_field(parts[1], "authcid")
            passwd = decode_field(parts[2], "password")
        except MechanismError:
            self._finished = True
            raise
        return Done(PasswordCredential(login=authcid, password=passwd,
                                       authzid=authzid or None))
