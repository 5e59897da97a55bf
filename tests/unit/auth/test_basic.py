"""HTTP Basic (RFC 7617)."""

from __future__ import annotations

import base64

import pytest

from auth.credentials import PasswordCredential
from auth.errors import MechanismError
from auth.mechanisms import basic_challenge, parse_basic_authorization


def header(raw: bytes, scheme: str = "Basic") -> str:
    return f"{scheme} {base64.b64encode(raw).decode()}"


def test_parse_basic() -> None:
    cred = parse_basic_authorization(header(b"alice@example.test:S3cret!"))
    assert cred == PasswordCredential("alice@example.test", "S3cret!")


def test_scheme_is_case_insensitive_and_password_may_hold_colons() -> None:
    cred = parse_basic_authorization(header(b"EXAMPLE\\alice:a:b:c", scheme="bAsIc"))
    assert cred == PasswordCredential("EXAMPLE\\alice", "a:b:c")


def test_utf8_credentials() -> None:
    cred = parse_basic_authorization(header("jürgen:pässwörd".encode()))
    assert cred == PasswordCredential("jürgen", "pässwörd")


@pytest.mark.parametrize("value", [
    "Bearer abc",
    "Basic",
    "Basic    ",
    "Basic !!!!",
    "Basic YWxpY2U",                       # bad padding
    header(b"alice"),                      # no colon
    header(b":pw"),                        # empty user-id
    header(b"al\x00ice:pw"),               # control character in user-id
    header(b"alice:p\nw"),                 # control character in password
    header("jürgen:pw".encode("latin-1")),  # not UTF-8
    "Basic " + "A" * 9000,                 # over the size limit
    "Digest username=alice",
])
def test_malformed_refused(value: str) -> None:
    with pytest.raises(MechanismError):
        parse_basic_authorization(value)


def test_challenge_advertises_utf8_and_quotes_realm() -> None:
    assert basic_challenge("mail.example.test") == \
        'Basic realm="mail.example.test", charset="UTF-8"'
    assert basic_challenge('a"b\\c') == 'Basic realm="a\\"b\\\\c", charset="UTF-8"'
    with pytest.raises(ValueError):
        basic_challenge("evil\r\nSet-Cookie: x")
