"""analyse_message is total: any bytes give a consistent summary (no exception).

Adversarial shapes (deep nesting, part floods, huge lines, NULs, broken syntax) and a
seeded fuzz run; every result must satisfy the offset invariants and round-trip
through JSON. Sizes stay small enough to keep the file fast; the linear-time design
is measured in bench, not asserted here.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from gateway.mime import MessageSummary, analyse_message, limits
from tests.unit.mime.corpus import corpus_names, load


def check(raw: bytes) -> MessageSummary:
    """Analyse and verify every invariant of the result."""
    s = analyse_message(raw)
    assert s.size >= len(raw)  # normalisation only adds CRs
    assert 0 <= s.header_size == s.body_offset <= s.size
    numbers = set()
    for part in s.parts:
        assert 0 <= part.header_start <= part.header_end == part.body_start
        assert part.body_start <= part.body_end <= s.size
        if part.message_text_start is not None:
            assert part.message_text_end is not None
            assert part.body_start <= part.message_text_start <= part.message_text_end
            assert part.message_text_end <= part.body_end
        assert part.number not in numbers
        numbers.add(part.number)
        assert s.section_range(part.number) == (part.body_start, part.body_end)
        parent = s.part(part.number.rpartition(".")[0])
        if parent is not None:  # children lie inside their parent's body
            assert parent.body_start <= part.header_start
            assert part.body_end <= parent.body_end
    assert len(s.parts) <= limits.MAX_PARTS
    assert len(s.envelope) == 10
    check_types(s.bodystructure)
    check_types(s.envelope)
    assert MessageSummary.from_json(s.to_json()) == s
    return s


def check_types(value: Any) -> None:
    """Only str, int, None and lists: what the IMAP layer serialises."""
    if isinstance(value, list):
        for item in value:
            check_types(item)
    else:
        assert value is None or isinstance(value, (str, int)), value


@pytest.mark.parametrize("name", corpus_names())
def test_every_corpus_message_analyses(name: str) -> None:
    s = check(load(name))
    assert s.size == len(load(name))


ADVERSARIAL = {
    "empty": b"",
    "random": random.Random(7).randbytes(64 * 1024),
    "nul bytes": b"\x00" * 4096,
    "bare cr": b"Subject: a\rFrom: b@c\r\rbody\r",
    "bare lf": b"Subject: a\nFrom: b@c\n\nbody\n",
    "huge header line": b"Subject: " + b"a" * (2 * limits.MAX_HEADER_SCAN) + b"\r\n\r\nbody",
    "no colon anywhere": b"x" * 100_000,
    "eight-bit junk": b"Subject: \xff\xfe\xc3\x28\r\nFrom: \xe9l\xe8ve <a@b>\r\n\r\n\xff",
    "address commas": b"To: " + b"," * 50_000 + b"\r\n\r\n",
    "address angles": b"To: " + b"<" * 50_000 + b"\r\n\r\n",
    "address flood": b"To: " + b"a@b, " * (limits.MAX_ADDRESSES * 3) + b"\r\n\r\n",
    "escaped quotes": b'To: "' + b'\\"' * 50_000 + b"\r\n\r\n",
    "unclosed comment": b"Content-Type: text/plain; charset=" + b"(" * 50_000 + b"\r\n\r\n",
    "encoded word flood": b"Subject: " + b"=?utf-8?q?a?= " * 10_000 + b"\r\n\r\n",
    "odd charsets": b"Subject: =?rot13?q?a?= =?base64?b?YQ==?= =?utf-8?b?###?=\r\n"
    b"Content-Type: text/plain; charset=base64\r\n\r\nhi",
    "parameter flood": b"Content-Type: text/plain" + b"; a=b" * 50_000 + b"\r\n\r\n",
    "rfc2231 flood": b"Content-Type: text/plain"
    + b"".join(b"; name*%d*=x" % i for i in range(20_000))
    + b"\r\n\r\n",
    "empty boundary": b'Content-Type: multipart/mixed; boundary=""\r\n\r\n--\r\n--\r\n',
    "overlong boundary": b"Content-Type: multipart/mixed; boundary="
    + b"b" * (limits.MAX_BOUNDARY + 1)
    + b"\r\n\r\n--"
    + b"b" * (limits.MAX_BOUNDARY + 1)
    + b"\r\n\r\nx",
    "dash lines": b"Content-Type: multipart/mixed; boundary=bbbb\r\n\r\n" + b"--bbbX\r\n" * 20_000,
    "parts without empty lines": b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    + b"--b\r\nX: y\r\n" * 2000,
    "base64 message/rfc822": b"Content-Type: message/rfc822\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogeAoKeQo=\r\n",
    "date junk": b"Date: Mon, 99 Foo 99999999 99:99:99 +9999\r\n\r\n",
    "date huge year": b"Date: 1 Jan 10000 00:00:00 +0000\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_input(name: str) -> None:
    check(ADVERSARIAL[name])


def test_nesting_depth_is_capped() -> None:
    depth = limits.MAX_DEPTH * 3
    raw = (
        b"".join(
            b"Content-Type: multipart/mixed; boundary=level%03d\r\n\r\n--level%03d\r\n" % (i, i)
            for i in range(depth)
        )
        + b"\r\ndeepest\r\n"
    )
    s = check(raw)
    deepest = max(s.parts, key=lambda p: p.number.count("."))
    assert deepest.number.count(".") == limits.MAX_DEPTH - 1
    assert deepest.content_type == "application/octet-stream"  # opaque from there on
    assert raw[deepest.body_start : deepest.body_end].endswith(b"deepest\r\n")


def test_message_rfc822_nesting_is_capped() -> None:
    s = check(b"Content-Type: message/rfc822\r\n\r\n" * (limits.MAX_DEPTH * 4) + b"x")
    assert max(p.number.count(".") for p in s.parts) == limits.MAX_DEPTH


def test_part_count_is_capped_and_the_rest_stays_in_the_parent() -> None:
    count = limits.MAX_PARTS + 500
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        + b"".join(b"--b\r\n\r\npart %d\r\n" % i for i in range(count))
        + b"--b--\r\n"
    )
    s = check(raw)
    assert len(s.parts) == limits.MAX_PARTS - 1  # the message itself is one entity
    assert raw[s.body_offset :].endswith(b"part %d\r\n--b--\r\n" % (count - 1))


def test_seeded_fuzz() -> None:
    pieces = [
        b"--b\r\n",
        b"--b--\r\n",
        b"--c\r\n",
        b"\r\n",
        b"\r\n\r\n",
        b"text\r\n",
        b"\x00",
        b"\r",
        b"\n",
        b"x: y\r\n",
        b" folded\r\n",
        b"Content-Type: multipart/mixed; boundary=b\r\n",
        b"Content-Type: multipart/alternative; boundary=c\r\n",
        b"Content-Type: message/rfc822\r\n",
        b"Content-Type: text/html\r\n",
        b"Content-Transfer-Encoding: base64\r\n",
        b"Content-Disposition: attachment\r\n",
        b"From: =?utf-8?b?w6k=?= <a@b>\r\n",
        b"To: g: a@b, <c@d>;\r\n",
    ]
    rng = random.Random(20261128)
    for _ in range(1000):
        check(b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 40))))
