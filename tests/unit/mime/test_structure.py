"""Hand-verified ENVELOPE, BODYSTRUCTURE and part offsets (RFC 3501 §6.4.5, §7.4.2).

The messages are tests/data/mime/edge/hand_*.eml (also checked against Dovecot in
test_dovecot_parity.py); sizes and line counts below were counted by hand.
"""

from __future__ import annotations

from gateway.mime import analyse_message
from tests.unit.mime.corpus import crlf, load

NIL = None
ASCII = ["charset", "us-ascii"]


def sliced(raw: bytes, rng: tuple[int, int] | None) -> bytes | None:
    return None if rng is None else raw[rng[0] : rng[1]]


def test_simple_text_message() -> None:
    raw = load("edge/hand_simple.eml")
    s = analyse_message(raw)
    assert s.envelope == [
        "Mon, 2 Jan 2023 10:00:00 +0000",
        "Hello",
        [["Alice", NIL, "alice", "example.test"]],
        [["Alice", NIL, "alice", "example.test"]],  # Sender defaults to From
        [["Alice", NIL, "alice", "example.test"]],  # Reply-To defaults to From
        [[NIL, NIL, "bob", "example.test"]],
        NIL,
        NIL,
        NIL,
        "<1@example.test>",
    ]
    # "Hello Bob\r\nBye\r\n": 16 octets, 2 lines; defaults text/plain us-ascii 7bit.
    assert s.bodystructure == ["text", "plain", ASCII, NIL, NIL, "7bit", 16, 2, NIL, NIL, NIL, NIL]
    assert s.size == len(raw)
    assert raw[s.body_offset :] == b"Hello Bob\r\nBye\r\n"
    assert raw[: s.header_size].endswith(b"<1@example.test>\r\n\r\n")
    assert [p.number for p in s.parts] == ["1"]
    assert sliced(raw, s.section_range("1")) == b"Hello Bob\r\nBye\r\n"
    assert sliced(raw, s.section_range("1.MIME")) == raw[: s.header_size]
    assert sliced(raw, s.section_range("TEXT")) == b"Hello Bob\r\nBye\r\n"
    assert s.section_range("2") is None
    assert s.section_range("1.HEADER") is None  # not a message/rfc822 part
    assert (s.subject, s.from_, s.to) == ("Hello", "Alice <alice@example.test>", "bob@example.test")
    assert s.date is not None and s.date.isoformat() == "2023-01-02T10:00:00+00:00"
    assert s.preview == "Hello Bob Bye"
    assert s.has_attachments is False


def test_multipart_alternative() -> None:
    raw = load("edge/hand_alternative.eml")
    s = analyse_message(raw)
    assert s.bodystructure == [
        [
            "text",
            "plain",
            ["charset", "utf-8"],
            NIL,
            NIL,
            "quoted-printable",
            9,
            0,
            NIL,
            NIL,
            NIL,
            NIL,
        ],
        ["text", "html", ["charset", "utf-8"], NIL, NIL, "7bit", 18, 0, NIL, NIL, NIL, NIL],
        "alternative",
        ["boundary", "alt"],
        NIL,
        NIL,
        NIL,
    ]
    assert [p.number for p in s.parts] == ["1", "2"]
    assert sliced(raw, s.section_range("1")) == b"caf=C3=A9"
    assert sliced(raw, s.section_range("2")) == b"<p>caf&eacute;</p>"
    assert (
        sliced(raw, s.section_range("2.MIME")) == b"Content-Type: text/html; charset=utf-8\r\n\r\n"
    )
    # TEXT of a multipart message keeps preamble and epilogue.
    text = sliced(raw, s.section_range("TEXT"))
    assert (
        text is not None
        and text.startswith(b"preamble\r\n--alt")
        and text.endswith(b"epilogue\r\n")
    )
    first = s.parts[0]
    assert (first.content_type, first.encoding, first.params) == (
        "text/plain",
        "quoted-printable",
        {"charset": "utf-8"},
    )
    assert s.preview == "café"  # quoted-printable and charset decoded
    assert s.has_attachments is False


