"""Pure logic of the IMAP layer: modified UTF-7, the command cursor, response
formatting, the sequence-number map and the SEARCH planner."""

from __future__ import annotations

import pytest

from gateway.store.models import Change, Folder
from protocols.imap import utf7, wire
from protocols.imap.fetch import header_fields, parse_items, strip_extensions
from protocols.imap.parser import Cursor, ParseError, SeqRange, SequenceSet, literal_mark
from protocols.imap.search import parse_keys, split_sql
from protocols.imap.selected import SelectedMailbox, compress


@pytest.mark.parametrize(("text", "wire_form"), [
    ("INBOX", "INBOX"), ("Café", "Caf&AOk-"), ("a&b", "a&-b"), ("日本語", "&ZeVnLIqe-"),
    ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"), ("", "")])
def test_modified_utf7_round_trip(text: str, wire_form: str) -> None:
    assert utf7.encode(text) == wire_form
    assert utf7.decode(wire_form) == text


@pytest.mark.parametrize("bad", ["&AOk", "&Jjo!", "&AGE-", "caf\u00e9", "&ZeVnLIqe"])
def test_modified_utf7_refuses_malformed(bad: str) -> None:
    with pytest.raises(ValueError):
        utf7.decode(bad)


def test_cursor_primitives_and_literals() -> None:
    cur = Cursor([b'a LOGIN {5}', b"al ce", b' "pa\\"ss" (\\Seen $x) 1:3,5,*:7'])
    assert cur.atom() == "a"
    cur.sp()
    assert cur.atom() == "LOGIN"
    cur.sp()
    assert cur.astring() == b"al ce"
    cur.sp()
    assert cur.astring() == b'pa"ss'
    cur.sp()
    assert cur.flag_list() == ["\\Seen", "$x"]
    cur.sp()
    assert cur.sequence_set() == SequenceSet((SeqRange(1, 3), SeqRange(5, 5),
                                              SeqRange(None, 7)))
    cur.end()
    assert literal_mark(b"x {12+}") == (12, True)
    assert literal_mark(b"x {12}") == (12, False)
    assert literal_mark(b"x {12") is None


def test_cursor_errors() -> None:
    with pytest.raises(ParseError):
        Cursor([b'"unterminated']).quoted()
    with pytest.raises(ParseError):
        Cursor([b"0"]).nz_number()
    with pytest.raises(ParseError):
        Cursor([b"(" * 40 + b")" * 40]).paren_list(lambda: None)
    assert Cursor([b'"14-Jul-2023 02:44:25 -0700"']).date_time() == 1689327865.0
    with pytest.raises(ParseError):
        Cursor([b'"31-Foo-2023 02:44:25 -0700"']).date_time()


def test_wire_strings() -> None:
    assert wire.string("plain") == b'"plain"'
    assert wire.string('a"b\\') == b'"a\\"b\\\\"'
    assert wire.string("line\r\nbreak") == b"{11}\r\nline\r\nbreak"
    assert wire.string("été") == b"{5}\r\n" + "été".encode()
    assert wire.sexp(["a", None, 3, ["b"]]) == b'("a" NIL 3 ("b"))'
    assert wire.astring("Sent Items") == b'"Sent Items"'
    assert wire.internal_date(0) == b'"01-Jan-1970 00:00:00 +0000"'


def test_fetch_items_and_body() -> None:
    items = parse_items(Cursor([b"(UID BODY.PEEK[HEADER.FIELDS (From To)]<0.10> BINARY[1])"]))
    assert [i.kind for i in items] == ["UID", "BODY[]", "BINARY[]"]
    assert items[1].label() == "BODY[HEADER.FIELDS (From To)]<0>"
    assert [i.kind for i in parse_items(Cursor([b"ALL"]))] == [
        "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"]
    for bad in (b"BODY[1.FOO]", b"BINARY[TEXT]", b"(FROB)", b"BODY[]<1>"):
        with pytest.raises(ParseError):
            parse_items(Cursor([bad]))
    bs = [["text", "plain", None, None, None, "7bit", 1, 1, None, None, None, None],
          "mixed", ["boundary", "x"], None, None, None]
    assert strip_extensions(bs) == [["text", "plain", None, None, None, "7bit", 1, 1],
                                    "mixed"]
    header = b"From: a\r\nTo: b\r\n c\r\nSubject: s\r\n\r\n"
    assert header_fields(header, ("TO",), exclude=False) == b"To: b\r\n c\r\n\r\n"
    assert header_fields(header, ("to",), exclude=True) == b"From: a\r\nSubject: s\r\n\r\n"


def _folder() -> Folder:
    return Folder(id=1, mailbox_id=1, parent_id=None, name="Inbox", full_name="Inbox",
                  special_use="inbox", uidvalidity=7, uidnext=20, highest_modseq=5,
                  message_count=4, unseen_count=0, total_size=0, subscribed=True)


def _change(kind: str, uid: int, modseq: int) -> Change:
    return Change(id=modseq, mailbox_id=1, modseq=modseq, folder_id=1,
                  kind=kind, uid=uid, message_id=uid, detail=None, at=0.0)  # type: ignore[arg-type]


def test_selected_mailbox_numbering_and_updates() -> None:
    sel = SelectedMailbox(_folder(), [3, 5, 9, 12], 5, readonly=False)
    assert sel.resolve(SequenceSet((SeqRange(2, None),)), uid=False) == [(5, 12)]
    assert sel.resolve(SequenceSet((SeqRange(100, None),)), uid=True) == [(12, 12)]
    with pytest.raises(ParseError):
        sel.resolve(SequenceSet((SeqRange(9, 9),)), uid=False)
    sel.note([_change("expunged", 5, 6), _change("message_added", 13, 7),
              _change("flags_changed", 9, 8)])
    held = sel.take(allow_expunge=False, qresync=False)
    assert held.expunged_seqs == [] and held.exists == 5 and held.flag_uids == {9}
    assert sel.seq_of(9) == 3  # numbers unchanged while the expunge is held back
    now = sel.take(allow_expunge=True, qresync=False)
    assert now.expunged_seqs == [2] and list(sel.uids) == [3, 9, 12, 13]
    assert sel.remove_now([3, 12]) == [1, 2]
    assert compress([1, 2, 3, 7, 9, 10]) == "1:3,7,9:10"


def test_search_planner_pushes_conjunction_to_sql() -> None:
    keys = parse_keys(Cursor([b"UNSEEN FLAGGED LARGER 10 SINCE 1-Feb-2020 FROM bob "
                              b"OR SEEN DRAFT"]), lambda s, u: [(1, 5)])
    flt, rest, nothing = split_sql(keys)
    assert not nothing
    assert flt.flags_set == 4 and flt.flags_clear == 1 and flt.larger == 10
    assert flt.since == 1580515200.0
    assert [k[0] for k in rest] == ["text", "or"]
    _, _, nothing = split_sql(parse_keys(Cursor([b"SEEN UNSEEN"]), lambda s, u: []))
    assert nothing
