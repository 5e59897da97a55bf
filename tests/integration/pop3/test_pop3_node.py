"""POP3 in a real node (``gateway serve``): served on its bindings, and Set-PopSettings
from another process (``gateway exec``) applies without a restart."""

from __future__ import annotations

import os
import poplib
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.pop3.conftest import free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


def capa(port: int) -> dict[str, list[str]]:
    pop = poplib.POP3("127.0.0.1", port, timeout=10)
    try:
        return pop.capa()
    finally:
        pop.quit()


def test_node_serves_pop3_and_applies_set_popsettings(tmp_path: Path, store_url: str) -> None:
    pop3, pop3s, new_port = free_port(), free_port(), free_port()
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(f"""
server_name = "mail1.example.test"
data_dir = "{tmp_path / 'var'}"
store_url = "{store_url}"
org_poll_seconds = 0.1
shutdown_grace_seconds = 2
[http]
health_bind = []
[bindings]
smtp = []
submission = []
submissions = []
imap = []
imaps = []
https = []
pop3 = ["127.0.0.1:{pop3}"]
pop3s = ["127.0.0.1:{pop3s}"]
""")
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "--config", str(cfg), "serve"],
                                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            wait_port(pop3)
            wait_port(pop3s)
            deadline = time.monotonic() + 30
            while "shown this once" not in log_path.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
            m = re.search(r"and mailbox (\S+)\n.*shown this once: (\S+)",
                          log_path.read_text())
            assert m, log_path.read_text()
            admin, password = m.group(1), m.group(2)
            caps = capa(pop3)
            assert "STLS" in caps and "USER" not in caps
            # implicit TLS with the node's self-signed certificate
            ctx = ssl.create_default_context(cafile=str(tmp_path / "var" / "tls" / "cert.pem"))
            ctx.check_hostname = False
            pop = poplib.POP3_SSL("127.0.0.1", pop3s, context=ctx, timeout=10)
            pop.user(admin)
            pop.pass_(password)
            assert pop.stat() == (0, 0)
            pop.quit()

            r = subprocess.run(
                [sys.executable, "-m", "gateway", "--config", str(cfg), "exec",
                 f"Set-PopSettings -LoginType PlainTextLogin "
                 f"-UnencryptedOrTLSBindings 127.0.0.1:{new_port}"],
                capture_output=True, text=True, timeout=60, cwd=ROOT)
            assert r.returncode == 0, r.stderr
            wait_port(new_port)
            caps = capa(new_port)
            assert "USER" in caps
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", pop3), 1).close()
            plain = poplib.POP3("127.0.0.1", new_port, timeout=10)
            plain.user(admin)
            assert plain.pass_(password).startswith(b"+OK")
            plain.quit()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, log_path.read_text()