def test_multipart_mixed_with_attachment_encoded_words_and_group() -> None:
    raw = load("edge/hand_attachment.eml")
    s = analyse_message(raw)
    assert s.envelope == [
        NIL,
        "=?utf-8?q?Caf=C3=A9?= report",  # IMAP sends encoded words as written
        [["Doe, John", NIL, "john", "example.test"]],
        [["Doe, John", NIL, "john", "example.test"]],
        [["Doe, John", NIL, "john", "example.test"]],
        [
            [NIL, NIL, "Team", NIL],  # RFC 3501 group start
            [NIL, NIL, "a", "example.test"],
            [NIL, NIL, "b", "example.test"],
            [NIL, NIL, NIL, NIL],  # group end
            [NIL, NIL, "c", "example.test"],
        ],
        NIL,
        NIL,
        NIL,
        NIL,
    ]
    assert s.bodystructure == [
        ["text", "plain", ASCII, NIL, NIL, "7bit", 13, 0, NIL, NIL, NIL, NIL],
        [
            "application",
            "pdf",
            ["name", "r.pdf"],
            NIL,
            NIL,
            "base64",
            12,
            NIL,
            ["attachment", ["filename", "r.pdf"]],
            NIL,
            NIL,
        ],
        "mixed",
        ["boundary", "outer"],
        NIL,
        NIL,
        NIL,
    ]
    assert s.subject == "Café report"
    assert s.from_ == "Doe, John <john@example.test>"
    assert s.to == "Team: a@example.test, b@example.test;, c@example.test"
    pdf = s.part("2")
    assert pdf is not None
    assert (pdf.disposition, pdf.filename, pdf.encoding) == ("attachment", "r.pdf", "base64")
    assert raw[pdf.body_start : pdf.body_end] == b"JVBERi0xLjQK"
    assert s.has_attachments is True
    assert s.preview == "See attached."


def test_nested_multipart_and_message_rfc822() -> None:
    raw = load("edge/hand_nested.eml")
    s = analyse_message(raw)
    inner_envelope = [
        "Tue, 3 Jan 2023 11:00:00 +0100",
        "inner",
        [[NIL, NIL, "inner", "example.test"]],
        [[NIL, NIL, "inner", "example.test"]],
        [[NIL, NIL, "inner", "example.test"]],
        NIL,
        NIL,
        NIL,
        NIL,
        NIL,
    ]
    assert s.bodystructure == [
        [
            ["text", "plain", ASCII, NIL, NIL, "7bit", 5, 0, NIL, NIL, NIL, NIL],
            ["text", "html", ASCII, NIL, NIL, "7bit", 11, 0, NIL, NIL, NIL, NIL],
            "alternative",
            ["boundary", "b2"],
            NIL,
            NIL,
            NIL,
        ],
        # 26 + 16 + 38 + 2 header octets, "inner body\r\nline 2" 18: 100 octets, 5 LF.
        [
            "message",
            "rfc822",
            NIL,
            NIL,
            NIL,
            "7bit",
            100,
            inner_envelope,
            ["text", "plain", ASCII, NIL, NIL, "7bit", 18, 1, NIL, NIL, NIL, NIL],
            5,
            NIL,
            ["attachment", NIL],
            NIL,
            NIL,
        ],
        "mixed",
        ["boundary", "b1"],
        NIL,
        NIL,
        NIL,
    ]
    assert [p.number for p in s.parts] == ["1", "1.1", "1.2", "2", "2.1"]
    inner_header = (
        b"From: inner@example.test\r\nSubject: inner\r\n"
        b"Date: Tue, 3 Jan 2023 11:00:00 +0100\r\n\r\n"
    )
    assert sliced(raw, s.section_range("1.1")) == b"plain"
    assert sliced(raw, s.section_range("1.2")) == b"<b>html</b>"
    body1 = sliced(raw, s.section_range("1"))
    assert body1 is not None and body1.startswith(b"--b2\r\n") and body1.endswith(b"--b2--\r\n")
    assert sliced(raw, s.section_range("2.MIME")) == (
        b"Content-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n"
    )
    assert sliced(raw, s.section_range("2")) == inner_header + b"inner body\r\nline 2"
    assert sliced(raw, s.section_range("2.HEADER")) == inner_header
    assert sliced(raw, s.section_range("2.HEADER.FIELDS")) == inner_header
    assert sliced(raw, s.section_range("2.TEXT")) == b"inner body\r\nline 2"
    assert sliced(raw, s.section_range("2.1")) == b"inner body\r\nline 2"
    assert sliced(raw, s.section_range("2.1.MIME")) == inner_header
    two = s.part("2")
    assert two is not None and two.message_text_start == raw.index(b"inner body")
    assert s.has_attachments is True
    assert s.preview == "plain"  # text/plain preferred to HTML, attached message ignored


