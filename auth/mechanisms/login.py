"""SASL LOGIN (draft-murchison-sasl-login-00), as Exchange, Outlook and most clients
speak it.

The server asks for the user name, then the password; each client response is one
field. The challenges are the de-facto "Username:" / "Password:" (the draft's
"User Name"/"Password" are ignored by clients alike; Exchange and Postfix send these).
An initial response, when given, is the user name (draft §2).
"""

from __future__ import annotations

from auth.credentials import PasswordCredential
from auth.errors import MechanismError
from auth.mechanisms.base import Challenge, Done, SaslMechanism, Step, decode_field

USERNAME_CHALLENGE = b"Username:"
PASSWORD_CHALLENGE = b"Password:"


class LoginMechanism(SaslMechanism):
    name = "LOGIN"

    def __init__(self) -> None:
        super().__init__()
        self._username: str | None = None

    def _start(self, initial_response: bytes | None) -> Step:
        if initial_response is None:
            return Challenge(USERNAME_CHALLENGE)
        return self._take_username(initial_response)

    def _respond(self, response: bytes) -> Step:
        if self._username is None:
            return self._take_username(response)
        try:
            password = decode_field(response, "password", allow_empty=True)
        except MechanismError:
            self._finished = True
            raise
        return Done(PasswordCredential(login=self._username, password=password))

    def _take_username(self, response: bytes) -> Step:
        try:
            self._username = decode_field(response, "user name")
        except MechanismError:
            self._finished = True
            raise
        return Challenge(PASSWORD_CHALLENGE)
