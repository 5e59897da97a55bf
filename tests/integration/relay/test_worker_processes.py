"""A node with two SMTP processes (GATEWAY_SMTP_WORKERS=2) relays through a smart
host: each process runs relay workers on the shared SQLite queue; every message
reaches the sink exactly once."""

from __future__ import annotations

import collections
import smtplib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.relay.conftest import Sink, free_port
from tests.integration.smtp_nodes import smtp_node

pytestmark = pytest.mark.slow


def test_two_smtp_processes_relay_every_message_once(tmp_path: Path, sink: Sink) -> None:
    smtp, relay_port = free_port(), free_port()
    with smtp_node(tmp_path, smtp, 2) as node:
        node.exec(f'New-ReceiveConnector -Name "Anonymous Relay" -Usage Custom '
                  f'-PermissionGroups AnonymousUsers -Bindings 127.0.0.1:{relay_port} '
                  f'-RemoteIpRanges 127.0.0.1')
        node.exec('Get-ReceiveConnector "Anonymous Relay" | Add-ADPermission -User '
                  '"NT AUTHORITY\\ANONYMOUS LOGON" -ExtendedRights '
                  '"Ms-Exch-SMTP-Accept-Any-Recipient"')
        node.exec(f"New-SendConnector Sink -AddressSpaces '*' "
                  f"-SmartHosts '[127.0.0.1]:{sink.port}'")
        node.wait_listening(relay_port, 2)
        time.sleep(1.0)  # several organisation polls: both processes see the permission

        def send(client: int) -> None:
            with smtplib.SMTP("127.0.0.1", relay_port, timeout=30) as c:
                c.ehlo(f"device{client}")
                for n in range(6):
                    body = (f"Message-ID: <m{client}.{n}@devices.test>\r\n"
                            f"Subject: relayed\r\n\r\nx\r\n")
                    assert c.sendmail("scanner@devices.test", ["alice@outlook.test"],
                                      body) == {}
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(send, range(10)))
        expected = {f"<m{client}.{n}@devices.test>" for client in range(10) for n in range(6)}
        deadline = time.monotonic() + 30
        while len(sink.handler.messages) < len(expected) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # a duplicate would arrive now
    seen: collections.Counter[str] = collections.Counter()
    for m in sink.handler.messages:
        for line in m.content.split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                seen[line.split(b":", 1)[1].strip().decode()] += 1
    assert set(seen) == expected
    assert max(seen.values()) == 1, [k for k, v in seen.items() if v > 1]
