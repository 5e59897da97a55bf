"""The DATA path on the wire: SMTP smuggling (security.md A3), dot-unstuffing, bare
line ends, pipelining, Message-ID, the header firewall, the protocol log and the
message tracking log."""

from __future__ import annotations

import asyncio
import re
import smtplib
import subprocess
from typing import Any

import pytest

from gateway.store.tracking import TrackingEvent
from protocols.smtp.service import SmtpService
from tests.integration.smtp.conftest import PASSWORD, Harness, RawClient, free_port


async def _port(h: Harness, **changes: Any) -> int:
    port = free_port()
    await h.connector("Default Frontend", f"127.0.0.1:{port}", **changes)
    return port


def _pipelined(port: int, payload: bytes, replies: int) -> list[str]:
    c = RawClient("127.0.0.1", port)
    try:
        c.reply()
        c.send(payload)
        return [c.reply() for _ in range(replies)]
    finally:
        c.close()


@pytest.mark.parametrize("fake_end", [b"\n.\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\n",
                                      b"\r\n\x00.\r\n"])
async def test_smuggled_end_of_data_is_content(harness: Harness, fake_end: bytes) -> None:
    port = await _port(harness)
    smuggled = (b"MAIL FROM:<admin@example.test>\r\nRCPT TO:<bob@example.test>\r\n"
                b"DATA\r\nSubject: smuggled\r\n\r\nevil\r\n")
    payload = (b"EHLO x\r\nMAIL FROM:<p@devices.test>\r\nRCPT TO:<alice@example.test>\r\n"
               b"DATA\r\n")
    replies = await asyncio.to_thread(
        _pipelined, port, payload + b"Subject: outer\r\n\r\nbody" + fake_end + smuggled
        + b".\r\nQUIT\r\n", 6)
    assert replies[3].startswith("354")
    assert replies[4].startswith("250 2.6.0")
    assert replies[5].startswith("221")
    [stored] = await harness.inbox("alice@example.test")
    assert b"MAIL FROM:<admin@example.test>" in stored  # content, never a command
    assert stored.count(b"\n") == stored.count(b"\r\n")  # no bare LF passed on
    assert b"\r" not in stored.replace(b"\r\n", b"")
    assert await harness.inbox("bob@example.test") == []


async def test_dot_unstuffing_and_pipelined_transactions(harness: Harness) -> None:
    port = await _port(harness)
    one = (b"MAIL FROM:<p@devices.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
           b"Subject: one\r\n\r\n..leading dot\r\n.\r\n")
    two = (b"MAIL FROM:<p@devices.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
           b"Subject: two\r\n\r\nsecond\r\n.\r\n")
    replies = await asyncio.to_thread(_pipelined, port, b"EHLO x\r\n" + one + two
                                      + b"QUIT\r\n", 10)
    assert [r[:3] for r in replies] == ["250", "250", "250", "354", "250", "250", "250",
                                        "354", "250", "221"]
    [first] = await harness.inbox("alice@example.test")
    assert first.endswith(b"\r\n\r\n.leading dot\r\n")
    [second] = await harness.inbox("bob@example.test")
    assert second.endswith(b"second\r\n")


async def test_existing_message_id_kept_and_reported(harness: Harness) -> None:
    port = await _port(harness)

    def run() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.ehlo("x")
            c.mail("p@devices.test")
            c.rcpt("alice@example.test")
            return c.data(b"Message-ID: <abc@devices.test>\r\n"
                          b"X-MS-Exchange-Organization-SCL: -1\r\n"
                          b"Subject: kept\r\n\r\nx\r\n")
    code, text = await asyncio.to_thread(run)
    assert code == 250
    assert re.fullmatch(rb"2\.6\.0 <abc@devices\.test> \[InternalId=\d+, "
                        rb"Hostname=mail1\.example\.test\] Queued mail for delivery", text)
    [stored] = await harness.inbox("alice@example.test")
    assert stored.count(b"Message-ID:") == 1
    # The header firewall: anonymous senders may not set organisation headers.
    assert b"X-MS-Exchange-Organization-SCL" not in stored
    received = stored.split(b"\r\n")[0]
    assert received.startswith(b"Received: from x ([127.0.0.1])")
    assert b"receive connector Default Frontend" in stored


