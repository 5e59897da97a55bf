"""A node with two SMTP processes (GATEWAY_SMTP_WORKERS=2) relays through a smart
host: each process runs relay workers on the shared SQLite queue; every message
reaches the sink exactly once."""

from __future__ import annotations

import collections
import os
import signal
import smtplib
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.relay.conftest import Sink, free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]


def listeners(port: int) -> int:
    """Sockets listening on 127.0.0.1:``port`` (one per SO_REUSEPORT process)."""
    needle = f"0100007F:{port:04X}"
    return sum(1 for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
               if line.split()[1] == needle and line.split()[3] == "0A")


def gateway_exec(cfg: Path, line: str) -> None:
    result = subprocess.run([sys.executable, "-m", "gateway", "--config", str(cfg), "exec",
                             line], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_two_smtp_processes_relay_every_message_once(tmp_path: Path, sink: Sink) -> None:
    smtp, relay_port = free_port(), free_port()
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(f"""
server_name = "mail1.example.test"
data_dir = "{tmp_path / 'var'}"
bootstrap_domain = "example.test"
org_poll_seconds = 0.2
shutdown_grace_seconds = 2
[http]
health_bind = []
[bindings]
smtp = ["127.0.0.1:{smtp}"]
submission = []
submissions = []
imap = []
imaps = []
pop3 = []
pop3s = []
https = []
""")
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "--config", str(cfg), "serve"],
                            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                            env={**os.environ, "GATEWAY_SMTP_WORKERS": "2"})
    try:
        deadline = time.monotonic() + 60
        while listeners(smtp) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "serve.log").read_text()
            time.sleep(0.1)
        gateway_exec(cfg, f'New-ReceiveConnector -Name "Anonymous Relay" -Usage Custom '
                          f'-PermissionGroups AnonymousUsers -Bindings 127.0.0.1:{relay_port} '
                          f'-RemoteIpRanges 127.0.0.1')
        gateway_exec(cfg, 'Get-ReceiveConnector "Anonymous Relay" | Add-ADPermission -User '
                          '"NT AUTHORITY\\ANONYMOUS LOGON" -ExtendedRights '
                          '"Ms-Exch-SMTP-Accept-Any-Recipient"')
        gateway_exec(cfg, f"New-SendConnector Sink -AddressSpaces '*' "
                          f"-SmartHosts '[127.0.0.1]:{sink.port}'")
        while listeners(relay_port) < 2:
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.1)
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
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()
    seen: collections.Counter[str] = collections.Counter()
    for m in sink.handler.messages:
        for line in m.content.split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                seen[line.split(b":", 1)[1].strip().decode()] += 1
    assert set(seen) == expected
    assert max(seen.values()) == 1, [k for k, v in seen.items() if v > 1]
    assert proc.returncode == 0, (tmp_path / "serve.log").read_text()
