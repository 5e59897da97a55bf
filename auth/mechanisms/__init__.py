"""Sans-IO authentication mechanisms written once for every protocol.

SASL (``PLAIN``, ``LOGIN``, ``NTLM``; EXTERNAL later) through ``auth.mechanisms.sasl``
for SMTP, IMAP and POP3; HTTP Basic through ``auth.mechanisms.basic``.
"""

from auth.mechanisms.base import Challenge, Done, SaslMechanism, Step
from auth.mechanisms.basic import basic_challenge, parse_basic_authorization
from auth.mechanisms.login import LoginMechanism
from auth.mechanisms.plain import PlainMechanism
from auth.mechanisms.sasl import (
    MECHANISMS,
    Authenticate,
    SaslExchange,
    SendChallenge,
    decode_initial_response,
    decode_response,
    encode_challenge,
)

__all__ = [
    "MECHANISMS",
    "Authenticate",
    "Challenge",
    "Done",
    "LoginMechanism",
    "PlainMechanism",
    "SaslExchange",
    "SaslMechanism",
    "SendChallenge",
    "Step",
    "basic_challenge",
    "decode_initial_response",
    "decode_response",
    "encode_challenge",
    "parse_basic_authorization",
]
