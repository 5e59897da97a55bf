"""Command-line parsing (RFC 5321 §4.1.1, §4.1.2)."""

from __future__ import annotations

import pytest

from protocols.smtp.parser import (
    CommandSyntaxError,
    is_valid_helo_domain,
    parse_command,
    parse_path_argument,
)


def test_verb_and_argument() -> None:
    c = parse_command(b"mail FROM:<a@b.test> SIZE=10", utf8=False)
    assert (c.verb, c.arg) == ("MAIL", "FROM:<a@b.test> SIZE=10")
    assert parse_command(b"QUIT", utf8=False).arg == ""


@pytest.mark.parametrize("line", [b"\xffHELO x", b"HE-LO x"])
def test_bad_verb(line: bytes) -> None:
    with pytest.raises(CommandSyntaxError) as err:
        parse_command(line, utf8=False)
    assert err.value.reply.startswith("500 5.3.3")


def test_non_ascii_argument_needs_smtputf8() -> None:
    with pytest.raises(CommandSyntaxError):
        parse_command("RCPT TO:<ü@b.test>".encode(), utf8=False)
    assert parse_command("RCPT TO:<ü@b.test>".encode(), utf8=True).arg == "TO:<ü@b.test>"


def test_control_characters_refused() -> None:
    with pytest.raises(CommandSyntaxError):
        parse_command(b"MAIL FROM:<a\x00@b.test>", utf8=False)


def test_path_and_params() -> None:
    p = parse_path_argument("FROM:<a@b.test> SIZE=100 BODY=8BITMIME SMTPUTF8", "FROM")
    assert p.path == "<a@b.test>"
    assert p.params == {"SIZE": "100", "BODY": "8BITMIME", "SMTPUTF8": None}
    assert parse_path_argument("FROM: <>", "FROM").path == "<>"


def test_quoted_local_part_may_hold_brackets_and_spaces() -> None:
    p = parse_path_argument('TO:<"a> b"@c.test> X=1', "TO")
    assert p.path == '<"a> b"@c.test>' and p.params == {"X": "1"}


@pytest.mark.parametrize("arg", ["FROM:a@b.test", "TO:<a@b.test>", "FROM:<a@b.test",
                                 "FROM:<a@b.test>SIZE=1", "FROM:<a@b.test> =1",
                                 "FROM:<a@b.test> SIZE=", "FROM:<a@b.test> S_Z=1"])
def test_bad_paths(arg: str) -> None:
    with pytest.raises(CommandSyntaxError):
        parse_path_argument(arg, "FROM")


def test_too_many_params() -> None:
    with pytest.raises(CommandSyntaxError):
        parse_path_argument("FROM:<a@b.test>" + " X=1" * 17, "FROM")


@pytest.mark.parametrize("text,ok", [("mail.example.test", True), ("[192.0.2.1]", True),
                                     ("", False), ("a b", False), ("[]", False),
                                     (".x", False), ("a..b", False), ("x;y", False)])
def test_helo_domain(text: str, ok: bool) -> None:
    assert is_valid_helo_domain(text) is ok
