"""HTTP Basic authentication (RFC 7617), for ActiveSync, web services and the web.

Role: parse an ``Authorization: Basic <token68>`` value into a ``PasswordCredential``
and build the ``WWW-Authenticate`` challenge. The challenge advertises
``charset="UTF-8"`` (RFC 7617 §2.1) and the parser decodes user-id and password as
UTF-8; other encodings are refused, not guessed.

Invariants: only ``MechanismError`` escapes; header values over ``MAX_HEADER_LENGTH``
are refused before decoding; user-id and password contain no control characters
(RFC 7617 §2) and the user-id no colon.
"""

from __future__ import annotations

import re

from auth.credentials import PasswordCredential
from auth.errors import MechanismError
from auth.mechanisms.base import decode_field
from auth.mechanisms.sasl import decode_base64

#: Longest Authorization header value accepted.
MAX_HEADER_LENGTH = 8192

_CTL = re.compile(r"[\x00-\x1f\x7f]")


def parse_basic_authorization(value: str) -> PasswordCredential:
    """``Basic <token68>`` → credential; ``MechanismError`` for anything else."""
    if len(value) > MAX_HEADER_LENGTH:
        raise MechanismError(f"Authorization header longer than {MAX_HEADER_LENGTH}")
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "basic":  # RFC 9110 §11.1: scheme names are case-insensitive
        raise MechanismError("not Basic authorization")
    token = token.strip(" ")
    if not token:
        raise MechanismError("Basic credentials missing")
    decoded = decode_base64(token)
    user_raw, colon, password_raw = decoded.partition(b":")
    if not colon:
        raise MechanismError("Basic credentials without ':'")  # RFC 7617 §2
    user = decode_field(user_raw, "user-id")
    password = decode_field(password_raw, "password", allow_empty=True)
    if _CTL.search(user) or _CTL.search(password):
        raise MechanismError("control character in Basic credentials")  # RFC 7617 §2
    return PasswordCredential(login=user, password=password)


def basic_challenge(realm: str) -> str:
    """The ``WWW-Authenticate`` value: ``Basic realm="...", charset="UTF-8"``."""
    if _CTL.search(realm):
        raise ValueError("realm contains a control character")
    quoted = realm.replace("\\", "\\\\").replace('"', '\\"')  # RFC 9110 §5.6.4
    return f'Basic realm="{quoted}", charset="UTF-8"'