async def test_tracking_and_protocol_log(harness: Harness) -> None:
    port = free_port()
    await harness.client_connector("Client Frontend", f"127.0.0.1:{port}",
                                   protocol_logging_level="Verbose")

    def run() -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.starttls(context=harness.ca.client_context())
            c.login("alice@example.test", PASSWORD)
            c.sendmail("alice@example.test", ["bob@example.test", "carol@outlook.test"],
                       b"Subject: tracked\r\n\r\nx\r\n")
    await asyncio.to_thread(run)
    await harness.service.tracking.flush()
    [event] = await harness.store.tracking.search(event_id="RECEIVE")
    assert isinstance(event, TrackingEvent)
    assert event.sender_address == "alice@example.test"
    assert event.recipients == ("bob@example.test", "carol@outlook.test")
    assert event.message_subject == "tracked"
    assert event.connector_id == "mail1.example.test\\Client Frontend"
    assert event.directionality == "Originating" and event.client_ip == "127.0.0.1"
    assert event.internal_message_id is not None
    service: SmtpService = harness.service
    assert service.protocol_log is not None
    await service.protocol_log.flush()
    [logfile] = list(harness.log_dir.glob("RECV*.log"))
    text = logfile.read_text()
    assert "#Fields: date-time,connector-id,session-id,sequence-number" in text
    assert "mail1.example.test\\Client Frontend" in text
    assert ",<,AUTH PLAIN ****," in text
    assert PASSWORD not in text and "YWxpY2" not in text  # no credentials, not even b64
    assert ',>,"250 2.6.0 ' in text


async def test_local_delivery_logs_receive_and_deliver(harness: Harness) -> None:
    """Mail for local recipients only is delivered in the commit before 250: the
    tracking log has its RECEIVE and a DELIVER (source STOREDRIVER) for the same
    message, as the relay would write."""
    port = free_port()
    await harness.connector("Printers", f"127.0.0.1:{port}")

    def run() -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.sendmail("printer@outside.test", ["bob@example.test"],
                       b"Subject: scan\r\nMessage-ID: <scan-1@outside.test>\r\n\r\nx\r\n")
    await asyncio.to_thread(run)
    await harness.service.tracking.flush()
    [receive] = await harness.store.tracking.search(event_id="RECEIVE")
    [deliver] = await harness.store.tracking.search(event_id="DELIVER")
    assert receive.message_id == deliver.message_id == "<scan-1@outside.test>"
    assert deliver.source == "STOREDRIVER"
    assert deliver.recipients == ("bob@example.test",)
    assert deliver.recipient_status == ("250 2.0.0 delivered",)
    assert deliver.internal_message_id == receive.internal_message_id is not None


async def test_swaks_submission_and_relay_refusal(harness: Harness) -> None:
    port = free_port()
    await harness.connector("Default Frontend", f"127.0.0.1:{port}", apply=False)
    sub = free_port()
    await harness.client_connector("Client Frontend", f"127.0.0.1:{sub}")

    def swaks(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["swaks", "--server", "127.0.0.1", "--helo", "swaks.test",
                               "--timeout", "10", *args], capture_output=True, text=True,
                              timeout=30, check=False)
    ok = await asyncio.to_thread(
        swaks, "--port", str(sub), "--tls", "--tls-ca-path", str(harness.ca.ca_path),
        "--auth", "LOGIN", "--auth-user", "alice@example.test", "--auth-password",
        PASSWORD, "--from", "alice@example.test", "--to", "carol@outlook.test")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "250 2.6.0" in ok.stdout
    refused = await asyncio.to_thread(swaks, "--port", str(port), "--from",
                                      "printer@devices.test", "--to", "carol@outlook.test")
    assert refused.returncode != 0
    assert "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain" in \
        refused.stdout
    [queued] = await harness.store.relay_queue.list()
    assert queued.recipients == ("carol@outlook.test",)
