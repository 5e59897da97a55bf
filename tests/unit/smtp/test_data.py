"""The DATA decoder: end of data only at CRLF.CRLF, unstuffing, bare CR/LF repair
(security.md A3: SMTP smuggling)."""

from __future__ import annotations

import pytest

from protocols.smtp.data import DataDecoder


def decode(raw: bytes, *, step: int | None = None, max_size: int = 10**7
           ) -> tuple[DataDecoder, bytes]:
    d = DataDecoder(max_size)
    rest = b""
    chunks = [raw] if step is None else [raw[i:i + step] for i in range(0, len(raw), step)]
    for chunk in chunks:
        if d.done:
            rest += chunk
        else:
            rest += d.feed(chunk)
    return d, rest


@pytest.mark.parametrize("step", [None, 1, 2, 3, 7])
def test_plain_message_and_rest(step: int | None) -> None:
    d, rest = decode(b"Subject: x\r\n\r\nhello\r\n..dot\r\n.\r\nQUIT\r\n", step=step)
    assert d.done
    assert d.content() == b"Subject: x\r\n\r\nhello\r\n.dot\r\n"
    assert rest == b"QUIT\r\n"


def test_empty_message_first_line_dot() -> None:
    d, rest = decode(b".\r\nNOOP\r\n")
    assert d.done and d.content() == b"" and rest == b"NOOP\r\n"


@pytest.mark.parametrize("fake_end", [
    b"\n.\n", b"\n.\r\n", b"\r.\r\n", b"\r.\n", b"\r\n.\n", b"\r\n.\r", b"\r\n\x00.\r\n",
    b"\r.\r", b"\n.\r",
])
@pytest.mark.parametrize("step", [None, 1])
def test_smuggling_markers_never_end_data(fake_end: bytes, step: int | None) -> None:
    raw = b"Subject: a\r\n\r\nbody" + fake_end + b"MAIL FROM:<evil@x.test>\r\n"
    d, rest = decode(raw, step=step)
    assert not d.done and rest == b""
    d2, rest2 = decode(raw + b".\r\n", step=step)
    assert d2.done and rest2 == b""
    content = d2.content()
    assert b"MAIL FROM:<evil@x.test>\r\n" in content
    # No bare CR or LF survives.
    assert content.count(b"\n") == content.count(b"\r\n") == content.count(b"\r")


def test_bare_line_ends_are_normalised_and_counted() -> None:
    d, _ = decode(b"a\nb\rc\r\n.\r\n")
    assert d.content() == b"a\r\nb\r\nc\r\n"
    assert d.bare_line_ends == 2


def test_dot_after_bare_lf_is_not_unstuffed() -> None:
    d, _ = decode(b"a\n..b\r\n.\r\n")
    assert d.content() == b"a\r\n..b\r\n"


def test_too_large_keeps_scanning() -> None:
    d, rest = decode(b"x" * 100 + b"\r\n" + b"y" * 100 + b"\r\n.\r\nRSET\r\n", max_size=50)
    assert d.done and d.too_large and d.content() == b"" and rest == b"RSET\r\n"


def test_large_body_in_big_chunks() -> None:
    line = b"0123456789" * 7 + b"\r\n"
    body = line * 1500 + b".leading\r\n" + line * 10
    d, _rest = decode(body + b".\r\n", step=65536)
    assert d.done and d.content() == line * 1500 + b"leading\r\n" + line * 10


@pytest.mark.parametrize("seed", range(20))
def test_output_is_always_in_stored_form(seed: int) -> None:
    """The SMTP path hands the decoded content to the store as already CRLF-only
    (``begin_delivery(stored_form=True)``): whatever mix of CR, LF and dots a client
    sends, in whatever chunks, the output has no bare CR or LF."""
    import random

    from gateway.mime import normalise_line_endings

    rng = random.Random(seed)
    alphabet = [b"\r", b"\n", b"\r\n", b".", b"a", b"bc ", b"\r\n."]
    body = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 400)))
    wire = body + b"\r\n.\r\n"
    decoder = DataDecoder(1 << 20)
    pos = 0
    while not decoder.done:
        step = rng.randrange(1, 9)
        decoder.feed(wire[pos:pos + step])
        pos += step
    content = decoder.content()
    assert normalise_line_endings(content) == content