def test_broken_boundaries() -> None:
    raw = load("edge/hand_broken.eml")
    s = analyse_message(raw)
    empty = ["text", "plain", ASCII, NIL, NIL, "7bit", 0, 0, NIL, NIL, NIL, NIL]
    assert s.bodystructure == [
        # "--b  " with trailing white space is a boundary; "--x ..." is body text.
        ["text", "plain", ASCII, NIL, NIL, "7bit", 23, 1, NIL, NIL, NIL, NIL],
        empty,  # its header runs into the next boundary: empty body
        empty,  # the missing close delimiter leaves an empty last part
        "mixed",
        ["boundary", "b"],
        NIL,
        NIL,
        NIL,
    ]
    assert sliced(raw, s.section_range("1")) == b"one\r\n--x not a boundary"
    assert (
        sliced(raw, s.section_range("2.MIME")) == b"Content-Type: text/plain\r\ntwo-no-blank-line"
    )
    assert sliced(raw, s.section_range("2")) == b""
    assert sliced(raw, s.section_range("3")) == b""


def test_multipart_without_boundary_has_one_empty_part() -> None:
    raw = crlf("Content-Type: multipart/mixed", "", "--x", "", "hi", "--x--", "")
    s = analyse_message(raw)
    assert s.bodystructure == [
        ["text", "plain", ASCII, NIL, NIL, "7bit", 0, 0, NIL, NIL, NIL, NIL],
        "mixed",
        NIL,
        NIL,
        NIL,
        NIL,
    ]
    assert s.parts == []
    assert s.section_range("1") is None


def test_nested_multipart_reusing_the_parent_boundary() -> None:
    # The innermost multipart wins a tie (Dovecot's rule); its close delimiter hands
    # the same boundary string back to the parent.
    raw = crlf(
        "Content-Type: multipart/mixed; boundary=X",
        "",
        "--X",
        "Content-Type: multipart/alternative; boundary=X",
        "",
        "--X",
        "",
        "a",
        "--X--",
        "--X",
        "",
        "b",
        "--X--",
        "",
    )
    s = analyse_message(raw)
    assert [p.number for p in s.parts] == ["1", "1.1", "2"]
    assert sliced(raw, s.section_range("1.1")) == b"a"
    assert sliced(raw, s.section_range("2")) == b"b"


def test_inner_boundary_extending_the_outer_one() -> None:
    # "--abc" matches both "ab" and "abc": the longest active boundary wins.
    s = analyse_message(load("edge/p12.eml"))
    assert [p.number for p in s.parts] == ["1", "1.1", "1.2", "2"]


def test_header_without_empty_line_and_message_without_body() -> None:
    raw = crlf("Subject: no body here", "From: a@b")
    s = analyse_message(raw)
    assert (s.header_size, s.body_offset, s.size) == (len(raw), len(raw), len(raw))
    assert s.bodystructure[6:8] == [0, 0]
    assert s.envelope[1] == "no body here"


