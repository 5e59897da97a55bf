"""Building blocks of message analysis: line ends, encoded words, parameters,
addresses, section addressing, JSON, display fields, preview and attachments."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from gateway.mime import MessageSummary, analyse, analyse_message, normalise_line_endings
from gateway.mime.addresses import display_addresses, parse_addresses
from gateway.mime.headers import merge_rfc2231, parse_content_type, split_fields
from gateway.mime.words import decode_charset, decode_words
from tests.unit.mime.corpus import crlf, load


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        (b"a\nb\n", b"a\r\nb\r\n"),
        (b"a\rb\r", b"a\r\nb\r\n"),
        (b"a\r\r\nb", b"a\r\n\r\nb"),
        (b"\n\r\n\r", b"\r\n\r\n\r\n"),
        (b"", b""),
        (b"no line end", b"no line end"),
    ],
)
def test_normalise_line_endings(raw: bytes, stored: bytes) -> None:
    assert normalise_line_endings(raw) == stored
    assert normalise_line_endings(stored) == stored  # idempotent


def test_normalise_keeps_stored_form_as_is() -> None:
    raw = b"A: b\r\n\r\nbody\r\n"
    assert normalise_line_endings(raw) is raw


def test_offsets_refer_to_the_stored_form() -> None:
    lf = b"Subject: x\n\nline 1\nline 2\n"
    s = analyse_message(lf)
    stored = normalise_line_endings(lf)
    assert s.size == len(stored)
    assert stored[s.body_offset :] == b"line 1\r\nline 2\r\n"
    assert s.bodystructure[6:8] == [16, 2]


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("=?utf-8?q?Caf=C3=A9?= report", "Café report"),
        ("=?UTF-8?B?w6k=?= =?utf-8?b?w6k=?=", "éé"),  # white space between words dropped
        ("=?utf-8?q?a_b?=", "a b"),
        ("=?utf-8?b?4oI=?= =?utf-8?b?rA==?=", "€"),  # a character split across two words
        ("=?iso-8859-1?q?=E9t=E9?=", "été"),
        ("=?utf-8*en?q?x?=", "x"),  # RFC 2231 §5 language suffix
        ("a =?utf-8?q?b?= c", "a b c"),
        ("=?utf-8?b?###?= stays", "=?utf-8?b?###?= stays"),
        ("=?no-such-charset?q?ok?=", "ok"),
        ("=?base64?q?ok?=", "ok"),  # a bytes codec is not a charset
        ("plain", "plain"),
    ],
)
def test_decode_words(encoded: str, decoded: str) -> None:
    assert decode_words(encoded) == decoded


def test_decode_charset_fallbacks() -> None:
    assert decode_charset(b"\xc3\xa9", "unknown-8bit") == "é"
    assert decode_charset(b"\xff", "utf-8") == "\ufffd"
    assert decode_charset(b"a\x00b", "us-ascii") == "a\ufffdb"


def test_split_fields_unfolds_lazily_and_skips_junk() -> None:
    raw = crlf("Subject: a", "  b", "junk line", "X-Y:z", "", "body")
    fields = split_fields(raw, 0, len(raw))
    assert fields == [("subject", b"a\r\n  b"), ("x-y", b"z")]


def test_content_type_parsing() -> None:
    assert parse_content_type('text/plain; charset="utf-8" (c); format=flowed') == (
        "text",
        "plain",
        [("charset", "utf-8"), ("format", "flowed")],
    )
    assert parse_content_type("multipart/mixed; boundary=----=_Part_1") == (
        "multipart",
        "mixed",
        [("boundary", "----=_Part_1")],
    )
    assert parse_content_type("text") is None
    assert parse_content_type("/plain") is None
    assert parse_content_type(" (comment) text / html ") == ("text", "html", [])


def test_rfc2231_merge() -> None:
    params = [
        ("name*0", "long"),
        ("name*1", "name.pdf"),
        ("filename*", "utf-8''%E2%82%AC.pdf"),
        ("title*1*", "%20two"),
        ("title*0*", "us-ascii'en'one"),
        ("charset", "a"),
        ("CHARSET", "b"),
    ]
    assert merge_rfc2231(params) == {
        "name": "longname.pdf",
        "filename": "€.pdf",
        "title": "one two",
        "charset": "a",
    }


def test_addresses_and_their_display_form() -> None:
    addresses = parse_addresses('"Doe, J." <j@x>, g: a@b;, =?utf-8?q?M=C3=BC?= <m@x>, bare')
    assert addresses == [
        ["Doe, J.", None, "j", "x"],
        [None, None, "g", None],
        [None, None, "a", "b"],
        [None, None, None, None],
        ["=?utf-8?q?M=C3=BC?=", None, "m", "x"],
        [None, None, "bare", "MISSING_DOMAIN"],
    ]
    assert display_addresses(addresses) == "Doe, J. <j@x>, g: a@b;, Mü <m@x>, bare"
    assert parse_addresses("") == []
    assert parse_addresses("(just a comment)") == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # Junk after an address ends the list (Dovecot's recovery).
        ('<x@y>, "" <q@r> barry, z@w', [[None, None, "x", "y"], [None, None, "q", "r"]]),
        ("a@b@c, d@e", [[None, None, "a", "b"]]),
        ("a@@b", [[None, None, "a", "MISSING_DOMAIN"]]),
        # A broken angle address has a syntax-error host.
        ("Name <us r-x", [["Name", None, "us", "SYNTAX_ERROR"]]),
        ("Name <a@b c>", [["Name", None, "a", "SYNTAX_ERROR"]]),
        # Several words and no address: a display name.
        ("Anne Person", [["Anne Person", None, "MISSING_MAILBOX", "MISSING_DOMAIN"]]),
        ("@example.test", [[None, None, "MISSING_MAILBOX", "example.test"]]),
        # A group left open by junk is closed.
        ("g: a@b c, d@e;", [[None, None, "g", None], [None, None, "a", "b"], [None] * 4]),
    ],
)
def test_address_error_recovery(value: str, expected: list[list[str | None]]) -> None:
    assert parse_addresses(value) == expected


def test_section_range_addressing() -> None:
    raw = load("edge/hand_nested.eml")
    s = analyse_message(raw)
    assert s.section_range("") == (0, s.size)
    assert s.section_range("HEADER") == (0, s.header_size)
    assert s.section_range("header.fields (subject)".split(" ")[0]) == (0, s.header_size)
    assert s.section_range("TEXT") == (s.body_offset, s.size)
    for bad in ("0", "3", "1.9", "1.1.TEXT", "MIME", "X", "1.X", "2.1.2"):
        assert s.section_range(bad) is None, bad


def test_json_round_trip_and_bad_json() -> None:
    s = analyse_message(load("edge/hand_nested.eml"))
    text = s.to_json()
    again = MessageSummary.from_json(text)
    assert again == s
    assert again.part("2.1") == s.part("2.1")
    assert MessageSummary.from_json(text.encode()) == s
    for bad in ("{}", "[]", '{"size": 1}', "not json"):
        with pytest.raises(ValueError):
            MessageSummary.from_json(bad)


def test_display_fields() -> None:
    raw = crlf(
        "From: =?iso-8859-1?q?Andr=E9?= <andre@example.test>",
        "To: a@example.test,",
        "  b@example.test",
        "Cc: Group: c@example.test;",
        "Bcc: d@example.test",
        "Subject: =?utf-8?b?SGVsbG8=?=",
        "   world",
        "Message-ID: <m@x>",
        "In-Reply-To: <p@x>",
        "References: <o@x>",
        "  <p@x>",
        "Date: 2 Jan 2023 10:00 -0500",
        "",
        "x",
    )
    s = analyse_message(raw)
    assert s.from_ == "André <andre@example.test>"
    assert s.to == "a@example.test, b@example.test"
    assert s.cc == "Group: c@example.test;"
    assert s.bcc == "d@example.test"
    assert s.subject == "Hello world"
    assert (s.message_id, s.in_reply_to, s.references) == ("<m@x>", "<p@x>", "<o@x> <p@x>")
    assert s.date == datetime(2023, 1, 2, 15, 0, tzinfo=UTC)


def test_legacy_eight_bit_header_displays_as_windows_1252() -> None:
    s = analyse_message(b"Subject: caf\xe9\r\n\r\n")
    assert s.subject == "café"
    assert s.envelope[1] == "caf\ufffd"  # IMAP gets UTF-8; invalid bytes replaced


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("Mon, 2 Jan 2023 10:00:00 -0000", datetime(2023, 1, 2, 10, 0, tzinfo=UTC)),
        ("yesterday", None),
        ("", None),
    ],
)
def test_date(date: str, expected: datetime | None) -> None:
    assert analyse_message(crlf(f"Date: {date}", "", "")).date == expected


def test_preview_html_base64_and_length() -> None:
    html = "<html><head><style>p {}</style></head><body><p>Hi &amp; bye</p></body></html>"
    raw = crlf("Content-Type: text/html", "", html)
    assert analyse_message(raw).preview == "Hi & bye"
    raw = crlf(
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: base64",
        "",
        "w6ljbGFpcg==",
    )
    assert analyse_message(raw).preview == "éclair"
    long = " ".join(["word"] * 200)
    assert len(analyse_message(crlf("", long)).preview) <= 256


def test_preview_skips_attachments() -> None:
    raw = crlf(
        "Content-Type: multipart/mixed; boundary=b",
        "",
        "--b",
        "Content-Type: text/plain",
        "Content-Disposition: attachment; filename=a.txt",
        "",
        "attached",
        "--b--",
    )
    s = analyse_message(raw)
    assert (s.preview, s.has_attachments) == ("", True)


def test_attachment_detection_rules() -> None:
    related = crlf(
        "Content-Type: multipart/related; boundary=b",
        "",
        "--b",
        "Content-Type: text/html",
        "",
        "<img src=cid:i>",
        "--b",
        "Content-Type: image/png; name=i.png",
        "Content-ID: <i>",
        "",
        "png",
        "--b--",
    )
    assert analyse_message(related).has_attachments is False  # inline image
    named = related.replace(b"multipart/related", b"multipart/mixed")
    assert analyse_message(named).has_attachments is True  # named part, no disposition
    signed = load("msg_45.txt")
    assert analyse_message(signed).has_attachments is False  # RFC 1847 signature only


def test_internal_error_degrades_to_minimal_summary(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(data: bytes) -> MessageSummary:
        raise RuntimeError("bug")

    monkeypatch.setattr(analyse, "_analyse", broken)
    raw = crlf("Subject: x", "", "body", "")
    with caplog.at_level(logging.ERROR, logger="gateway.mime.analyse"):
        s = analyse_message(raw)
    assert "message analysis failed" in caplog.text
    assert s.bodystructure == [
        "text",
        "plain",
        ["charset", "us-ascii"],
        None,
        None,
        "7bit",
        6,
        1,
        None,
        None,
        None,
        None,
    ]
    assert s.section_range("1") == (s.body_offset, s.size)
