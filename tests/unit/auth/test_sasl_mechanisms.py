"""SASL PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login) and the shared base64 helper."""

from __future__ import annotations

import base64

import pytest

from auth.credentials import PasswordCredential
from auth.errors import MechanismCancelled, MechanismError
from auth.mechanisms import (
    Authenticate,
    Challenge,
    Done,
    LoginMechanism,
    PlainMechanism,
    SaslExchange,
    SendChallenge,
    decode_initial_response,
    decode_response,
    encode_challenge,
)
from auth.mechanisms.base import MAX_RESPONSE_OCTETS


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- PLAIN ---------------------------------------------------------------------------

def test_plain_initial_response() -> None:
    step = PlainMechanism().start(b"\x00alice@example.test\x00S3cret!")
    assert step == Done(PasswordCredential("alice@example.test", "S3cret!"))
    assert step.credential.authzid is None  # type: ignore[union-attr]


def test_plain_without_initial_response_sends_empty_challenge() -> None:
    mech = PlainMechanism()
    assert mech.start(None) == Challenge(b"")
    step = mech.respond(b"\x00alice\x00pw")
    assert isinstance(step, Done)
    assert step.credential == PasswordCredential("alice", "pw")


def test_plain_authzid_is_carried() -> None:
    step = PlainMechanism().start(b"bob@example.test\x00alice\x00pw")
    assert isinstance(step, Done)
    assert isinstance(step.credential, PasswordCredential)
    assert step.credential.authzid == "bob@example.test"
    assert step.credential.login == "alice"


def test_plain_utf8_fields() -> None:
    step = PlainMechanism().start("\x00jürgen\x00pässwörd".encode())
    assert isinstance(step, Done)
    assert step.credential == PasswordCredential("jürgen", "pässwörd")


@pytest.mark.parametrize("message", [
    b"alice\x00pw",                     # one NUL only
    b"\x00alice\x00pw\x00extra",        # three NULs
    b"\x00\x00pw",                      # empty authcid
    b"\x00alice\x00",                   # empty password
    b"",                                # nothing at all
    b"\x00al\xffice\x00pw",             # not UTF-8
    b"\x00alice\x00" + b"p" * 5000,     # field over MAX_FIELD_OCTETS
])
def test_plain_malformed(message: bytes) -> None:
    with pytest.raises(MechanismError):
        PlainMechanism().start(message)


def test_plain_response_over_limit_refused() -> None:
    with pytest.raises(MechanismError, match="longer"):
        PlainMechanism().start(b"\x00a\x00" + b"x" * MAX_RESPONSE_OCTETS)


def test_plain_cannot_be_reused_after_completion() -> None:
    mech = PlainMechanism()
    mech.start(b"\x00alice\x00pw")
    with pytest.raises(MechanismError, match="already complete"):
        mech.respond(b"\x00alice\x00pw")


def test_repr_of_credential_hides_password() -> None:
    cred = PasswordCredential("alice", "S3cret!")
    assert "S3cret" not in repr(cred)
    assert "S3cret" not in str(cred)


# -- LOGIN ---------------------------------------------------------------------------

def test_login_full_exchange() -> None:
    mech = LoginMechanism()
    assert mech.start(None) == Challenge(b"Username:")
    assert mech.respond(b"alice@example.test") == Challenge(b"Password:")
    step = mech.respond(b"S3cret!")
    assert step == Done(PasswordCredential("alice@example.test", "S3cret!"))


def test_login_initial_response_is_the_user_name() -> None:
    mech = LoginMechanism()
    assert mech.start(b"alice") == Challenge(b"Password:")
    assert mech.respond(b"pw") == Done(PasswordCredential("alice", "pw"))


@pytest.mark.parametrize("username", [b"", b"\xff\xfe"])
def test_login_bad_username(username: bytes) -> None:
    mech = LoginMechanism()
    mech.start(None)
    with pytest.raises(MechanismError):
        mech.respond(username)


def test_login_done_then_more_input_refused() -> None:
    mech = LoginMechanism()
    mech.start(b"alice")
    mech.respond(b"pw")
    with pytest.raises(MechanismError):
        mech.respond(b"again")


# -- the shared line helper ------------------------------------------------------------

def test_exchange_plain_with_initial_response() -> None:
    ex = SaslExchange.create("plain")
    step = ex.begin(b64(b"\x00alice\x00pw"))
    assert step == Authenticate(PasswordCredential("alice", "pw"))


def test_exchange_plain_empty_initial_response_equals_sign() -> None:
    # RFC 4954 §4: "=" is a present but empty initial response; PLAIN rejects empty.
    ex = SaslExchange.create("PLAIN")
    with pytest.raises(MechanismError):
        ex.begin("=")


def test_exchange_plain_continuation() -> None:
    ex = SaslExchange.create("PLAIN")
    assert ex.begin(None) == SendChallenge("")
    step = ex.feed(b64(b"\x00alice\x00pw").encode() + b"\r\n")
    assert step == Authenticate(PasswordCredential("alice", "pw"))


def test_exchange_login_challenges_are_base64() -> None:
    ex = SaslExchange.create("LOGIN")
    assert ex.begin(None) == SendChallenge("VXNlcm5hbWU6")  # what Exchange sends
    assert ex.feed(b64(b"alice")) == SendChallenge("UGFzc3dvcmQ6")
    assert ex.feed(b64(b"pw")) == Authenticate(PasswordCredential("alice", "pw"))


@pytest.mark.parametrize("line", ["*", b"*\r\n"])
def test_exchange_cancel(line: str | bytes) -> None:
    ex = SaslExchange.create("LOGIN")
    ex.begin(None)
    with pytest.raises(MechanismCancelled):
        ex.feed(line)


@pytest.mark.parametrize("line", [
    "not base64!", "YWxpY2U", "YW=xpY2U=", "YWxp Y2U=", "YWxpY2U=\x00", "é",
    "A" * 20000,
])
def test_exchange_bad_base64(line: str) -> None:
    ex = SaslExchange.create("LOGIN")
    ex.begin(None)
    with pytest.raises(MechanismError):
        ex.feed(line)


def test_exchange_unknown_or_not_allowed_mechanism() -> None:
    with pytest.raises(MechanismError):
        SaslExchange.create("CRAM-MD5")
    with pytest.raises(MechanismError):
        SaslExchange.create("LOGIN", allowed=frozenset({"PLAIN"}))
    assert SaslExchange.create("login", allowed=frozenset({"LOGIN"}))


def test_exchange_feed_before_begin_refused() -> None:
    ex = SaslExchange.create("PLAIN")
    with pytest.raises(MechanismError):
        ex.feed("")


def test_helpers() -> None:
    assert decode_initial_response("=") == b""
    assert decode_response("") == b""
    assert encode_challenge(b"") == ""
    assert decode_response(b"YWxpY2U=\r\n") == b"alice"
    with pytest.raises(MechanismError):
        decode_initial_response("")