def test_message_starting_with_empty_line_has_empty_header() -> None:
    raw = crlf("", "body only", "")
    s = analyse_message(raw)
    assert (s.header_size, s.body_offset) == (2, 2)
    assert s.envelope == [NIL] * 10


def test_case_of_types_and_parameters_is_kept_as_written() -> None:
    s = analyse_message(load("edge/p01.eml"))
    assert s.bodystructure[:6] == [
        "TEXT",
        "PLAIN",
        ["CHARSET", "US-ASCII", "Format", "Flowed"],
        NIL,
        NIL,
        "QUOTED-PRINTABLE",
    ]
    assert s.parts[0].content_type == "text/plain"
    assert s.parts[0].params == {"charset": "US-ASCII", "format": "Flowed"}
    assert s.parts[0].encoding == "quoted-printable"


def test_rfc2231_parameters() -> None:
    s = analyse_message(load("edge/q09.eml"))
    # BODYSTRUCTURE keeps extended values encoded, joined (RFC 2231 §3-§4).
    assert s.bodystructure[2] == [
        "name*",
        "iso-8859-1'en'%E9t%E9",
        "title*",
        "us-ascii''This%20is%20cool!",
        "charset",
        "us-ascii",
    ]
    # PartInfo decodes them.
    assert s.parts[0].params["name"] == "été"
    assert s.parts[0].params["title"] == "This is cool!"
    assert s.parts[0].filename == "été"


def test_extension_data_disposition_language_location_md5() -> None:
    s = analyse_message(load("edge/p08.eml"))
    assert s.bodystructure == [
        [
            "text",
            "plain",
            ASCII,
            "<id@x>",
            "desc here",
            "7bit",
            4,
            0,
            "Q2hlY2sgSW50ZWdyaXR5IQ==",
            ["Attachment", ["FileName", "foo.txt"]],
            ["en", "de"],
            NIL,
        ],
        "mixed",
        ["boundary", "b"],
        NIL,
        ["en"],
        "http://x/y",
    ]
    part = s.parts[0]
    assert (part.disposition, part.filename, part.content_id) == ("attachment", "foo.txt", "<id@x>")


def test_non_mime_message_ignores_content_fields() -> None:
    # Without MIME-Version or Content-Type a message is not MIME (RFC 2045 §4).
    s = analyse_message(load("edge/q03.eml"))
    assert s.bodystructure[5] == "7bit"
    assert s.bodystructure[3] is NIL and s.bodystructure[9] is NIL
    s = analyse_message(load("edge/q01.eml"))
    assert s.bodystructure[5] == "Base64"


def test_message_rfc822_digest_default_and_upper_case_type() -> None:
    s = analyse_message(load("msg_02.txt"))
    digest = s.bodystructure[2]
    assert digest[-5] == "digest"
    assert all(child[:2] == ["message", "rfc822"] for child in digest[:5])
    assert [p.number for p in s.parts][:6] == ["1", "2", "3", "3.1", "3.1.1", "3.2"]
    s = analyse_message(load("msg_16.txt"))
    assert s.bodystructure[2][:2] == ["message", "rfc822"]  # written MESSAGE/RFC822


def test_envelope_address_forms() -> None:
    s = analyse_message(load("edge/p06.eml"))
    date, subject, from_, sender, reply_to, to, cc, bcc, in_reply_to, message_id = s.envelope
    assert date == "Mon, 1 Jan 2024 00:00:00 +0000  "  # unfolded only
    assert subject == "hello folded"  # white space collapsed as Dovecot does
    assert from_ == [["Barry A. Warsaw", NIL, "barry", "digicool.com"]]  # comment as name
    assert sender == [[NIL, NIL, "x", "[1.2.3.4]"]]
    assert reply_to == [["Foo Bar", NIL, "MISSING_MAILBOX", "MISSING_DOMAIN"]]
    assert to == [
        [NIL, NIL, "x", "y"],
        [NIL, NIL, "q", "r"],
        [NIL, NIL, "barry", "MISSING_DOMAIN"],
        [NIL, NIL, "undisclosed-recipients", NIL],
        [NIL, NIL, NIL, NIL],
        [NIL, NIL, "Team", NIL],
        [NIL, NIL, "a", "b"],
        ["C D", NIL, "c", "d"],
        [NIL, NIL, NIL, NIL],
        [NIL, "@r1,@r2", "z", "w"],
        [NIL, NIL, "john doe", "x.y"],
        ["=?utf-8?q?J=C3=B6rg?=", NIL, "j", "k"],
    ]
    assert (cc, bcc) == (NIL, NIL)
    assert (in_reply_to, message_id) == ("<c@d> (comment)", "<a@b>")
    assert "Jörg <j@k>" in s.to


