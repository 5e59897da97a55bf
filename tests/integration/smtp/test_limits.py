"""Limits on the wire: recipients, size at MAIL SIZE= and at end of data, hop count,
protocol errors, timeouts, connections per source, tarpit, the state machine."""

from __future__ import annotations

import asyncio
import smtplib
import time
from typing import Any

import pytest

from tests.integration.smtp.conftest import Harness, RawClient, free_port


async def _port(h: Harness, **changes: Any) -> int:
    port = free_port()
    await h.connector("Default Frontend", f"127.0.0.1:{port}", **changes)
    return port


def _transcript(port: int, lines: list[bytes], *, source: str | None = None) -> list[str]:
    """Send each line, read one reply per line (after the banner)."""
    c = RawClient("127.0.0.1", port, source=source)
    try:
        out = [c.reply()]
        for line in lines:
            c.send(line)
            out.append(c.reply())
        return out
    finally:
        c.close()


async def test_recipient_limit(harness: Harness) -> None:
    port = await _port(harness, max_recipients_per_message=2)

    def run() -> tuple[tuple[int, bytes], tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.ehlo("x")
            c.mail("printer@devices.test")
            assert c.rcpt("alice@example.test")[0] == 250
            assert c.rcpt("bob@example.test")[0] == 250
            third = c.rcpt("alice@example.test")
            return third, c.data(b"Subject: two\r\n\r\nx\r\n")
    third, data = await asyncio.to_thread(run)
    assert third == (452, b"4.5.3 Too many recipients")
    assert data[0] == 250  # still accepted for the earlier recipients
    assert len(await harness.inbox("bob@example.test")) == 1


async def test_size_at_mail_and_at_end_of_data(harness: Harness) -> None:
    port = await _port(harness, max_message_size=65536)

    def run() -> tuple[tuple[int, bytes], tuple[int, bytes], tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.ehlo("x")
            assert "SIZE 65536" in (c.ehlo_resp or b"").decode()
            declared = c.mail("printer@devices.test", ["SIZE=70000"])
            c.mail("printer@devices.test")
            c.rcpt("alice@example.test")
            data = c.data(b"Subject: big\r\n\r\n" + b"x" * 998 + b"\r\n" * 1 + (
                b"y" * 998 + b"\r\n") * 70)
            after = c.noop()
            return declared, data, after
    declared, data, after = await asyncio.to_thread(run)
    assert declared == (552, b"5.3.4 Message size exceeds fixed maximum message size")
    assert data == (552, b"5.3.4 Message size exceeds fixed maximum message size")
    assert after[0] == 250  # the session stays in sync after the discarded body
    assert await harness.inbox("alice@example.test") == []


async def test_hop_count(harness: Harness) -> None:
    port = await _port(harness)
    loop = b"".join(b"Received: from hop%d by x; Sat, 28 Nov 2026 00:00:00 +0000\r\n" % i
                    for i in range(31))

    def run() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.ehlo("x")
            c.mail("printer@devices.test")
            c.rcpt("alice@example.test")
            return c.data(loop + b"Subject: loop\r\n\r\nx\r\n")
    assert await asyncio.to_thread(run) == (554, b"5.4.6 Hop count exceeded - possible "
                                                 b"mail loop")


async def test_state_machine_replies(harness: Harness) -> None:
    port = await _port(harness, max_protocol_errors=10)
    replies = await asyncio.to_thread(_transcript, port, [
        b"MAIL FROM:<a@devices.test>\r\n", b"EHLO x\r\n", b"RCPT TO:<alice@example.test>\r\n",
        b"DATA\r\n", b"MAIL FROM:<a@devices.test>\r\n", b"MAIL FROM:<a@devices.test>\r\n",
        b"DATA\r\n", b"VRFY alice\r\n", b"RSET\r\n", b"NOOP\r\n", b"QUIT\r\n"])
    assert replies[1:] == [
        "503 5.5.2 Send hello first", replies[2], "503 5.5.2 Need mail command",
        "503 5.5.2 Need mail command", "250 2.1.0 Sender OK",
        "503 5.5.2 Sender already specified", "503 5.5.2 Need rcpt command",
        "252 2.1.5 Cannot VRFY user", "250 2.0.0 Resetting", "250 2.0.0 OK",
        "221 2.0.0 Service closing transmission channel"]
    assert replies[2].startswith("250-mail1.example.test Hello [127.0.0.1]")


async def test_protocol_errors_close_the_connection(harness: Harness) -> None:
    port = await _port(harness, max_protocol_errors=3)

    def run() -> tuple[list[str], bool]:
        c = RawClient("127.0.0.1", port)
        try:
            out = [c.reply()]
            for _ in range(3):
                c.send(b"BOGUS\r\n")
                out.append(c.reply())
            out.append(c.reply())
            return out, c.closed()
        finally:
            c.close()
    out, closed = await asyncio.to_thread(run)
    assert out[1:] == ["500 5.3.3 Unrecognized command"] * 3 + [
        "421 4.7.0 Too many errors on this connection, closing transmission channel"]
    assert closed


async def test_overlong_command_line(harness: Harness) -> None:
    port = await _port(harness)
    replies = await asyncio.to_thread(_transcript, port, [
        b"EHLO " + b"a" * 600 + b"\r\n", b"NOOP " + b"b" * 20000 + b"\r\n", b"NOOP\r\n"])
    assert replies[1:] == ["500 5.5.2 Line too long", "500 5.5.2 Line too long",
                           "250 2.0.0 OK"]


@pytest.mark.slow
async def test_inactivity_timeout(harness: Harness) -> None:
    port = await _port(harness, connection_inactivity_timeout=1.0)

    def run() -> tuple[str, bool]:
        c = RawClient("127.0.0.1", port)
        try:
            c.reply()
            return c.reply(), c.closed()
        finally:
            c.close()
    assert await asyncio.to_thread(run) == ("451 4.7.0 Timeout waiting for client input",
                                            True)


async def test_inactivity_timer_follows_activity(harness: Harness) -> None:
    """Commands keep the session alive past the first due time (the watchdog re-arms);
    silence then ends it one inactivity period after the last command."""
    port = await _port(harness, connection_inactivity_timeout=1.0)

    def run() -> tuple[list[str], str, float]:
        c = RawClient("127.0.0.1", port)
        try:
            c.reply()
            replies = []
            for _ in range(5):  # 2 s of activity, twice the inactivity timeout
                time.sleep(0.4)
                c.send(b"NOOP\r\n")
                replies.append(c.reply())
            quiet_from = time.monotonic()
            return replies, c.reply(), time.monotonic() - quiet_from
        finally:
            c.close()
    replies, last, waited = await asyncio.to_thread(run)
    assert all(r.startswith("250") for r in replies), replies
    assert last == "451 4.7.0 Timeout waiting for client input"
    assert 0.8 < waited < 3.0


@pytest.mark.slow
async def test_connection_timeout(harness: Harness) -> None:
    port = await _port(harness, connection_timeout=2.0, connection_inactivity_timeout=1.5)

    def run() -> str:
        c = RawClient("127.0.0.1", port)
        try:
            c.reply()
            for _ in range(8):
                time.sleep(0.5)
                c.send(b"NOOP\r\n")
                reply = c.reply()
                if not reply.startswith("250"):
                    return reply
            return "no timeout"
        finally:
            c.close()
    assert await asyncio.to_thread(run) == "421 4.4.1 Connection timed out"


async def test_connections_per_source(harness: Harness) -> None:
    port = await _port(harness, max_inbound_connection_per_source=1)

    def run() -> tuple[str, str, str]:
        first = RawClient("127.0.0.1", port, source="127.0.0.80")
        try:
            a = first.reply()
            second = RawClient("127.0.0.1", port, source="127.0.0.80")
            b = second.reply()
            second.close()
            other = RawClient("127.0.0.1", port, source="127.0.0.81")
            c = other.reply()
            other.close()
            return a, b, c
        finally:
            first.close()
    a, b, c = await asyncio.to_thread(run)
    assert a.startswith("220 ") and c.startswith("220 ")
    assert b == ("421 4.3.2 The maximum number of concurrent connections has exceeded a "
                 "limit, closing transmission channel")


async def test_tarpit_delays_refusals_to_anonymous_sessions(harness: Harness) -> None:
    port = await _port(harness, tarpit_interval=0.6)

    def run() -> tuple[str, float, str, float]:
        c = RawClient("127.0.0.1", port)
        try:
            c.reply()
            c.send(b"EHLO x\r\n")
            c.reply()
            c.send(b"MAIL FROM:<a@devices.test>\r\n")
            c.reply()
            start = time.monotonic()
            c.send(b"RCPT TO:<carol@outlook.test>\r\n")
            refused = c.reply()
            slow = time.monotonic() - start
            start = time.monotonic()
            c.send(b"RCPT TO:<alice@example.test>\r\n")
            ok = c.reply()
            return refused, slow, ok, time.monotonic() - start
        finally:
            c.close()
    refused, slow, ok, fast = await asyncio.to_thread(run)
    assert refused.startswith("550 5.7.54") and slow >= 0.55
    assert ok.startswith("250") and fast < 0.5


@pytest.mark.parametrize("line,reply", [
    (b"MAIL FROM:<a@devices.test> FOO=BAR\r\n", "555 5.5.4 Unsupported option: FOO"),
    (b"MAIL FROM:<a@devices.test> SIZE=abc\r\n", "501 5.5.4 Invalid SIZE parameter"),
    (b"MAIL FROM:a@devices.test\r\n", "501 5.5.4 Invalid arguments"),
    (b"MAIL FROM:<a@b@devices.test>\r\n", "501 5.1.7 Invalid address"),
])
async def test_mail_syntax(harness: Harness, line: bytes, reply: str) -> None:
    port = await _port(harness)
    replies = await asyncio.to_thread(_transcript, port, [b"EHLO x\r\n", line])
    assert replies[2] == reply


async def test_message_rate_limit(harness: Harness) -> None:
    port = await _port(harness, message_rate_limit=2)

    def run() -> tuple[list[int], tuple[str, bool]]:
        codes = []
        with smtplib.SMTP("127.0.0.1", port, timeout=10, source_address=("127.0.0.80", 0)) as c:
            c.ehlo("x")
            for _ in range(2):
                c.mail("p@devices.test")
                c.rcpt("alice@example.test")
                codes.append(c.data(b"Subject: r\r\n\r\nx\r\n")[0])
        raw = RawClient("127.0.0.1", port, source="127.0.0.80")
        try:
            raw.reply()
            raw.send(b"EHLO x\r\n")
            raw.reply()
            raw.send(b"MAIL FROM:<p@devices.test>\r\n")
            return codes, (raw.reply(), raw.closed())
        finally:
            raw.close()
    codes, third = await asyncio.to_thread(run)
    assert codes == [250, 250]
    assert third == ("421 4.4.2 Message submission rate for this client has exceeded the "
                     "configured limit", True)
    # Another client is not affected.
    other = await asyncio.to_thread(_transcript, port, [b"EHLO y\r\n",
                                                        b"MAIL FROM:<p@devices.test>\r\n"],
                                    source="127.0.0.81")
    assert other[2] == "250 2.1.0 Sender OK"
