"""`gateway serve` with the SMTP service: default connectors from the node's bindings,
delivery through the live node, and two processes sharing the SMTP port
(GATEWAY_SMTP_WORKERS=2, SO_REUSEPORT)."""

from __future__ import annotations

import asyncio
import smtplib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gateway.mime import MessageSummary
from gateway.store import open_store
from tests.integration.smtp.conftest import free_port
from tests.integration.smtp_nodes import smtp_node

pytestmark = pytest.mark.slow


def test_node_serves_smtp_with_two_worker_processes(tmp_path: Path) -> None:
    smtp = free_port()
    with smtp_node(tmp_path, smtp, 2):
        def send(client: int) -> None:
            # Several messages per connection, connections concurrent: both processes
            # commit into the one SQLite file at once (ProcessWriteLock).
            with smtplib.SMTP("127.0.0.1", smtp, timeout=30) as c:
                c.ehlo(f"client{client}")
                for n in range(5):
                    assert c.sendmail("printer@devices.test", ["admin@example.test"],
                                      f"Subject: w{client}.{n}\r\n\r\nx\r\n") == {}
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(send, range(16)))
        with smtplib.SMTP("127.0.0.1", smtp, timeout=10) as c:
            c.ehlo("client")
            c.mail("printer@devices.test")
            assert c.rcpt("carol@outlook.test")[0] == 550
    logs = list((tmp_path / "var" / "logs" / "ProtocolLog" / "SmtpReceive").glob("RECV*.log"))
    # "Default Frontend" logs Verbose; both processes served connections.
    assert len(logs) == 2
    assert "Default Frontend mail1.example.test" in logs[0].read_text()
    assert asyncio.run(_inbox_subjects(tmp_path / "var" / "gateway.db")) == sorted(
        f"w{client}.{n}" for client in range(16) for n in range(5))


async def _inbox_subjects(db: Path) -> list[str]:
    """The subjects in admin@example.test's Inbox, read from the store after the stop."""
    store = await open_store(f"sqlite:///{db}")
    try:
        mailbox = await store.org.find_mailbox_by_address("admin@example.test")
        assert mailbox is not None
        inbox = await store.mail.get_special_folder(mailbox.id, "inbox")
        uids = await store.mail.list_uids(inbox.id)
        messages = (await store.mail.fetch(inbox.id, [(1, None)], with_summary=True)
                    if uids else [])
        return sorted(MessageSummary.from_json(m.summary_json or "").subject
                      for m in messages)
    finally:
        await store.close()