def test_repeated_address_fields_are_joined() -> None:
    s = analyse_message(load("msg_20.txt"))
    assert [a[2] for a in s.envelope[6]] == ["ccc", "ddd", "eee"]


def test_eight_bit_utf8_headers_round_trip() -> None:
    s = analyse_message(load("edge/p13.eml"))
    assert s.envelope[1] == "Grüße"
    assert s.envelope[2] == [["Jörg", NIL, "j", "k"]]
    assert s.subject == "Grüße"


def test_pinned_deviations_from_dovecot() -> None:
    """Where we follow the RFC instead of a Dovecot quirk (test_dovecot_parity.py)."""
    # Content-Type "text" without subtype is invalid: RFC 2045 §5.2 default applies.
    s = analyse_message(load("msg_14.txt"))
    assert s.bodystructure == [
        "text",
        "plain",
        ASCII,
        NIL,
        NIL,
        "7bit",
        235,
        10,
        NIL,
        NIL,
        NIL,
        NIL,
    ]
    # An unquoted boundary containing "=" is taken whole: one part, not two.
    s = analyse_message(load("edge/p10.eml"))
    assert [p.number for p in s.parts] == ["1"]
    assert s.bodystructure[-5:] == ["mixed", ["boundary", "----=_Part_1"], NIL, NIL, NIL]
    # An empty element of an address list is no address.
    s = analyse_message(load("edge/p25.eml"))
    assert s.envelope[5] == [[NIL, NIL, "a", "b"], [NIL, NIL, "c", "d"]]
    # An RFC 2231 encoded boundary (boundary*=charset''value) is honoured.
    s = analyse_message(load("msg_33.txt"))
    assert [p.number for p in s.parts] == ["1", "2"]
    raw = load("msg_33.txt")
    assert sliced(raw, s.section_range("1")) == b"part 1\r\n"


def test_boundary_ending_a_header_stays_in_the_closed_parents() -> None:
    # Dovecot's rule, kept for byte-exact answers: part 1.2's header "and " runs into
    # the outermost boundary, which also closes multipart 1; the CRLF before that
    # boundary is not in 1.2's header but is in 1's body.
    raw = load("msg_38.txt")
    s = analyse_message(raw)
    assert sliced(raw, s.section_range("1.2.MIME")) == b"and "
    body = sliced(raw, s.section_range("1"))
    assert body is not None and body.endswith(b"\r\nand \r\n")


def test_unterminated_boundary_line_at_the_end_opens_no_part() -> None:
    s = analyse_message(
        crlf("Content-Type: multipart/mixed; boundary=b", "", "--b", "", "a", "--b")
    )
    assert [p.number for p in s.parts] == ["1"]
    assert s.bodystructure[0][6] == 1  # "a"


def test_parameters_stop_at_the_first_syntax_error() -> None:
    s = analyse_message(load("edge/s04_param_syntax_error.eml"))
    assert s.bodystructure[2] == ["charset", "us-ascii"]  # spooge, hippos dropped
    s = analyse_message(crlf('Content-Type: text/plain; charset="us-', "", "x"))
    assert s.bodystructure[2] == ["charset", "us-ascii"]  # unterminated: default
