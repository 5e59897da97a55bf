"""The four cases every admin must be able to count on (issue 3), with smtplib over
real sockets, on both store engines."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.smtp.conftest import PASSWORD, Harness, free_port

MESSAGE = b"From: alice@example.test\r\nSubject: four cases\r\n\r\nHello.\r\n"


@pytest.fixture
async def four(harness_factory: Callable[[str | None], Any], store_url: str
               ) -> tuple[Harness, int, int]:
    h = await harness_factory(store_url)
    mx = free_port()
    sub = free_port()
    await h.connector("Default Frontend", f"127.0.0.1:{mx}",
                      groups=frozenset({"AnonymousUsers", "ExchangeServers"}))
    await h.client_connector("Client Frontend", f"127.0.0.1:{sub}")
    return h, mx, sub


def _submit(h: Harness, port: int, sender: str, rcpt: str) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("client.example.test")
        c.starttls(context=h.ca.client_context())
        c.ehlo("client.example.test")
        c.login("alice@example.test", PASSWORD)
        return c.sendmail(sender, [rcpt], MESSAGE)


async def test_authenticated_user_to_local_recipient(four: tuple[Harness, int, int]) -> None:
    h, _mx, sub = four
    refused = await asyncio.to_thread(_submit, h, sub, "alice@example.test",
                                      "bob@example.test")
    assert refused == {}
    [stored] = await h.inbox("bob@example.test")
    assert b"Subject: four cases" in stored
    assert b"authenticated as alice@example.test" in stored
    assert b"ESMTPSA" in stored
    assert b"Message-ID: <" in stored  # added to a submission without one


async def test_authenticated_user_to_external_recipient(
        four: tuple[Harness, int, int]) -> None:
    h, _mx, sub = four
    refused = await asyncio.to_thread(_submit, h, sub, "alice@example.test",
                                      "carol@outlook.test")
    assert refused == {}
    [queued] = await h.store.relay_queue.list()
    assert queued.recipients == ("carol@outlook.test",)
    assert queued.sender == "alice@example.test"
    body = await h.store.relay_queue.body(queued.id)
    assert body is not None and body.endswith(MESSAGE)


async def test_anonymous_host_to_local_recipient(four: tuple[Harness, int, int]) -> None:
    h, mx, _sub = four

    def send() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", mx, timeout=10) as c:
            c.ehlo("printer.lan")
            c.mail("printer@devices.test")
            c.rcpt("alice@example.test")
            return c.data(b"Subject: scan\r\n\r\npage 1\r\n")
    code, text = await asyncio.to_thread(send)
    assert code == 250
    assert text.startswith(b"2.6.0 <") and b"Queued mail for delivery" in text
    assert b"Hostname=mail1.example.test" in text
    [stored] = await h.inbox("alice@example.test")
    assert b"page 1" in stored


async def test_anonymous_host_to_external_recipient_refused(
        four: tuple[Harness, int, int]) -> None:
    h, mx, _sub = four

    def send() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", mx, timeout=10) as c:
            c.ehlo("printer.lan")
            c.mail("printer@devices.test")
            return c.rcpt("carol@outlook.test")
    code, text = await asyncio.to_thread(send)
    assert (code, text) == (550, b"5.7.54 SMTP; Unable to relay recipient in "
                                 b"non-accepted domain")
    assert await h.store.relay_queue.list() == []
