"""STARTTLS with a test CA, implicit TLS, AUTH only under TLS, STARTTLS injection,
AUTH failures (security.md A2, A3)."""

from __future__ import annotations

import asyncio
import base64
import smtplib
import ssl

import pytest

from tests.integration.smtp.conftest import PASSWORD, Harness, RawClient, free_port


async def test_auth_offered_only_after_starttls(harness: Harness) -> None:
    port = free_port()
    await harness.client_connector("Client Frontend", f"127.0.0.1:{port}")

    def run() -> tuple[str, str, tuple[int, bytes], tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.ehlo("laptop")
            before = (c.ehlo_resp or b"").decode()
            early = c.docmd("AUTH", "PLAIN " + base64.b64encode(
                b"\0alice@example.test\0" + PASSWORD.encode()).decode())
            anonymous_mail = c.mail("alice@example.test")
            c.rset()
            c.starttls(context=harness.ca.client_context())
            c.ehlo("laptop")
            after = (c.ehlo_resp or b"").decode()
            return before, after, early, anonymous_mail
    before, after, early, anonymous_mail = await asyncio.to_thread(run)
    # Exchange's Client Frontend: "AUTH NTLM" (Integrated) before STARTTLS, LOGIN after
    assert "STARTTLS" in before and "AUTH NTLM\n" in before and "LOGIN" not in before
    assert "SIZE 37748736" in before and "PIPELINING" in before
    assert "ENHANCEDSTATUSCODES" in before and "8BITMIME" in before
    assert "AUTH LOGIN PLAIN" in after and "STARTTLS" not in after
    assert early == (504, b"5.7.4 Unrecognized authentication type")
    assert anonymous_mail == (530, b"5.7.57 SMTP; Client was not authenticated to send "
                                   b"anonymous mail during MAIL FROM")


async def test_login_mechanism_and_send_as(harness: Harness) -> None:
    port = free_port()
    await harness.client_connector("Client Frontend", f"127.0.0.1:{port}")

    def run() -> tuple[tuple[int, bytes], tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.starttls(context=harness.ca.client_context())
            c.ehlo("laptop")
            c.user, c.password = "alice@example.test", PASSWORD
            auth = c.auth("LOGIN", c.auth_login, initial_response_ok=False)
            return auth, c.mail("bob@example.test")
    auth, spoof = await asyncio.to_thread(run)
    assert auth == (235, b"2.7.0 Authentication successful")
    assert spoof == (550, b"5.7.60 SMTP; Client does not have permissions to send as "
                          b"this sender")


async def test_implicit_tls_connector(harness: Harness) -> None:
    port = free_port()
    await harness.client_connector("Client Frontend TLS", f"127.0.0.1:{port}",
                                   implicit_tls=True)

    def run() -> dict[str, tuple[int, bytes]]:
        with smtplib.SMTP_SSL("127.0.0.1", port, timeout=10,
                              context=harness.ca.client_context()) as c:
            c.ehlo("laptop")
            assert "STARTTLS" not in (c.ehlo_resp or b"").decode()
            c.login("alice", PASSWORD)
            return c.sendmail("alice@example.test", ["bob@example.test"],
                              b"Subject: over 465\r\n\r\nhi\r\n")
    assert await asyncio.to_thread(run) == {}
    [stored] = await harness.inbox("bob@example.test")
    assert b"TLSv1.3" in stored or b"TLSv1.2" in stored


async def test_starttls_with_pipelined_plaintext_is_refused(harness: Harness) -> None:
    port = free_port()
    await harness.client_connector("Client Frontend", f"127.0.0.1:{port}")

    def run() -> tuple[str, bool]:
        c = RawClient("127.0.0.1", port)
        try:
            c.reply()
            c.send(b"EHLO x\r\n")
            c.reply()
            c.send(b"STARTTLS\r\nAUTH PLAIN AGFsaWNlAHg=\r\n")  # CVE-2011-0411 injection
            return c.reply(), c.closed()
        finally:
            c.close()
    reply, closed = await asyncio.to_thread(run)
    assert reply.startswith("554 5.5.1") and closed


async def test_second_starttls_refused(harness: Harness) -> None:
    port = free_port()
    await harness.client_connector("Client Frontend", f"127.0.0.1:{port}")

    def run() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.starttls(context=harness.ca.client_context())
            c.ehlo("x")
            return c.docmd("STARTTLS")
    assert await asyncio.to_thread(run) == (
        503, b"5.5.2 Only one STARTTLS command can be issued per session")


async def test_bad_certificate_name_is_a_client_failure_only(harness: Harness) -> None:
    port = free_port()
    await harness.client_connector("Client Frontend", f"127.0.0.1:{port}")

    def run() -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.starttls(context=ssl.create_default_context())  # does not trust the test CA
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.to_thread(run)
    # The server keeps serving.
    c = await asyncio.to_thread(RawClient, "127.0.0.1", port)
    assert (await asyncio.to_thread(c.reply)).startswith("220 ")
    c.close()


@pytest.mark.slow
async def test_logon_failures_close_the_connection(harness: Harness) -> None:
    port = free_port()
    await harness.client_connector("Client Frontend", f"127.0.0.1:{port}",
                                   max_logon_failures=2)

    def run() -> list[str]:
        c = RawClient("127.0.0.1", port)
        ctx = harness.ca.client_context()
        try:
            c.reply()
            c.send(b"EHLO x\r\n")
            c.reply()
            c.send(b"STARTTLS\r\n")
            assert c.reply().startswith("220")
            c.sock = ctx.wrap_socket(c.sock, server_hostname="127.0.0.1")
            c.file = c.sock.makefile("rb")
            c.send(b"EHLO x\r\n")
            c.reply()
            bad = base64.b64encode(b"\0alice@example.test\0wrong").decode()
            out = []
            for _ in range(2):
                c.send(f"AUTH PLAIN {bad}\r\n".encode())
                out.append(c.reply())
            out.append(c.reply())
            return out
        finally:
            c.close()
    replies = await asyncio.to_thread(run)
    assert replies == ["535 5.7.3 Authentication unsuccessful",
                       "535 5.7.3 Authentication unsuccessful",
                       "421 4.7.0 Too many errors on this connection, closing "
                       "transmission channel"]
