"""Login-name parsing (security reference A4: refuse control characters up front)."""

from __future__ import annotations

import pytest

from auth.errors import LoginNameError
from auth.names import MAX_LOGIN_LENGTH, parse_login


def test_upn() -> None:
    name = parse_login("Alice@Example.TEST")
    assert (name.form, name.user, name.domain) == ("upn", "Alice", "Example.TEST")
    assert name.address == "Alice@Example.TEST"
    assert name.normalised == "alice@example.test"


def test_upn_splits_at_last_at_and_keeps_plus() -> None:
    name = parse_login("a+tag@b@example.test")
    assert (name.user, name.domain) == ("a+tag@b", "example.test")


def test_downlevel() -> None:
    name = parse_login("EXAMPLE\\alice")
    assert (name.form, name.user, name.domain) == ("downlevel", "alice", "EXAMPLE")
    assert name.address is None
    assert name.normalised == "example\\alice"


def test_bare_with_and_without_default_domain() -> None:
    name = parse_login("alice", default_domain="example.test")
    assert (name.form, name.user, name.domain) == ("bare", "alice", "example.test")
    assert name.address == "alice@example.test"
    bare = parse_login("alice")
    assert bare.domain is None and bare.address is None
    assert bare.normalised == "alice"


@pytest.mark.parametrize("raw", [
    "", "alice\x00", "alice\r\nA001 LOGOUT", "al\nice@example.test", "EXAMPLE\\al\tice",
    "alice\x7f", "ali\u200bce",            # zero-width space (format character)
    "ali\u202ece",                          # right-to-left override
    "ali\u2028ce",                          # line separator
    "@example.test", "alice@", "\\alice", "EXAMPLE\\", "EX\\AMPLE\\alice",
    "alice@exa mple.test", "alice@.example.test", "alice@example..test",
    "EX AMPLE\\alice", " alice", "alice ",
    "a" * (MAX_LOGIN_LENGTH + 1),
    "a" * 300 + "@example.test",            # user part over MAX_USER_LENGTH
])
def test_refused(raw: str) -> None:
    with pytest.raises(LoginNameError):
        parse_login(raw)


def test_refuses_non_text() -> None:
    with pytest.raises(LoginNameError):
        parse_login(b"alice")  # type: ignore[arg-type]


def test_bad_default_domain_refused() -> None:
    with pytest.raises(LoginNameError):
        parse_login("alice", default_domain="bad\r\ndomain")


def test_error_message_names_the_character_not_the_input() -> None:
    with pytest.raises(LoginNameError, match="U\\+000D"):
        parse_login("alice\rsecret")
