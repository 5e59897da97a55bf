"""POP3 byte layer: byte-stuffing and TOP cutting at every chunk boundary, line reads."""

from __future__ import annotations

import asyncio

import pytest

from protocols.pop3 import wire

MESSAGE = (b"Subject: x\r\nFrom: a@b\r\n\r\n.first\r\nsecond\r\n..third\r\n.\r\n"
           b"fifth\r\nsixth\r\n")


def unstuff(data: bytes) -> bytes:
    """What a client does (RFC 1939 §3), checking the terminator."""
    assert data.endswith(b"\r\n.\r\n")
    lines = data[:-3].split(b"\r\n")[:-1]
    return b"".join((line[1:] if line.startswith(b".") else line) + b"\r\n"
                    for line in lines)


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64])
def test_dot_stuffing_round_trips_at_any_chunk_size(size: int) -> None:
    s = wire.DotStuffer()
    out = b"".join(s.feed(c) for c in chunks(MESSAGE, size)) + s.end()
    assert unstuff(out) == MESSAGE
    assert b"\r\n..first\r\n" in out and b"\r\n...third\r\n" in out


def test_dot_stuffing_adds_a_line_end_when_missing() -> None:
    s = wire.DotStuffer()
    out = s.feed(b".only line") + s.end()
    assert out == b"..only line\r\n.\r\n"
    s = wire.DotStuffer()
    assert s.feed(b"") + s.end() == b".\r\n"


@pytest.mark.parametrize("size", [1, 2, 3, 4, 9, 1000])
@pytest.mark.parametrize("lines,expected", [
    (0, b"Subject: x\r\nFrom: a@b\r\n\r\n"),
    (2, b"Subject: x\r\nFrom: a@b\r\n\r\n.first\r\nsecond\r\n"),
    (100, MESSAGE),
])
def test_top_cut_at_any_chunk_size(size: int, lines: int, expected: bytes) -> None:
    cut = wire.TopCut(lines)
    out = b""
    for c in chunks(MESSAGE, size):
        out += cut.feed(c)
        if cut.done:
            break
    assert out == expected


def test_top_cut_of_a_message_without_body() -> None:
    cut = wire.TopCut(5)
    assert cut.feed(b"Subject: x\r\n") == b"Subject: x\r\n"
    assert not cut.done


def test_status_and_multiline_never_carry_line_breaks() -> None:
    assert wire.status(True, "a\r\nb") == b"+OK a  b\r\n"
    assert wire.status(False) == b"-ERR\r\n"
    assert wire.multiline("x", [".dot", "plain"]) == b"+OK x\r\n..dot\r\nplain\r\n.\r\n"


async def feed_reader(data: bytes, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=64)
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


async def test_read_line_limits() -> None:
    r = await feed_reader(b"USER a\r\nNOOP\nQUIT")
    assert await wire.read_line(r, 100, 1) == b"USER a"
    assert await wire.read_line(r, 100, 1) == b"NOOP"
    with pytest.raises(wire.ClientGone):
        await wire.read_line(r, 100, 1)
    with pytest.raises(wire.LineTooLong):
        await wire.read_line(await feed_reader(b"x" * 20 + b"\r\n"), 10, 1)
    with pytest.raises(wire.LineTooLong):  # beyond the stream's own buffer limit
        await wire.read_line(await feed_reader(b"x" * 200), 10, 1)
    with pytest.raises(TimeoutError):
        await wire.read_line(await feed_reader(b"", eof=False), 10, 0.05)


@pytest.mark.parametrize("message", [MESSAGE, b"", b".", b".x", b"x", b"a\r\n.b",
                                     b"a\r\n", b"\r\n.\r\n", b"no end\r\n.."])
def test_stuff_whole_is_the_chunked_stuffer_in_one_go(message: bytes) -> None:
    s = wire.DotStuffer()
    assert b"".join(wire.stuff_whole(message)) == s.feed(message) + s.end()


def test_stuff_whole_does_not_copy_a_message_without_dot_lines() -> None:
    message = b"Subject: x\r\n\r\nno dots at line starts. here\r\n"
    body, end = wire.stuff_whole(message)
    assert body is message and end == b".\r\n"
