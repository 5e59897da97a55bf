"""POP3 command parsing, the state table, and the maildrop snapshot."""

from __future__ import annotations

import pytest

from gateway.store.models import Folder, Message
from protocols.pop3.commands import (
    COMMANDS,
    CommandError,
    State,
    check_arity,
    line_count,
    message_number,
    parse,
)
from protocols.pop3.maildrop import Maildrop


def test_parse_keeps_the_rest_of_the_line_for_pass() -> None:
    c = parse(b"pass  my secret pass ")
    assert c.keyword == "PASS"
    assert c.rest == " my secret pass "
    assert c.args == ("my", "secret", "pass")


@pytest.mark.parametrize("line", [b"", b" ", b"TOOLONG", b"US3R x", b"N\x00OP",
                                  b"\xff\xfe", "ÜSER".encode()])
def test_parse_refuses_malformed_lines(line: bytes) -> None:
    with pytest.raises(CommandError):
        parse(line)


def test_state_table_and_arity() -> None:
    assert State.TRANSACTION not in COMMANDS["USER"].states
    assert State.AUTHORIZATION not in COMMANDS["RETR"].states
    assert COMMANDS["QUIT"].states == {State.AUTHORIZATION, State.TRANSACTION}
    check_arity(parse(b"TOP 1 10"), COMMANDS["TOP"])
    with pytest.raises(CommandError):
        check_arity(parse(b"TOP 1"), COMMANDS["TOP"])
    with pytest.raises(CommandError):
        check_arity(parse(b"STAT 1"), COMMANDS["STAT"])
    check_arity(parse(b"PASS a b c"), COMMANDS["PASS"])


def test_numbers() -> None:
    assert message_number("12") == 12
    assert line_count("0") == 0
    for bad in ("-1", "+1", "1.0", "", "\u0661", "12345678901"):
        with pytest.raises(CommandError):
            message_number(bad)


def folder() -> Folder:
    return Folder(id=5, mailbox_id=1, parent_id=None, name="Inbox", full_name="Inbox",
                  special_use="inbox", uidvalidity=77, uidnext=20, highest_modseq=1,
                  message_count=6, unseen_count=0, total_size=0, subscribed=True)


def msg(uid: int, size: int) -> Message:
    return Message(id=100 + uid, mailbox_id=1, folder_id=5, uid=uid, content_id=uid,
                   flags=0, keywords=(), internal_date=0.0, size=size, modseq=1)


def test_maildrop_marks_counts_and_ranges() -> None:
    drop = Maildrop(folder(), [msg(u, u * 10) for u in (3, 4, 5, 7, 8, 12)])
    assert (drop.count, drop.octets, len(drop)) == (6, 390, 6)
    assert drop.unique_id(1) == "77.3" and drop.message_id(4) == 107
    for n in (1, 2, 4, 5, 6):
        drop.mark_deleted(n)
    drop.mark_deleted(1)  # twice: counted once
    assert (drop.count, drop.octets) == (1, 50)
    assert drop.present() == [3]
    assert not drop.exists(1) and drop.is_deleted(1) and not drop.exists(7)
    # uid 5 (number 3) is not marked: ranges must not cover it
    assert drop.deleted_ranges() == [(3, 4), (7, 8), (12, 12)]
    drop.reset()
    assert (drop.count, drop.octets, drop.deleted_ranges()) == (6, 390, [])
